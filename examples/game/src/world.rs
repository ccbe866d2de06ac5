//! The grid world: rocks, items and one agent per mod. Everything in it is deterministic: the
//! only randomness is a seeded generator, used to lay out the world and respawn items.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How far (in cells, either axis) an agent sees.
pub const SIGHT: i64 = 4;
/// The longest text a `say` action keeps, in characters; longer text is cut.
pub const MAX_SAY_CHARS: usize = 80;

/// SplitMix64: tiny, fast and fully specified, so a seed gives the same world on every
/// platform and every version (a library generator may change its stream between releases).
#[derive(Clone, Debug, Serialize)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// What a cell holds, apart from agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// Nothing: agents walk here.
    Empty,
    /// An obstacle.
    Rock,
    /// Something to pick up.
    Item,
}

/// A compass direction (north is up, y grows southwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dir {
    /// y - 1
    N,
    /// x + 1
    E,
    /// y + 1
    S,
    /// x - 1
    W,
}

impl Dir {
    fn delta(self) -> (i64, i64) {
        match self {
            Dir::N => (0, -1),
            Dir::E => (1, 0),
            Dir::S => (0, 1),
            Dir::W => (-1, 0),
        }
    }
}

/// One thing a mod asks its agent to do. Actions name no agent: a mod only ever moves its own.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// One step in a direction (`{"move":"N"}`).
    Move(Dir),
    /// Picks up the item under the agent (`"pick_up"`).
    PickUp,
    /// Says something, shown in the game's log (`{"say":"hello"}`).
    Say(String),
}

/// An agent: the body a mod plays.
#[derive(Clone, Debug, Serialize)]
pub struct Agent {
    /// The mod's name.
    pub name: String,
    /// Column, `0..width`.
    pub x: i64,
    /// Row, `0..height`.
    pub y: i64,
    /// Items picked up so far.
    pub carrying: u64,
    /// The mod's vars: JSON it stores in the game between ticks (kept by the game, so they
    /// survive reloads of the mod's code).
    pub vars: Map<String, Value>,
}

/// What a mod sees each tick (serialized to JSON as its `on_tick` input).
#[derive(Debug, Serialize)]
pub struct View<'a> {
    /// The tick being played, from 1.
    pub tick: u64,
    /// Grid width.
    pub width: i64,
    /// Grid height.
    pub height: i64,
    /// The mod's own agent.
    pub me: Me<'a>,
    /// Rocks, items and other agents within [`SIGHT`] cells, row by row.
    pub nearby: Vec<Seen>,
    /// The mod's vars.
    pub vars: &'a Map<String, Value>,
}

/// The agent's own state in a [`View`].
#[derive(Debug, Serialize)]
pub struct Me<'a> {
    /// The agent's index.
    pub id: usize,
    /// The mod's name.
    pub name: &'a str,
    /// Column.
    pub x: i64,
    /// Row.
    pub y: i64,
    /// Items picked up so far.
    pub carrying: u64,
}

/// Something an agent sees.
#[derive(Debug, Serialize)]
pub struct Seen {
    /// Column.
    pub x: i64,
    /// Row.
    pub y: i64,
    /// `rock`, `item` or `agent`.
    pub what: &'static str,
}

/// What an action did, for the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The agent moved.
    Moved {
        /// The new position.
        to: (i64, i64),
    },
    /// The move was refused: the edge, a rock or another agent is there.
    Blocked {
        /// The direction asked for.
        dir: Dir,
    },
    /// The agent picked up an item.
    PickedUp {
        /// Where.
        at: (i64, i64),
    },
    /// `pick_up` where there is nothing.
    NothingToPickUp,
    /// The agent said something (escaped and cut to [`MAX_SAY_CHARS`]).
    Said(String),
}

/// The world.
#[derive(Clone, Debug, Serialize)]
pub struct World {
    /// Ticks played.
    pub tick: u64,
    /// Columns.
    pub width: i64,
    /// Rows.
    pub height: i64,
    cells: Vec<Cell>,
    /// The agents, one per mod, in mod order.
    pub agents: Vec<Agent>,
    rng: Rng,
}

impl World {
    /// A `width` x `height` world laid out from `seed`, with one agent per name. Sizes are
    /// clamped to 4..=256 so that every agent finds room.
    pub fn new(seed: u64, width: i64, height: i64, names: &[String]) -> World {
        let width = width.clamp(4, 256);
        let height = height.clamp(4, 256);
        let mut world = World {
            tick: 0,
            width,
            height,
            cells: vec![Cell::Empty; (width * height) as usize],
            agents: Vec::new(),
            rng: Rng::new(seed),
        };
        let area = (width * height) as usize;
        for _ in 0..area / 12 {
            if let Some(i) = world.random_free_cell() {
                world.cells[i] = Cell::Rock;
            }
        }
        for _ in 0..area / 10 {
            world.spawn_item();
        }
        for name in names {
            let (x, y) = match world.random_free_cell() {
                Some(i) => world.position(i),
                None => (0, 0),
            };
            world.agents.push(Agent {
                name: name.clone(),
                x,
                y,
                carrying: 0,
                vars: Map::new(),
            });
        }
        world
    }

    fn index(&self, x: i64, y: i64) -> Option<usize> {
        (x >= 0 && y >= 0 && x < self.width && y < self.height)
            .then(|| (y * self.width + x) as usize)
    }

    fn position(&self, i: usize) -> (i64, i64) {
        (i as i64 % self.width, i as i64 / self.width)
    }

    /// The cell at `(x, y)`, or `None` off the grid.
    pub fn cell(&self, x: i64, y: i64) -> Option<Cell> {
        self.index(x, y).map(|i| self.cells[i])
    }

    fn agent_at(&self, x: i64, y: i64) -> Option<usize> {
        self.agents.iter().position(|a| a.x == x && a.y == y)
    }

    /// An empty cell with no agent, picked by the world's generator (a bounded number of
    /// tries, so a full world does not loop).
    fn random_free_cell(&mut self) -> Option<usize> {
        let area = self.cells.len() as u64;
        for _ in 0..64 {
            let i = self.rng.below(area) as usize;
            let (x, y) = self.position(i);
            if self.cells[i] == Cell::Empty && self.agent_at(x, y).is_none() {
                return Some(i);
            }
        }
        None
    }

    fn spawn_item(&mut self) {
        if let Some(i) = self.random_free_cell() {
            self.cells[i] = Cell::Item;
        }
    }

    /// What agent `id` sees.
    pub fn view(&self, id: usize) -> View<'_> {
        let me = &self.agents[id];
        let mut nearby = Vec::new();
        for y in me.y - SIGHT..=me.y + SIGHT {
            for x in me.x - SIGHT..=me.x + SIGHT {
                let what = match self.cell(x, y) {
                    None => continue,
                    Some(Cell::Rock) => "rock",
                    Some(Cell::Item) => "item",
                    Some(Cell::Empty) => "",
                };
                if !what.is_empty() {
                    nearby.push(Seen { x, y, what });
                }
                if (x, y) != (me.x, me.y) && self.agent_at(x, y).is_some() {
                    nearby.push(Seen {
                        x,
                        y,
                        what: "agent",
                    });
                }
            }
        }
        View {
            tick: self.tick,
            width: self.width,
            height: self.height,
            me: Me {
                id,
                name: &me.name,
                x: me.x,
                y: me.y,
                carrying: me.carrying,
            },
            nearby,
            vars: &me.vars,
        }
    }

    /// Plays one action of agent `id`. Actions are validated before (see
    /// [`validate`](crate::validate)); here a move is one step at most, into a free cell.
    pub fn apply(&mut self, id: usize, action: &Action) -> Outcome {
        let (x, y) = (self.agents[id].x, self.agents[id].y);
        match action {
            Action::Move(dir) => {
                let (dx, dy) = dir.delta();
                let (nx, ny) = (x + dx, y + dy);
                let free = matches!(self.cell(nx, ny), Some(Cell::Empty | Cell::Item))
                    && self.agent_at(nx, ny).is_none();
                if !free {
                    return Outcome::Blocked { dir: *dir };
                }
                let agent = &mut self.agents[id];
                agent.x = nx;
                agent.y = ny;
                Outcome::Moved { to: (nx, ny) }
            }
            Action::PickUp => match self.index(x, y) {
                Some(i) if self.cells[i] == Cell::Item => {
                    self.cells[i] = Cell::Empty;
                    self.agents[id].carrying += 1;
                    // A new item somewhere else keeps the game going.
                    self.spawn_item();
                    Outcome::PickedUp { at: (x, y) }
                }
                _ => Outcome::NothingToPickUp,
            },
            Action::Say(text) => Outcome::Said(log_text(text)),
        }
    }

    /// A hash of everything in the world (cells, agents and their vars, the generator), equal
    /// for equal worlds: FNV-1a over the JSON form, stable across runs and platforms.
    pub fn hash(&self) -> u64 {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// The grid as text: `#` rock, `*` item, `.` empty, agents by the first letter of their
    /// index in `0-9a-z`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for y in 0..self.height {
            for x in 0..self.width {
                let c = match (self.agent_at(x, y), self.cell(x, y)) {
                    (Some(id), _) => std::char::from_digit((id % 36) as u32, 36).unwrap_or('@'),
                    (None, Some(Cell::Rock)) => '#',
                    (None, Some(Cell::Item)) => '*',
                    _ => '.',
                };
                out.push(c);
            }
            out.push('\n');
        }
        out
    }
}

/// Text a mod wrote, safe for a log line: control and line-breaking characters escaped, cut
/// to [`MAX_SAY_CHARS`] characters.
pub fn log_text(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == MAX_SAY_CHARS {
            out.push('…');
            break;
        }
        if !plinth::escape_control(c, &mut out) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World::new(5, 8, 6, &["a".into(), "b".into()])
    }

    #[test]
    fn moves_are_one_step_into_free_cells_only() {
        let mut w = world();
        // Put the agents side by side in the top-left corner, on clear ground.
        w.cells.iter_mut().for_each(|c| *c = Cell::Empty);
        (w.agents[0].x, w.agents[0].y) = (0, 0);
        (w.agents[1].x, w.agents[1].y) = (1, 0);
        assert_eq!(
            w.apply(0, &Action::Move(Dir::N)),
            Outcome::Blocked { dir: Dir::N }
        );
        assert_eq!(
            w.apply(0, &Action::Move(Dir::W)),
            Outcome::Blocked { dir: Dir::W }
        );
        assert_eq!(
            w.apply(0, &Action::Move(Dir::E)),
            Outcome::Blocked { dir: Dir::E }
        );
        let below = w.index(0, 1).unwrap();
        w.cells[below] = Cell::Rock;
        assert_eq!(
            w.apply(0, &Action::Move(Dir::S)),
            Outcome::Blocked { dir: Dir::S }
        );
        assert_eq!(
            w.apply(1, &Action::Move(Dir::S)),
            Outcome::Moved { to: (1, 1) }
        );
        assert_eq!((w.agents[0].x, w.agents[0].y), (0, 0));
    }

    #[test]
    fn picking_up_takes_the_item_and_another_appears() {
        let mut w = world();
        let items = |w: &World| w.cells.iter().filter(|c| **c == Cell::Item).count();
        let before = items(&w);
        let (x, y) = (w.agents[0].x, w.agents[0].y);
        assert_eq!(w.apply(0, &Action::PickUp), Outcome::NothingToPickUp);
        let i = w.index(x, y).unwrap();
        w.cells[i] = Cell::Item;
        assert_eq!(
            w.apply(0, &Action::PickUp),
            Outcome::PickedUp { at: (x, y) }
        );
        assert_eq!(w.agents[0].carrying, 1);
        assert_ne!(w.cells[i], Cell::Item);
        // The one the test placed was taken, and one was respawned elsewhere.
        assert_eq!(items(&w), before + 1);
    }

    #[test]
    fn the_seed_decides_the_layout() {
        assert_eq!(world().render(), world().render());
        assert_eq!(world().hash(), world().hash());
        let other = World::new(6, 8, 6, &["a".into(), "b".into()]);
        assert_ne!(world().render(), other.render());
    }

    #[test]
    fn views_show_what_is_in_sight_only() {
        let w = World::new(1, 30, 30, &["a".into()]);
        let view = w.view(0);
        assert!(!view.nearby.is_empty());
        for seen in &view.nearby {
            assert!((seen.x - w.agents[0].x).abs() <= SIGHT);
            assert!((seen.y - w.agents[0].y).abs() <= SIGHT);
            assert!(w.cell(seen.x, seen.y).is_some());
        }
    }
}

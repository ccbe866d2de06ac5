//! The game loop: every tick, each mod sees its view, answers with actions, and the game
//! checks and plays them. A mod that fails is skipped for the tick and reported; after
//! [`GameConfig::max_failures`] failures in a row it is disabled. Nothing a mod does can stop
//! the game or touch another mod's agent.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::mods::{Budget, Mod, Reload};
use crate::world::{log_text, Action, Outcome, World};

/// Most actions a mod may return in one tick.
pub const MAX_ACTIONS: usize = 4;
/// Most bytes a mod's vars may take, as JSON.
pub const MAX_VARS_BYTES: usize = 4096;
/// Most bytes of output a mod may return in one tick.
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024;

/// How a game is set up.
#[derive(Clone, Debug)]
pub struct GameConfig {
    /// The world's seed: the same seed and mods give the same game.
    pub seed: u64,
    /// Grid columns.
    pub width: i64,
    /// Grid rows.
    pub height: i64,
    /// Each mod's budget per tick.
    pub budget: Budget,
    /// Failures in a row after which a mod is disabled.
    pub max_failures: u32,
    /// Whether the game looks for changed mod files before each tick.
    pub hot_reload: bool,
}

impl Default for GameConfig {
    fn default() -> Self {
        GameConfig {
            seed: 18,
            width: 16,
            height: 10,
            budget: Budget::default(),
            max_failures: 3,
            hot_reload: true,
        }
    }
}

/// One entry of the game's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The tick it happened in (0 for loading).
    pub tick: u64,
    /// The mod (and agent) it is about.
    pub agent: usize,
    /// The mod's name.
    pub name: String,
    /// What happened.
    pub what: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// An action was played.
    Acted(Outcome),
    /// The mod failed this tick and was skipped; the reason says how.
    Skipped(String),
    /// The mod failed too many times in a row and plays no more (until its file changes).
    Disabled(String),
    /// The mod's file changed and its new code runs from this tick.
    Reloaded {
        /// Loads of the mod's code so far.
        generation: u64,
    },
    /// The mod's file changed but does not load; the old code runs on.
    ReloadFailed(String),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tick {} {}#{}: ", self.tick, self.name, self.agent)?;
        match &self.what {
            EventKind::Acted(Outcome::Moved { to }) => write!(f, "moved to {},{}", to.0, to.1),
            EventKind::Acted(Outcome::Blocked { dir }) => write!(f, "blocked going {dir:?}"),
            EventKind::Acted(Outcome::PickedUp { at }) => {
                write!(f, "picked up an item at {},{}", at.0, at.1)
            }
            EventKind::Acted(Outcome::NothingToPickUp) => write!(f, "found nothing to pick up"),
            EventKind::Acted(Outcome::Said(text)) => write!(f, "says \"{text}\""),
            EventKind::Skipped(why) => write!(f, "skipped: {why}"),
            EventKind::Disabled(why) => write!(f, "DISABLED: {why}"),
            EventKind::Reloaded { generation } => {
                write!(f, "reloaded (code generation {generation})")
            }
            EventKind::ReloadFailed(why) => write!(f, "reload failed, old code runs on: {why}"),
        }
    }
}

/// What a mod returns from `on_tick`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModOutput {
    /// What to do, in order.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// The mod's new vars; absent keeps the old ones.
    pub vars: Option<Map<String, Value>>,
}

/// Parses and checks a mod's output: JSON of the right shape, at most [`MAX_ACTIONS`]
/// actions with one move, vars within [`MAX_VARS_BYTES`]. Gives the reason when it is not.
pub fn validate(output: &str) -> Result<ModOutput, String> {
    if output.len() > MAX_OUTPUT_BYTES {
        return Err(format!(
            "output of {} bytes is over the {MAX_OUTPUT_BYTES}-byte limit",
            output.len()
        ));
    }
    let parsed: ModOutput = serde_json::from_str(output).map_err(|e| {
        format!(
            "malformed output ({e}); expected {{\"actions\":[{{\"move\":\"N\"}},\"pick_up\",{{\"say\":\"..\"}}],\"vars\":{{..}}}}, got \"{}\"",
            log_text(output)
        )
    })?;
    if parsed.actions.len() > MAX_ACTIONS {
        return Err(format!(
            "{} actions in one tick; at most {MAX_ACTIONS} are allowed",
            parsed.actions.len()
        ));
    }
    let moves = parsed
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Move(_)))
        .count();
    if moves > 1 {
        return Err(format!(
            "{moves} moves in one tick; an agent moves one step a tick"
        ));
    }
    if let Some(vars) = &parsed.vars {
        let size = serde_json::to_string(vars)
            .map(|s| s.len())
            .unwrap_or(usize::MAX);
        if size > MAX_VARS_BYTES {
            return Err(format!(
                "vars of {size} bytes are over the {MAX_VARS_BYTES}-byte limit"
            ));
        }
    }
    Ok(parsed)
}

struct Slot {
    m: Mod,
    failures: u32,
    disabled: bool,
}

/// A game: the world and its mods.
pub struct Game {
    config: GameConfig,
    world: World,
    slots: Vec<Slot>,
    log: Vec<Event>,
}

impl Game {
    /// A game with the mods in `paths` (`.wasm` or `.wat` files), one agent each, in order.
    pub fn new(config: GameConfig, paths: &[PathBuf]) -> Result<Game, String> {
        let mut slots = Vec::new();
        for path in paths {
            let m = Mod::load(path, config.budget)?;
            slots.push(Slot {
                m,
                failures: 0,
                disabled: false,
            });
        }
        let names: Vec<String> = slots.iter().map(|s| s.m.name().to_string()).collect();
        let world = World::new(config.seed, config.width, config.height, &names);
        Ok(Game {
            config,
            world,
            slots,
            log: Vec::new(),
        })
    }

    /// A game with every `.wasm` and `.wat` file of `dir`, in name order.
    pub fn from_dir(config: GameConfig, dir: &Path) -> Result<Game, String> {
        Game::new(config, &mod_files(dir)?)
    }

    /// The world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Everything that happened so far.
    pub fn log(&self) -> &[Event] {
        &self.log
    }

    /// The mod playing agent `id`.
    pub fn mod_of(&self, id: usize) -> &Mod {
        &self.slots[id].m
    }

    /// Whether the mod of agent `id` was disabled.
    pub fn is_disabled(&self, id: usize) -> bool {
        self.slots[id].disabled
    }

    /// Plays one tick: reloads changed mods (with `hot_reload`), then calls each enabled mod
    /// once and plays its actions. Gives this tick's events.
    pub fn tick(&mut self) -> &[Event] {
        let start = self.log.len();
        self.world.tick += 1;
        let tick = self.world.tick;
        for id in 0..self.slots.len() {
            if self.config.hot_reload {
                self.reload(id);
            }
            if self.slots[id].disabled {
                continue;
            }
            let view = match serde_json::to_string(&self.world.view(id)) {
                Ok(v) => v,
                Err(e) => {
                    self.fail(id, format!("cannot write the view: {e}"));
                    continue;
                }
            };
            let played = self.slots[id]
                .m
                .on_tick(&view)
                .map_err(|e| format!("{} ({})", e, e.kind().name()))
                .and_then(|out| validate(&out));
            match played {
                Ok(output) => {
                    self.slots[id].failures = 0;
                    for action in &output.actions {
                        let outcome = self.world.apply(id, action);
                        self.push(tick, id, EventKind::Acted(outcome));
                    }
                    if let Some(vars) = output.vars {
                        self.world.agents[id].vars = vars;
                    }
                }
                Err(why) => self.fail(id, why),
            }
        }
        &self.log[start..]
    }

    fn reload(&mut self, id: usize) {
        let tick = self.world.tick;
        match self.slots[id].m.check() {
            Reload::Unchanged => {}
            Reload::Swapped { generation } => {
                // New code gets a fresh start.
                self.slots[id].failures = 0;
                self.slots[id].disabled = false;
                self.push(tick, id, EventKind::Reloaded { generation });
            }
            Reload::Failed(why) => self.push(tick, id, EventKind::ReloadFailed(why)),
        }
    }

    fn fail(&mut self, id: usize, why: String) {
        let tick = self.world.tick;
        let slot = &mut self.slots[id];
        slot.failures += 1;
        let failures = slot.failures;
        self.push(tick, id, EventKind::Skipped(why.clone()));
        if failures >= self.config.max_failures {
            self.slots[id].disabled = true;
            let next = if self.config.hot_reload {
                "fix the mod's file and it is reloaded"
            } else {
                "fix the mod and start the game again"
            };
            let reason = format!("{failures} failures in a row, the last: {why}; {next}");
            self.push(tick, id, EventKind::Disabled(reason));
        }
    }

    fn push(&mut self, tick: u64, agent: usize, what: EventKind) {
        let name = self.slots[agent].m.name().to_string();
        self.log.push(Event {
            tick,
            agent,
            name,
            what,
        });
    }
}

/// The `.wasm` and `.wat` files of `dir`, in name order.
pub fn mod_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the mods folder {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("wasm" | "wat"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "no mods in {}: put .wasm or .wat plug-ins exporting `on_tick` there",
            dir.display()
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Dir;

    #[test]
    fn valid_output_parses() {
        let out = validate(r#"{"actions":[{"move":"E"},"pick_up",{"say":"hi"}],"vars":{"n":1}}"#)
            .unwrap();
        assert_eq!(
            out.actions,
            vec![
                Action::Move(Dir::E),
                Action::PickUp,
                Action::Say("hi".into())
            ]
        );
        assert_eq!(out.vars.unwrap()["n"], 1);
        assert!(validate(r#"{"actions":[]}"#).unwrap().vars.is_none());
    }

    #[test]
    fn invalid_output_is_refused_with_the_reason() {
        let cases = [
            ("", "malformed output"),
            (
                r#"{"actions":[{"move":"E"}],"agent":3}"#,
                "unknown field `agent`",
            ),
            (
                r#"{"actions":[{"teleport":[1,1]}]}"#,
                "unknown variant `teleport`",
            ),
            (
                r#"{"actions":[{"move":"E"},{"move":"E"}]}"#,
                "2 moves in one tick",
            ),
            (
                r#"{"actions":["pick_up","pick_up","pick_up","pick_up","pick_up"]}"#,
                "5 actions",
            ),
            (r#"{"actions":[],"vars":[1]}"#, "malformed output"),
        ];
        for (output, reason) in cases {
            let err = validate(output).expect_err(output);
            assert!(err.contains(reason), "{output}: {err}");
        }
        let huge = format!(
            "{{\"actions\":[{{\"say\":\"{}\"}}]}}",
            "x".repeat(MAX_OUTPUT_BYTES)
        );
        assert!(validate(&huge).unwrap_err().contains("byte limit"));
    }
}

//! A mod of examples/game, with Plinth's PDK: each tick it picks up the item it stands on, or
//! takes a step on the shortest way to the nearest item it can see, or wanders. Its finds are
//! counted in the game var `picked`, which the game keeps (so the count survives reloads and
//! other mods' code).

use plinth_pdk::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
struct View {
    tick: u64,
    width: i64,
    height: i64,
    me: Me,
    nearby: Vec<Thing>,
    #[serde(default)]
    vars: Map<String, Value>,
}

#[derive(Deserialize)]
struct Me {
    x: i64,
    y: i64,
}

#[derive(Deserialize)]
struct Thing {
    x: i64,
    y: i64,
    what: String,
}

#[derive(Serialize)]
struct Output {
    actions: Vec<Value>,
    vars: Map<String, Value>,
}

const DIRS: [(&str, i64, i64); 4] = [("N", 0, -1), ("E", 1, 0), ("S", 0, 1), ("W", -1, 0)];

#[plugin_fn]
pub fn on_tick(Json(view): Json<View>) -> FnResult<Json<Output>> {
    let mut vars = view.vars.clone();
    let (x, y) = (view.me.x, view.me.y);
    let blocked = |nx: i64, ny: i64| {
        nx < 0
            || ny < 0
            || nx >= view.width
            || ny >= view.height
            || view
                .nearby
                .iter()
                .any(|t| t.x == nx && t.y == ny && t.what != "item")
    };
    let on_item = view
        .nearby
        .iter()
        .any(|t| t.x == x && t.y == y && t.what == "item");
    if on_item {
        let picked = vars.get("picked").and_then(Value::as_u64).unwrap_or(0) + 1;
        vars.insert("picked".into(), json!(picked));
        return Ok(Json(Output {
            actions: vec![json!("pick_up")],
            vars,
        }));
    }
    // The first step of a shortest path to the nearest item it sees (breadth-first search
    // over the cells in sight), so that a rock between it and an item is walked round.
    let mut choices: Vec<&str> = first_step(&view, &blocked).into_iter().collect();
    // Otherwise wander, keeping a heading and turning clockwise at obstacles.
    let heading = vars
        .get("heading")
        .and_then(Value::as_u64)
        .unwrap_or(view.tick % 4) as usize;
    for i in 0..4 {
        choices.push(DIRS[(heading + i) % 4].0);
    }
    let step = choices.into_iter().find(|d| {
        let (_, dx, dy) = DIRS.iter().find(|(n, _, _)| n == d).unwrap();
        !blocked(x + dx, y + dy)
    });
    let mut actions = Vec::new();
    if let Some(d) = step {
        let index = DIRS.iter().position(|(n, _, _)| *n == d).unwrap_or(0);
        vars.insert("heading".into(), json!(index));
        actions.push(json!({ "move": d }));
    }
    Ok(Json(Output { actions, vars }))
}

/// How far the game shows things (its `SIGHT`): the search stays within what is seen.
const SIGHT: i64 = 4;

fn first_step(view: &View, blocked: &dyn Fn(i64, i64) -> bool) -> Option<&'static str> {
    let (x0, y0) = (view.me.x, view.me.y);
    let side = (2 * SIGHT + 1) as usize;
    let slot = |x: i64, y: i64| ((y - y0 + SIGHT) as usize) * side + (x - x0 + SIGHT) as usize;
    // For each cell reached: the first step taken from the start to reach it.
    let mut first: Vec<Option<&'static str>> = vec![None; side * side];
    let mut queue = std::collections::VecDeque::new();
    for (name, dx, dy) in DIRS {
        let (x, y) = (x0 + dx, y0 + dy);
        if !blocked(x, y) {
            first[slot(x, y)] = Some(name);
            queue.push_back((x, y));
        }
    }
    while let Some((x, y)) = queue.pop_front() {
        let step = first[slot(x, y)];
        if view
            .nearby
            .iter()
            .any(|t| t.x == x && t.y == y && t.what == "item")
        {
            return step;
        }
        for (_, dx, dy) in DIRS {
            let (nx, ny) = (x + dx, y + dy);
            let in_sight = (nx - x0).abs() <= SIGHT && (ny - y0).abs() <= SIGHT;
            if in_sight && (nx, ny) != (x0, y0) && !blocked(nx, ny) && first[slot(nx, ny)].is_none()
            {
                first[slot(nx, ny)] = step;
                queue.push_back((nx, ny));
            }
        }
    }
    None
}

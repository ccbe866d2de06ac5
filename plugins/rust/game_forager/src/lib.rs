//! A mod of examples/game, with Plinth's PDK: each tick it picks up the item it stands on, or
//! steps towards the nearest item it can see, or wanders. Its finds are counted in the game
//! var `picked`, which the game keeps (so the count survives reloads and other mods' code).

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
    // The nearest item; the game lists things in a fixed order, so ties break the same way.
    let target = view
        .nearby
        .iter()
        .filter(|t| t.what == "item")
        .min_by_key(|t| (t.x - x).abs() + (t.y - y).abs());
    let mut choices: Vec<&str> = Vec::new();
    if let Some(t) = target {
        if t.x > x {
            choices.push("E");
        }
        if t.x < x {
            choices.push("W");
        }
        if t.y > y {
            choices.push("S");
        }
        if t.y < y {
            choices.push("N");
        }
    }
    // Otherwise (or when the way is blocked) wander, turning clockwise at obstacles.
    let heading = vars.get("heading").and_then(Value::as_u64).unwrap_or(view.tick % 4) as usize;
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

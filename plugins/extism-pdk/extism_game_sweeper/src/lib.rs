//! A mod of examples/game, with the published extism-pdk: it sweeps the grid row by row (east,
//! one row down, west, ...), picking up the items it walks over and counting them in the game
//! var `picked`. When it starts without its own var `sweep` (a new game, or after a hot reload
//! replaced another mod's code) it says so.

use extism_pdk::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
struct View {
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

#[plugin_fn]
pub fn on_tick(Json(view): Json<View>) -> FnResult<Json<Output>> {
    let mut vars = view.vars.clone();
    let mut actions = Vec::new();
    let (x, y) = (view.me.x, view.me.y);
    let sweep = match vars.get("sweep").and_then(Value::as_str) {
        Some(s) => s.to_string(),
        None => {
            actions.push(json!({ "say": "sweeper taking over" }));
            "E".to_string()
        }
    };
    let free = |nx: i64, ny: i64| {
        nx >= 0
            && ny >= 0
            && nx < view.width
            && ny < view.height
            && !view
                .nearby
                .iter()
                .any(|t| t.x == nx && t.y == ny && t.what != "item")
    };
    if view
        .nearby
        .iter()
        .any(|t| t.x == x && t.y == y && t.what == "item")
    {
        let picked = vars.get("picked").and_then(Value::as_u64).unwrap_or(0) + 1;
        vars.insert("picked".into(), json!(picked));
        actions.push(json!("pick_up"));
    }
    let dx = if sweep == "E" { 1 } else { -1 };
    let mut next = sweep.clone();
    if free(x + dx, y) {
        actions.push(json!({ "move": sweep }));
    } else {
        // End of the row (or a rock): one row down (back to the top at the bottom), turn round.
        next = if sweep == "E" { "W".into() } else { "E".into() };
        if free(x, y + 1) {
            actions.push(json!({ "move": "S" }));
        } else if y + 1 >= view.height && free(x, y - 1) {
            actions.push(json!({ "move": "N" }));
        }
    }
    vars.insert("sweep".into(), json!(next));
    Ok(Json(Output { actions, vars }))
}

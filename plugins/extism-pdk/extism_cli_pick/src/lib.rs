//! A jtool subcommand: prints the fields of the JSON document on stdin that the arguments
//! name, one line each. A field path is dot-separated keys and array indexes (`user.tags.0`);
//! strings print bare, other values as compact JSON, missing fields as `null`. The
//! description is plain text (first line the summary, the rest the usage).

use extism_pdk::json::Value;
use extism_pdk::*;

#[plugin_fn]
pub fn describe() -> FnResult<String> {
    Ok("Pick fields out of the JSON on stdin\n\
        pick PATH...\n\n\
        PATH is dot-separated object keys and array indexes, e.g. `user.name` or `items.0.id`. \
        Each PATH prints one line: strings bare, other values as JSON, missing ones as null."
        .to_string())
}

fn lookup<'a>(mut value: &'a Value, path: &str) -> Option<&'a Value> {
    for step in path.split('.').filter(|s| !s.is_empty()) {
        value = match value {
            Value::Object(map) => map.get(step)?,
            Value::Array(items) => items.get(step.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

#[plugin_fn]
pub fn run(input: String) -> FnResult<String> {
    let args: Vec<String> = match config::get("args")? {
        Some(text) => json::from_str(&text)?,
        None => Vec::new(),
    };
    if args.is_empty() {
        return Err(WithReturnCode(
            Error::msg("usage: pick PATH... (e.g. pick user.name)"),
            2,
        ));
    }
    let doc: Value =
        json::from_str(&input).map_err(|e| Error::msg(format!("stdin is not JSON: {e}")))?;
    let mut out = String::new();
    for path in &args {
        match lookup(&doc, path) {
            Some(Value::String(s)) => out.push_str(s),
            Some(v) => out.push_str(&v.to_string()),
            None => out.push_str("null"),
        }
        out.push('\n');
    }
    Ok(out)
}

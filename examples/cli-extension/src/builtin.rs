//! The commands jtool has without plug-ins. Like `jq -S` and jq's `keys`, object keys come
//! out sorted.

use serde_json::Value;

fn parse(input: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(input).map_err(|e| format!("stdin is not valid JSON: {e}"))
}

/// Pretty-prints the JSON document on stdin, with two-space indents and sorted keys.
pub fn pretty(input: &[u8]) -> Result<String, String> {
    let value = parse(input)?;
    let mut out = serde_json::to_string_pretty(&value).expect("a JSON value serializes");
    out.push('\n');
    Ok(out)
}

/// The keys of the JSON object on stdin, one a line, sorted and escaped; the indexes of an
/// array.
pub fn keys(input: &[u8]) -> Result<String, String> {
    let lines: Vec<String> = match parse(input)? {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(items) => (0..items.len()).map(|i| i.to_string()).collect(),
        other => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                _ => "a string",
            };
            return Err(format!(
                "stdin is {kind}, which has no keys; `keys` wants an object or an array"
            ));
        }
    };
    // A key may hold any text; escaped, each stays on its line and off the terminal's controls.
    Ok(lines
        .iter()
        .map(|l| format!("{}\n", crate::escape(l)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_and_keys() {
        assert_eq!(
            pretty(br#"{"b":1,"a":[true]}"#).unwrap(),
            "{\n  \"a\": [\n    true\n  ],\n  \"b\": 1\n}\n"
        );
        assert_eq!(keys(br#"{"b":1,"a":2}"#).unwrap(), "a\nb\n");
        assert_eq!(keys(b"[5,6]").unwrap(), "0\n1\n");
        assert!(keys(b"3").unwrap_err().contains("a number"));
        assert!(pretty(b"{").unwrap_err().contains("not valid JSON"));
    }
}

//! A jtool subcommand: counts the words of the text on stdin and prints the most frequent,
//! one `COUNT<TAB>WORD` line each. Arguments arrive as config key `args` (a JSON array).

use std::collections::HashMap;

use plinth_pdk::*;
use serde::Serialize;

const DEFAULT_TOP: usize = 10;

#[derive(Serialize)]
struct Description {
    summary: &'static str,
    usage: &'static str,
}

#[plugin_fn]
pub fn describe() -> FnResult<Json<Description>> {
    Ok(Json(Description {
        summary: "Word frequencies of the text on stdin",
        usage: "wordfreq [--top N]\n\nPrints the N most frequent words (default 10), one \
                `COUNT<TAB>WORD` line each, most frequent first; ties in alphabetical order. \
                Words are runs of letters, digits and apostrophes, compared in lower case.",
    }))
}

fn args() -> Result<Vec<String>, Error> {
    match config::get("args")? {
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            Error::msg(format!(
                "config key `args` is not a JSON array of strings: {e}"
            ))
        }),
        None => Ok(Vec::new()),
    }
}

fn top(args: &[String]) -> Result<usize, Error> {
    match args {
        [] => Ok(DEFAULT_TOP),
        [flag, n] if flag == "--top" => n
            .parse()
            .map_err(|_| Error::msg(format!("--top wants a whole number, not `{n}`"))),
        _ => Err(Error::msg(format!(
            "unexpected arguments {args:?}; usage: wordfreq [--top N]"
        ))),
    }
}

#[plugin_fn]
pub fn run(text: String) -> FnResult<String> {
    let top = top(&args()?)?;
    let mut counts: HashMap<String, u64> = HashMap::new();
    for word in text
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = String::new();
    for (word, count) in ranked.into_iter().take(top) {
        out.push_str(&format!("{count}\t{word}\n"));
    }
    Ok(out)
}

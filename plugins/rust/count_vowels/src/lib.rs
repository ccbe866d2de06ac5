//! Counts the vowels of the input text. The vowels come from config key `vowels`; a running
//! total over the calls of one plug-in instance is kept in var `total`.

use plinth_pdk::*;
use serde::Serialize;

const DEFAULT_VOWELS: &str = "aeiouAEIOU";

#[derive(Serialize)]
struct VowelReport {
    count: u64,
    total: u64,
    vowels: String,
}

#[plugin_fn]
pub fn count_vowels(text: String) -> FnResult<Json<VowelReport>> {
    let vowels = config::get("vowels")?.unwrap_or_else(|| DEFAULT_VOWELS.to_string());
    let count = text.chars().filter(|c| vowels.contains(*c)).count() as u64;
    let total = var::get::<u64>("total")?.unwrap_or(0) + count;
    var::set("total", total)?;
    debug!("{count} vowels, {total} so far");
    Ok(Json(VowelReport {
        count,
        total,
        vowels,
    }))
}

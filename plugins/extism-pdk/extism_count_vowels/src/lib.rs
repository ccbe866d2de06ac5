//! count_vowels as in Extism's documentation: counts the characters of the input found in
//! config `vowels` (default "aeiouAEIOU") and keeps a running total in var `total`.
use extism_pdk::*;
use serde::Serialize;

#[derive(Serialize, ToBytes)]
#[encoding(Json)]
struct VowelReport {
    count: u64,
    total: u64,
    vowels: String,
}

#[plugin_fn]
pub fn count_vowels(input: String) -> FnResult<VowelReport> {
    let vowels = config::get("vowels")?.unwrap_or_else(|| "aeiouAEIOU".to_string());
    let count = input.chars().filter(|c| vowels.contains(*c)).count() as u64;
    // u64 vars are 8 bytes little-endian (extism-convert), the same as the C and Rust examples.
    let total = var::get::<u64>("total")?.unwrap_or(0) + count;
    var::set("total", total)?;
    Ok(VowelReport {
        count,
        total,
        vowels,
    })
}

//! `longest(text)`, an aggregate for the SQLite extension: the longest text of the group (the
//! first one on ties). The state is a var, which lives as long as the group's instance.
use extism_pdk::*;

#[plugin_fn]
pub fn longest_step(input: String) -> FnResult<()> {
    let best: Option<String> = var::get("best")?;
    if best.is_none_or(|b| input.chars().count() > b.chars().count()) {
        var::set("best", input)?;
    }
    Ok(())
}

#[plugin_fn]
pub fn longest_final() -> FnResult<String> {
    Ok(var::get("best")?.unwrap_or_default())
}

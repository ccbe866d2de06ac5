//! A counter in var `count` (u32, little-endian): `increment` adds one and outputs the new
//! value as text; `reset` removes the var.
use extism_pdk::*;

#[plugin_fn]
pub fn increment() -> FnResult<String> {
    let n = var::get::<u32>("count")?.unwrap_or(0) + 1;
    var::set("count", n)?;
    Ok(n.to_string())
}

#[plugin_fn]
pub fn reset() -> FnResult<()> {
    var::remove("count")?;
    Ok(())
}

//! Outputs the config value of the key given as input, or "missing".
use extism_pdk::*;

#[plugin_fn]
pub fn get_config(key: String) -> FnResult<String> {
    Ok(config::get(&key)?.unwrap_or_else(|| "missing".to_string()))
}

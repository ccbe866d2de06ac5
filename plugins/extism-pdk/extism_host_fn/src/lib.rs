//! Calls the host function `greet` with the input and outputs its answer.
use extism_pdk::*;

#[host_fn]
extern "ExtismHost" {
    fn greet(name: String) -> String;
}

#[plugin_fn]
pub fn call_greet(name: String) -> FnResult<String> {
    // SAFETY: the host provides `greet` with this signature, or loading fails.
    Ok(unsafe { greet(name)? })
}

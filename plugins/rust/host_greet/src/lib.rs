//! Asks the host function `greet` (namespace `extism:host/user`) for a greeting.

use plinth_pdk::*;

#[host_fn]
extern "ExtismHost" {
    fn greet(name: String) -> String;
}

#[plugin_fn]
pub fn call_greet(name: String) -> FnResult<String> {
    // SAFETY: the host provides `greet` with this signature, or the plug-in does not load.
    let greeting = unsafe { greet(name)? };
    Ok(greeting)
}

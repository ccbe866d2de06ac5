//! The benchmark plug-in (crates/bench/benches/vs_extism.rs), on the Plinth PDK: the same
//! source as plugins/extism-pdk/extism_echo, with the crate name changed.

use plinth_pdk::*;

/// The host function has the export's name, so it lives in a module of its own.
mod host {
    use plinth_pdk::*;

    #[host_fn]
    extern "ExtismHost" {
        pub fn reflect(input: Vec<u8>) -> Vec<u8>;
    }
}

/// Outputs its input: the PDK reads it in full (`Vec<u8>`) and writes it back.
#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

/// Reads no input and outputs nothing: the fixed cost of a call.
#[plugin_fn]
pub fn empty() -> FnResult<()> {
    Ok(())
}

/// Passes its input to the host function `reflect` (extism:host/user) and outputs its result.
#[plugin_fn]
pub fn reflect(input: Vec<u8>) -> FnResult<Vec<u8>> {
    // SAFETY: the host provides `reflect` with this signature, or the plug-in does not load.
    Ok(unsafe { host::reflect(input)? })
}

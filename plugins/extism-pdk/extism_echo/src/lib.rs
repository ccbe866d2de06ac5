//! The benchmark plug-in, the idiomatic extism-pdk way: `echo` outputs its input, `empty`
//! reads nothing and outputs nothing, `reflect` returns what the host function `reflect`
//! makes of its input.
use extism_pdk::*;

/// The host function has the export's name, so it lives in a module of its own.
mod host {
    use extism_pdk::*;

    #[host_fn]
    extern "ExtismHost" {
        pub fn reflect(input: Vec<u8>) -> Vec<u8>;
    }
}

#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

#[plugin_fn]
pub fn empty() -> FnResult<()> {
    Ok(())
}

#[plugin_fn]
pub fn reflect(input: Vec<u8>) -> FnResult<Vec<u8>> {
    // SAFETY: the host provides `reflect` with this signature, or loading fails.
    Ok(unsafe { host::reflect(input)? })
}

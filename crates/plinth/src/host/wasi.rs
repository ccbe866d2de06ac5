//! WASI preview 1 for plug-ins that ask for it: preopens from `allowed_paths` (with `ro:`
//! honoured), stdout/stderr inherited, captured or discarded, and a `poll_oneoff` that keeps
//! to the call's deadline and cancel (`poll.rs`).

use wasmtime::Linker;

use super::poll;
use crate::store::StoreData;

/// Adds WASI preview 1 to `linker`, with Plinth's `poll_oneoff` in place of wasmtime-wasi's.
pub(crate) fn add_wasi_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, |d: &mut StoreData| {
        d.wasi.as_mut().expect("WASI is on for this plug-in")
    })?;
    // Replacing a definition needs shadowing, which a new linker does not allow: allow it for
    // this one definition only.
    linker.allow_shadowing(true);
    linker.func_wrap(poll::MODULE, poll::NAME, poll::poll_oneoff)?;
    linker.allow_shadowing(false);
    Ok(())
}

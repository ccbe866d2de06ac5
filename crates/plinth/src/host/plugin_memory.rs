//! The plug-in's own memory (its `memory` export), for the host functions that take pointers
//! into it rather than Extism handles: the bulk copies (`env.rs`), the streams (`stream.rs`)
//! and the HTTP body streams (`http_stream.rs`).

use wasmtime::{Caller, Extern};

use crate::store::StoreData;

/// The plug-in's memory and the range of `len` bytes at `ptr` in it, checked: the stream
/// functions take pointers into the plug-in's own memory.
pub(super) fn plugin_range(
    c: &mut Caller<StoreData>,
    ptr: i32,
    len: i32,
    what: &str,
) -> wasmtime::Result<(wasmtime::Memory, usize, usize)> {
    let memory = plugin_memory(c)?;
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let size = memory.data_size(&*c);
    if ptr.checked_add(len).is_none_or(|end| end > size) {
        return Err(wasmtime::format_err!(
            "{what} of {len} bytes at {ptr} is outside the plug-in's {size}-byte memory"
        ));
    }
    Ok((memory, ptr, len))
}

pub(super) fn plugin_memory(c: &mut Caller<StoreData>) -> wasmtime::Result<wasmtime::Memory> {
    match c.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::format_err!(
            "bulk copies need the plug-in's memory exported as `memory`"
        )),
    }
}

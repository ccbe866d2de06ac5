//! Misbehaving exports, for the SQLite extension's tests (extensions/sqlite/tests): each one
//! fails in a way a host must survive.

use plinth_pdk::*;

/// Traps (wasm `unreachable`).
#[plugin_fn]
pub fn trap() -> FnResult<()> {
    core::arch::wasm32::unreachable()
}

/// Never returns: only a timeout or fuel limit stops it.
#[plugin_fn]
pub fn spin() -> FnResult<()> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Grows linear memory 1 MiB at a time until the host refuses.
#[plugin_fn]
pub fn grow() -> FnResult<()> {
    loop {
        if core::arch::wasm32::memory_grow(0, 16) == usize::MAX {
            return Err(Error::msg("memory.grow was refused").into());
        }
    }
}

/// Outputs as many bytes `x` as its input (decimal text) says.
#[plugin_fn]
pub fn huge(input: String) -> FnResult<Vec<u8>> {
    let n: usize = input
        .trim()
        .parse()
        .map_err(|_| Error::msg("input must be a byte count"))?;
    Ok(vec![b'x'; n])
}

/// Fails with a message full of control characters (newline, tab, escape, bell).
#[plugin_fn]
pub fn ctrl_error(input: String) -> FnResult<()> {
    Err(Error::msg(format!("line1\nline2\ttab\x1b[31mred\x07bell {input}")).into())
}

/// Outputs bytes that are not UTF-8.
#[plugin_fn]
pub fn bad_utf8() -> FnResult<Vec<u8>> {
    Ok(vec![0xff, 0xfe, b'a'])
}

/// Outputs its input unchanged.
#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

//! The raw Extism ABI: every import from `extism:host/env`.
//!
//! Handles are `u64` offsets into Extism memory, which is not the plug-in's linear memory;
//! 0 means null. Prefer the safe wrappers ([`Memory`](crate::Memory), [`input`](crate::input),
//! [`config`](crate::config), ...) over calling these directly.

#![allow(missing_docs)] // one line each in the ABI reference; the names say it

#[link(wasm_import_module = "extism:host/env")]
unsafe extern "C" {
    /// A new block of `n` bytes; 0 when `n` is 0 or memory is exhausted.
    pub fn alloc(n: u64) -> u64;
    /// Releases a block; 0 is ignored.
    pub fn free(handle: u64);
    /// Used length of the block starting at `handle`; 0 if there is none.
    pub fn length(handle: u64) -> u64;
    /// Like [`length`], allowed to skip validation.
    pub fn length_unsafe(handle: u64) -> u64;
    pub fn load_u8(addr: u64) -> u8;
    /// 8 bytes, little-endian, unaligned.
    pub fn load_u64(addr: u64) -> u64;
    pub fn store_u8(addr: u64, value: u8);
    pub fn store_u64(addr: u64, value: u64);

    pub fn input_length() -> u64;
    /// Handle of the input block.
    pub fn input_offset() -> u64;
    /// Input byte at an offset relative to the start of the input.
    pub fn input_load_u8(offset: u64) -> u8;
    pub fn input_load_u64(offset: u64) -> u64;
    /// The call's output is `[handle, handle + len)`; the host takes ownership.
    pub fn output_set(handle: u64, len: u64);
    /// The block holds a UTF-8 error message (0 clears it); the host takes ownership.
    pub fn error_set(handle: u64);

    /// Frees `key`; the caller owns the result (0 if unset).
    pub fn config_get(key: u64) -> u64;
    /// Frees `key`; the caller owns the result (0 if unset).
    pub fn var_get(key: u64) -> u64;
    /// Frees both handles; `value` 0 removes the var.
    pub fn var_set(key: u64, value: u64);
    /// `request` is JSON `{"url":..,"headers":{..},"method":..}`; frees both handles and
    /// returns the response body (0 if empty).
    pub fn http_request(request: u64, body: u64) -> u64;
    pub fn http_status_code() -> i32;
    /// JSON object of the last response's headers, or 0 when the host does not expose them.
    pub fn http_headers() -> u64;

    /// Each logs the UTF-8 block and frees it.
    pub fn log_trace(message: u64);
    pub fn log_debug(message: u64);
    pub fn log_info(message: u64);
    pub fn log_warn(message: u64);
    pub fn log_error(message: u64);
    /// 0 (trace) to 4 (error); `i32::MAX` when logging is off.
    pub fn get_log_level() -> i32;
}

// Plinth's bulk copies (feature `bulk-copy`): whole ranges between the plug-in's memory and
// Extism memory in one call. A range outside the input or either memory traps.
#[cfg(feature = "bulk-copy")]
#[link(wasm_import_module = "plinth:host/env")]
unsafe extern "C" {
    /// Copies `len` input bytes from `offset` (relative to the input) to `dst`.
    pub fn input_read(offset: u64, dst: *mut u8, len: u32);
    /// Copies `len` bytes at address `src` of Extism memory to `dst`.
    pub fn read(src: u64, dst: *mut u8, len: u32);
    /// Copies `len` bytes at `src` to address `dst` of Extism memory.
    pub fn write(dst: u64, src: *const u8, len: u32);
    /// Like [`alloc`], but the block's bytes are left as they were: for a block written in
    /// full at once.
    pub fn alloc_uninit(n: u64) -> u64;
    /// Makes the call's output the `len` bytes at `ptr` of the plug-in's own memory, which
    /// the host reads after the call returns: the plug-in keeps them until its next call.
    pub fn output_direct(ptr: *const u8, len: u32);
}

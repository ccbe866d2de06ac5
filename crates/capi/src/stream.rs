//! Streaming calls through two callbacks (`plinth_plugin_call_stream`): the plug-in reads its
//! input from a read callback a chunk at a time and each chunk it writes reaches the write
//! callback before its write returns (see docs/streaming.md).

use std::ffi::{c_char, c_void};
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;

use crate::plugin::{bad_argument, failure, ExtismPlugin};
use crate::{guard, str_arg};

/// Gives the plug-in up to `len` bytes of input: copies them to `buf` and returns how many
/// (1 to `len`), 0 at the end of the input, or a negative number when the input failed (the
/// call then fails with `PLINTH_ERROR_KIND_STREAM`). Called on the thread that called
/// `plinth_plugin_call_stream`, only while that call runs; `buf` is valid only until it
/// returns. It may block: the plug-in waits for it (the call's `timeout_ms` is checked when it
/// returns, not while it blocks).
pub type PlinthStreamRead =
    Option<unsafe extern "C" fn(user_data: *mut c_void, buf: *mut u8, len: u64) -> i64>;

/// Takes `len` bytes of the plug-in's output at `buf`, valid only until it returns. Returns 0
/// when it took all of them, or the number it took (1 to `len`, as `write(2)` does: it is then
/// called again with the rest), or a negative number when the output is closed (the plug-in is
/// told, and the call fails with `PLINTH_ERROR_KIND_STREAM`). Called on the thread that called
/// `plinth_plugin_call_stream`, only while that call runs; a slow callback slows the plug-in,
/// so memory stays bounded.
pub type PlinthStreamWrite =
    Option<unsafe extern "C" fn(user_data: *mut c_void, buf: *const u8, len: u64) -> i64>;

/// What went through a streaming call.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PlinthStreamStats {
    /// Bytes of input the plug-in was given.
    pub input_bytes: u64,
    /// Bytes given to the write callback.
    pub output_bytes: u64,
}

/// The read callback as an `io::Read`.
struct CallbackReader {
    f: unsafe extern "C" fn(*mut c_void, *mut u8, u64) -> i64,
    user_data: *mut c_void,
}

impl Read for CallbackReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let asked = buf.len();
        // SAFETY: the caller of plinth_plugin_call_stream vouches for the callback and its
        // user data; `buf` is writable for `asked` bytes.
        let n = unsafe { (self.f)(self.user_data, buf.as_mut_ptr(), asked as u64) };
        match usize::try_from(n) {
            Ok(n) if n <= asked => Ok(n),
            Ok(_) => Err(io::Error::other(format!(
                "the read callback returned {n}, more than the {asked} bytes it was asked for"
            ))),
            Err(_) => Err(io::Error::other(format!(
                "the read callback returned {n} (an error)"
            ))),
        }
    }
}

/// The write callback as an `io::Write`, held to the plug-in's output limit.
struct CallbackWriter {
    f: unsafe extern "C" fn(*mut c_void, *const u8, u64) -> i64,
    user_data: *mut c_void,
    written: u64,
    limit: u64,
}

impl Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len();
        if self.written.saturating_add(len as u64) > self.limit {
            return Err(io::Error::other(format!(
                "the output is over the limit of {} bytes set with \
                 plinth_plugin_set_output_limit (a write of {len} more was refused); raise \
                 the limit if the plug-in may write that much",
                self.limit
            )));
        }
        // SAFETY: as for the reader; `buf` is readable for `len` bytes.
        let n = unsafe { (self.f)(self.user_data, buf.as_ptr(), len as u64) };
        let took = match usize::try_from(n) {
            Ok(0) => len,
            Ok(n) if n <= len => n,
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "the write callback returned {n}, more than the {len} bytes it was given"
                )))
            }
            Err(_) => {
                return Err(io::Error::other(format!(
                    "the write callback returned {n} (an error)"
                )))
            }
        };
        self.written += took as u64;
        Ok(took)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Calls `func_name` with its input read through `read` and its output written through
/// `write`, both called on this thread with `user_data` while the call runs (see
/// `PlinthStreamRead` and `PlinthStreamWrite`). Output reaches `write` while the plug-in runs,
/// chunk by chunk, for plug-ins that stream (`plinth:host/env` `stream_write`, the PDKs'
/// output streams); a plug-in that does not stream (any Extism-PDK plug-in) gets its whole
/// input read first, up to what its memory can hold, and its output written at the end.
/// `timeout_ms`, fuel, memory limits and `extism_plugin_cancel` apply as to any call; the
/// output limit is `plinth_plugin_set_output_limit`'s.
///
/// Returns 0 on success, with what went through in `*stats` (when not null; zeroed on
/// failure). On failure returns what `extism_plugin_call` would (never 0: -1 where it would
/// return 0), with the message in `extism_plugin_error` and the kind in
/// `plinth_plugin_error_kind`: `PLINTH_ERROR_KIND_STREAM` for a read or write callback that
/// returned an error, an output over the limit, or an input too large for a plug-in that
/// does not stream. A null plug-in returns -1 with nothing reported; a null `func_name`,
/// `read` or `write` is `PLINTH_ERROR_KIND_OTHER`.
#[no_mangle]
pub unsafe extern "C" fn plinth_plugin_call_stream(
    plugin: *mut ExtismPlugin,
    func_name: *const c_char,
    read: PlinthStreamRead,
    write: PlinthStreamWrite,
    user_data: *mut c_void,
    stats: *mut PlinthStreamStats,
) -> i32 {
    plinth_plugin_call_stream_with_host_context(
        plugin,
        func_name,
        read,
        write,
        user_data,
        std::ptr::null_mut(),
        stats,
    )
}

/// Like `plinth_plugin_call_stream`; host functions reach `host_context` through
/// `extism_current_plugin_host_context` during this call.
#[no_mangle]
pub unsafe extern "C" fn plinth_plugin_call_stream_with_host_context(
    plugin: *mut ExtismPlugin,
    func_name: *const c_char,
    read: PlinthStreamRead,
    write: PlinthStreamWrite,
    user_data: *mut c_void,
    host_context: *mut c_void,
    stats: *mut PlinthStreamStats,
) -> i32 {
    guard(-1, || {
        if !stats.is_null() {
            *stats = PlinthStreamStats::default();
        }
        let Some(p) = plugin.as_ref() else { return -1 };
        let Some(name) = str_arg(func_name) else {
            p.set_call_error(Some(bad_argument("function name is null or not UTF-8")));
            return -1;
        };
        let (Some(read), Some(write)) = (read, write) else {
            p.set_call_error(Some(bad_argument(
                "plinth_plugin_call_stream needs both callbacks, and read or write is null \
                 (for no input, pass a read callback that returns 0; to drop the output, a \
                 write callback that returns 0)",
            )));
            return -1;
        };
        let reader = CallbackReader { f: read, user_data };
        let writer = CallbackWriter {
            f: write,
            user_data,
            written: 0,
            limit: p.output_limit.load(Ordering::SeqCst),
        };
        let result = p.slot.with(name, |pl| {
            if host_context.is_null() {
                pl.call_stream(name, reader, writer)
            } else {
                let context = crate::function::HostContext(host_context);
                pl.call_stream_with_host_context(name, reader, writer, context)
            }
        });
        match result {
            Ok(Ok(s)) => {
                p.set_call_error(None);
                if !stats.is_null() {
                    *stats = PlinthStreamStats {
                        input_bytes: s.input_bytes,
                        output_bytes: s.output_bytes,
                    };
                }
                0
            }
            Ok(Err(e)) => {
                let code = match e.code() {
                    0 => -1,
                    code => code,
                };
                p.set_call_error(Some(failure(e)));
                code
            }
            Err(refused) => {
                p.set_call_error(Some(refused));
                -1
            }
        }
    })
}

/// Caps what one streaming call (`plinth_plugin_call_stream`) of the plug-in may give its
/// write callback: a write that would go over fails the call with `PLINTH_ERROR_KIND_STREAM`,
/// after the bytes before it were delivered. `UINT64_MAX`, the default, is no cap. Classic
/// calls are not affected: their output is bounded by the plug-in's memory. Takes effect at
/// the next call. Returns false for a null plug-in.
#[no_mangle]
pub unsafe extern "C" fn plinth_plugin_set_output_limit(
    plugin: *mut ExtismPlugin,
    bytes: u64,
) -> bool {
    guard(false, || match plugin.as_ref() {
        Some(p) => {
            p.output_limit.store(bytes, Ordering::SeqCst);
            true
        }
        None => false,
    })
}

//! libplinth: the C API of Plinth, with the names, types and ownership rules of libextism so
//! that existing Extism bindings run on Plinth unchanged.
//!
//! Rules at the boundary: no panic crosses it (each entry point catches and reports one);
//! every pointer argument is checked for null; every failure leaves a message where the
//! documented call (`extism_plugin_error`, or the `errmsg` out-parameter) can read it.
//!
//! Beside Extism's names, Plinth's own `plinth_*` functions give what every Plinth SDK builds
//! on: loading from a path (`plinth_plugin_new_from_file`: a manifest file's relative paths
//! are relative to its folder), and the kind of a failure as `plinth::ErrorKind`'s stable
//! number (`plinth_plugin_error_kind`, `plinth_plugin_new_error_kind`, `PLINTH_ERROR_KIND_*`)
//! and name (`plinth_error_kind_name`). Precompiled artifacts (`plinth_compile_artifact`,
//! `plinth_compiled_plugin_new_from_artifact`) skip compiling at load time, and
//! `plinth_compiled_plugin_call_fresh` runs one call on an instance of its own.
//!
//! Thread safety: an `ExtismPlugin` may be used from any thread, and calls on it take turns.
//! A host function that calls back into the plug-in that is calling it gets an error (-1),
//! not a deadlock. `ExtismCompiledPlugin` may be shared by threads freely. Output and error
//! pointers stay valid until the next call on the same plug-in.
//!
//! Async calls (`plinth_plugin_call_async`) run on a small tokio runtime that the library owns
//! and report through a callback; async host functions (`plinth_function_new_async`) are
//! finished later, from any thread, through a `PlinthCompletion`. While an async call of a
//! plug-in is queued or running, its synchronous functions fail at once (`Busy`) rather than
//! wait.
//!
//! Streaming calls (`plinth_plugin_call_stream`) read the plug-in's input from a read callback
//! and hand its output to a write callback chunk by chunk while it runs, on the calling
//! thread; `plinth_plugin_set_output_limit` caps that output, and their failures are
//! `PLINTH_ERROR_KIND_STREAM`.

#![allow(clippy::missing_safety_doc)]

mod async_call;
mod buffer;
mod completion;
mod function;
mod kind;
mod log;
mod plugin;
mod slot;
mod stream;

pub use async_call::*;
pub use buffer::*;
pub use completion::*;
pub use function::*;
pub use kind::*;
pub use log::*;
pub use plugin::*;
pub use stream::*;

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Sizes and lengths.
pub type ExtismSize = u64;
/// An offset into a plug-in's Extism memory.
pub type ExtismMemoryHandle = u64;

/// Runs `f`, turning a panic into `fallback` so that it never unwinds into C.
pub(crate) fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// A C string argument as `&str`, or `None` for null or invalid UTF-8.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    CStr::from_ptr(p).to_str().ok()
}

/// A byte-buffer argument; a null pointer is only fine with length 0.
pub(crate) unsafe fn bytes_arg<'a>(p: *const u8, len: ExtismSize) -> Option<&'a [u8]> {
    slice_arg(p, len)
}

/// An array argument of `len` elements. `None` for a null pointer with a non-zero length, or a
/// length no object can have (over `isize::MAX` bytes: `from_raw_parts` would be undefined
/// behaviour, whatever C meant).
pub(crate) unsafe fn slice_arg<'a, T>(p: *const T, len: ExtismSize) -> Option<&'a [T]> {
    if len == 0 {
        return Some(&[]);
    }
    let fits = usize::try_from(len)
        .ok()
        .and_then(|n| n.checked_mul(std::mem::size_of::<T>().max(1)))
        .is_some_and(|bytes| bytes <= isize::MAX as usize);
    if p.is_null() || !fits || !p.is_aligned() {
        return None;
    }
    Some(std::slice::from_raw_parts(p, len as usize))
}

/// The version of this library, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn extism_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

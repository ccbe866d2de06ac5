//! Write Plinth plug-ins in Rust.
//!
//! Plug-ins built with this crate speak the Extism ABI, so they run on Plinth and on Extism
//! hosts alike, and its surface mirrors `extism-pdk` 1.4: moving a plug-in over is a change of
//! crate name.
//!
//! ```ignore
//! use plinth_pdk::*;
//!
//! #[plugin_fn]
//! pub fn greet(name: String) -> FnResult<String> {
//!     info!("greeting {name}");
//!     Ok(format!("Hello, {name}!"))
//! }
//! ```
//!
//! Build with `cargo build --release --target wasm32-unknown-unknown` (or `wasm32-wasip1` for
//! plug-ins that use files, clocks or randomness through WASI) and a `cdylib` crate type.
//!
//! Feature `stream` adds the `stream` module: the input as `impl Read` and the output as
//! `impl Write`, a chunk at a time, on Plinth hosts, with a whole-buffer fallback on Extism.

#![warn(missing_docs)]
#![allow(clippy::missing_safety_doc)]

pub mod abi;
pub mod config;
#[cfg(feature = "bulk-copy")]
mod direct;
pub mod http;
#[cfg(feature = "stream")]
pub mod http_stream;
mod log;
mod memory;
#[cfg(feature = "stream")]
pub mod stream;
pub mod var;

pub use anyhow::Error;
pub use http::{HttpRequest, HttpResponse};
#[cfg(feature = "stream")]
pub use http_stream::HttpStream;
pub use log::{log_enabled, log_level, LogLevel};
pub use memory::{FromMemory, Memory, ToMemory};
pub use plinth_convert as convert;
pub use plinth_convert::{Base64, FromBytes, FromBytesOwned, Json, Msgpack, ToBytes};
pub use plinth_pdk_macros::{host_fn, plugin_fn};
/// Derives `ToBytes` / `FromBytesOwned` through the encoding named by `#[encoding(Json)]`
/// (or `Msgpack`, ...), as extism-pdk's derives do.
pub use plinth_pdk_macros::{FromBytes, ToBytes};

/// What a `#[plugin_fn]` returns: the output, or an error with the call's return code.
pub type FnResult<T> = Result<T, WithReturnCode<Error>>;

/// An error together with the return code the call reports to the host.
///
/// Any error that converts into [`Error`] (so `?` works on most errors) becomes one with
/// code 1; [`WithReturnCode::new`] picks another code.
#[derive(Debug)]
pub struct WithReturnCode<T>(pub T, pub i32);

impl<T> WithReturnCode<T> {
    /// `error` reported with return code `code`.
    pub fn new(error: T, code: i32) -> Self {
        WithReturnCode(error, code)
    }

    /// The return code.
    pub fn code(&self) -> i32 {
        self.1
    }

    /// The error itself.
    pub fn error(&self) -> &T {
        &self.0
    }
}

impl<E: Into<Error>> From<E> for WithReturnCode<Error> {
    fn from(error: E) -> Self {
        WithReturnCode(error.into(), 1)
    }
}

/// Everything a plug-in usually needs, for `use plinth_pdk::prelude::*;` (the crate root
/// exports the same names, so `use plinth_pdk::*;` works too).
pub mod prelude {
    #[cfg(feature = "stream")]
    pub use crate::http_stream::HttpStream;
    #[cfg(feature = "stream")]
    pub use crate::stream::{self, input_stream, output_stream, InputStream, OutputStream};
    pub use crate::{
        config, debug, error, host_fn, http, info, input, log, output, plugin_fn, set_error, trace,
        var, warn, Base64, Error, FnResult, FromBytes, FromBytesOwned, HttpRequest, HttpResponse,
        Json, LogLevel, Memory, Msgpack, ToBytes, ToMemory, WithReturnCode,
    };
}

/// The call's input, as raw bytes.
///
/// With feature `stream`, when the classic input is empty, the input is read through the
/// input stream: a Plinth host that streams does not buffer the input for a module that
/// reads the stream, so this is how the plug-in's whole-buffer exports get it. It can be
/// taken so only once per call (later calls give what is left: nothing). If the host's input
/// stream fails, this gives what was read so far; the call fails with the host's error anyway.
pub fn input_bytes() -> Vec<u8> {
    #[cfg(feature = "stream")]
    if stream::input_is_streamed() {
        return stream::read_whole_input().unwrap_or_default();
    }
    classic_input_bytes()
}

#[cfg(not(feature = "bulk-copy"))]
fn classic_input_bytes() -> Vec<u8> {
    let len = unsafe { abi::input_length() } as usize;
    let mut buf = vec![0; len];
    memory::read_into(
        &mut buf,
        0,
        |o| unsafe { abi::input_load_u64(o) },
        |o| unsafe { abi::input_load_u8(o) },
    );
    buf
}

#[cfg(feature = "bulk-copy")]
fn classic_input_bytes() -> Vec<u8> {
    // Written by the host straight into a buffer of ours, when it could.
    if let Some(input) = direct::with_input(<[u8]>::to_vec) {
        return input;
    }
    let len = unsafe { abi::input_length() } as usize;
    // No zeroing first: the copy fills every byte (or traps).
    let mut buf = Vec::with_capacity(len);
    unsafe {
        abi::input_read(0, buf.as_mut_ptr(), len as u32);
        buf.set_len(len);
    }
    buf
}

/// The call's input, decoded.
pub fn input<T: FromBytesOwned>() -> Result<T, Error> {
    #[cfg(feature = "stream")]
    if stream::input_is_streamed() {
        return Ok(T::from_bytes_owned(&stream::read_whole_input()?)?);
    }
    #[cfg(feature = "bulk-copy")]
    if let Some(value) = direct::with_input(T::from_bytes_owned) {
        return Ok(value?);
    }
    Ok(T::from_bytes_owned(&classic_input_bytes())?)
}

/// Sets the call's output. A [`Memory`] is handed over as it is; other values are encoded
/// into a new block.
pub fn output<T: ToMemory>(value: T) -> Result<(), Error> {
    let mem = value.to_memory()?;
    unsafe { abi::output_set(mem.offset(), mem.len()) };
    Ok(())
}

/// Sets the call's error message: the call fails with it whatever the return code.
pub fn set_error(message: impl AsRef<str>) {
    // Without memory for the message, the return code still reports the failure.
    let handle = Memory::from_bytes(message.as_ref().as_bytes())
        .map(|m| m.offset())
        .unwrap_or(0);
    unsafe { abi::error_set(handle) };
}

/// Support for the macros; not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub fn run_export<I, O, E>(f: fn(I) -> Result<O, E>) -> i32
    where
        I: FromBytesOwned,
        O: ToMemory + 'static,
        E: Into<WithReturnCode<Error>>,
    {
        #[cfg(feature = "stream")]
        crate::stream::begin_call();
        match input::<I>() {
            Ok(i) => finish(f(i)),
            Err(e) => fail(e.context("cannot decode the input").into()),
        }
    }

    pub fn run_export0<O, E>(f: fn() -> Result<O, E>) -> i32
    where
        O: ToMemory + 'static,
        E: Into<WithReturnCode<Error>>,
    {
        #[cfg(feature = "stream")]
        crate::stream::begin_call();
        finish(f())
    }

    fn finish<O: ToMemory + 'static, E: Into<WithReturnCode<Error>>>(result: Result<O, E>) -> i32 {
        #[cfg(feature = "bulk-copy")]
        direct::end_call();
        // What the stream fallback collected (on hosts that do not stream) comes first, as a
        // streaming host would have delivered it; a failed call drops it.
        #[cfg(feature = "stream")]
        let streamed = crate::stream::take_fallback_output();
        let out = match result {
            Ok(out) => out,
            Err(e) => return fail(e.into()),
        };
        #[cfg(feature = "stream")]
        if !streamed.is_empty() {
            return match crate::stream::output_after(streamed, out) {
                Ok(()) => 0,
                Err(e) => fail(e.context("cannot write the output").into()),
            };
        }
        #[cfg(feature = "bulk-copy")]
        let written = direct::output(out);
        #[cfg(not(feature = "bulk-copy"))]
        let written = output(out);
        match written {
            Ok(()) => 0,
            Err(e) => fail(e.context("cannot write the output").into()),
        }
    }

    fn fail(WithReturnCode(error, code): WithReturnCode<Error>) -> i32 {
        // `{:#}` keeps the cause chain on one line: "outer: inner".
        set_error(format!("{error:#}"));
        code
    }

    /// Decodes a host function's result and frees it when it was copied out.
    pub fn from_host<T: FromMemory>(handle: u64) -> Result<T, Error> {
        let value = T::from_memory(handle);
        if T::consumes() && handle != 0 {
            unsafe { abi::free(handle) };
        }
        value
    }

    /// Frees a host function's argument block, unless the caller passed its own `Memory` or
    /// the host reused the block for its result.
    pub fn free_arg(arg: Memory, allocated: bool, result: u64) {
        if allocated && arg.offset() != result {
            arg.free();
        }
    }

    pub fn log_message(level: LogLevel, message: &str) {
        log::write(level, message)
    }
}

//! The host side of a plug-in: every function a plug-in can import.
//!
//! - `env.rs`: the ABI of [`crate::abi::FUNCTIONS`] as native functions over the store's
//!   Extism memory (the host versions of fused functions too, for modules left unfused).
//! - `function.rs`: [`Function`], a host function the program provides, and
//!   [`CurrentPlugin`], the view of the calling plug-in it gets.
//! - `wasi.rs` and `poll.rs`: WASI preview 1, with a `poll_oneoff` that keeps to the call's
//!   deadline and cancel.
//! - `http_stream.rs`: `http_stream_*`, HTTP requests whose bodies stream.
//! - `stream.rs`: `stream_read` and `stream_write`, the call's input and output as streams.
//! - `plugin_memory.rs`: the plug-in's own memory, checked, for the functions that take
//!   pointers into it.
//! - `timer.rs`: the deadline of async calls while a host function awaits, on any executor.

mod env;
mod function;
mod http_stream;
mod plugin_memory;
mod poll;
mod stream;
mod timer;
mod wasi;

pub(crate) use env::{add_async_to_linker, add_to_linker};
pub use function::{
    CurrentPlugin, Function, HostFuture, MemoryHandle, UserData, DEFAULT_NAMESPACE, PTR,
};
pub(crate) use timer::wake_cancelled;
pub(crate) use wasi::add_wasi_to_linker;

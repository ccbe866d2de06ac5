//! Plinth's Node.js host SDK: a napi-rs addon over the `plinth` runtime.
//!
//! The JavaScript API is in binding.d.ts (generated from the `#[napi]` items and their doc
//! comments) and index.d.ts (the `PlinthError` class, defined in index.js).
//!
//! - `plugin.rs`: `Plugin`, `CompiledPlugin`, `CancelHandle`; calls on libuv worker threads.
//! - `host.rs`: JavaScript host functions and `CurrentPlugin`; how a plug-in running on a
//!   worker thread reaches a callback that must run on the JavaScript thread.
//! - `source.rs`: plug-in sources, options and call inputs as JavaScript passes them.
//! - `error.rs`: `PlinthError` values.
//! - `js.rs`: the raw Node-API helpers underneath.

mod error;
mod host;
mod js;
mod plugin;
mod source;

use napi::Env;
use napi_derive::napi;

pub use host::{CurrentPlugin, HostFunction, ValType};
pub use plugin::{CallTask, CancelHandle, CompiledPlugin, LoadTask, Plugin};

/// Called once by index.js with its `PlinthError` class, which the addon then uses for every
/// error it reports.
#[napi(js_name = "__registerErrorClass", skip_typescript)]
pub fn register_error_class(env: Env, class: js::JsArg) -> napi::Result<()> {
    let handle = js::JsHandle::new(js::Js::new(&env), class.0)?;
    env.set_instance_data(error::ErrorClass(handle), (), |_| {})
}

/// The version of the Plinth runtime in this addon.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

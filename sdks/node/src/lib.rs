//! Plinth's Node.js host SDK: a napi-rs addon over the `plinth` runtime.
//!
//! The JavaScript API is in binding.d.ts, which napi-rs generates from the typed `#[napi]`
//! items and their doc comments (with the few types Rust cannot state, such as the manifest's
//! JSON shape, from src/binding-header.d.ts), and index.d.ts (the `PlinthError` class, defined
//! in index.js).
//!
//! - `plugin.rs`: `Plugin`, `CompiledPlugin`, `CancelHandle`, on `plinth::SharedPlugin`; calls
//!   on libuv worker threads, or as futures on napi-rs's tokio runtime for plug-ins with async
//!   host functions.
//! - `hot.rs`: `HotPlugin`, on `plinth::reload::HotPlugin`: a plug-in that follows its file,
//!   called through `plugin.rs`'s calls.
//! - `host.rs`: JavaScript host functions and `CurrentPlugin`; how a plug-in running on a
//!   worker thread reaches a callback that must run on the JavaScript thread.
//! - `args.rs`: plug-in sources, options and call inputs as JavaScript passes them.
//! - `error.rs`: `PlinthError` values, with the core's error kinds.
//! - `held.rs`: a JavaScript value that Rust keeps (a call's `hostContext`, an exception).
//! - `abort.rs`: a call's `AbortSignal`.
//! - `stream.rs`: `StreamCall`, a streaming call that index.js's `callStream` drives from Node
//!   streams.

mod abort;
mod args;
mod error;
mod held;
mod host;
mod hot;
mod plugin;
mod stream;

use napi::bindgen_prelude::{FnArgs, Function, FunctionRef, JsObjectValue, Object, Unknown};
use napi::Env;
use napi_derive::napi;

pub use args::{
    Bytes, CallInput, CallOptions, ConfigChanges, HostFunctionOptions, HotPluginOptions,
    PluginOptions, PluginSource,
};
pub use host::{settle, CurrentPlugin, HostFunction, ValType};
pub use hot::HotPlugin;
pub use plugin::{
    CallBytes, CallFresh, CallJson, CallText, CancelHandle, CompilePlugin, CompiledPlugin,
    LoadPlugin, Plugin,
};
pub use stream::{StreamCall, StreamStats};

/// `new PlinthError(message, kind, code, cause)`.
pub(crate) type ErrorClass =
    FunctionRef<FnArgs<(String, &'static str, i32, Unknown<'static>)>, Unknown<'static>>;

/// `hostRunner(callback, userData, isAsync)`: wraps a host function's callback (see index.js).
pub(crate) type HostRunnerFactory =
    FunctionRef<FnArgs<(Unknown<'static>, Unknown<'static>, bool)>, Unknown<'static>>;

/// What index.js hands the addon once per JavaScript environment (the main thread and each
/// worker thread), plus the JSON functions of that environment.
pub(crate) struct Registered {
    pub error_class: ErrorClass,
    pub host_runner: HostRunnerFactory,
    pub json_parse: FunctionRef<String, Unknown<'static>>,
    pub json_stringify: FunctionRef<Unknown<'static>, Option<String>>,
}

impl Registered {
    /// What index.js registered in this environment.
    pub fn get(env: &Env) -> napi::Result<&'static Registered> {
        env.get_instance_data::<Registered>()?.map(|r| &*r).ok_or_else(|| {
            napi::Error::from_reason(
                "the Plinth addon was loaded without index.js; require the package (`@plinth/node`), not binding.js",
            )
        })
    }
}

/// Called once by index.js in each JavaScript environment: the `PlinthError` class, which the
/// addon uses for every error it reports, and `hostRunner`, which calls host functions.
#[napi(js_name = "__register", skip_typescript)]
pub fn register(
    env: Env,
    error_class: Function<FnArgs<(String, &'static str, i32, Unknown<'static>)>, Unknown<'static>>,
    host_runner: Function<FnArgs<(Unknown<'static>, Unknown<'static>, bool)>, Unknown<'static>>,
) -> napi::Result<()> {
    let json: Object = env.get_global()?.get_named_property("JSON")?;
    let parse: Function<String, Unknown<'static>> = json.get_named_property("parse")?;
    let stringify: Function<Unknown<'static>, Option<String>> =
        json.get_named_property("stringify")?;
    let registered = Registered {
        error_class: error_class.create_ref()?,
        host_runner: host_runner.create_ref()?,
        json_parse: parse.create_ref()?,
        json_stringify: stringify.create_ref()?,
    };
    env.set_instance_data(registered, (), |_| {})
}

/// The names of the error kinds (`plinth::ErrorKind`), in the order of their numbers (1, 2,
/// ...): index.js gives every `PlinthError` the `kindCode` of its `kind` from this list.
#[napi(js_name = "__errorKinds", skip_typescript)]
pub fn error_kinds() -> Vec<&'static str> {
    plinth::ErrorKind::ALL.iter().map(|k| k.name()).collect()
}

/// The version of the Plinth runtime in this addon.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// `value` with the lifetime the argument types of a kept function ([`FunctionRef`]) name:
/// they cannot name the caller's scope. The value is passed to the function within that scope.
pub(crate) fn unscoped(value: Unknown<'_>) -> napi::Result<Unknown<'static>> {
    use napi::bindgen_prelude::FromNapiValue;
    Unknown::from_unknown(value)
}

//! The API of the [`extism`](https://docs.rs/extism/1) crate (1.x) over Plinth: a Rust host
//! written for Extism switches to Plinth with one line in its `Cargo.toml`,
//!
//! ```toml
//! extism = { package = "plinth-extism", path = "…/crates/extism" }
//! ```
//!
//! and no change to its code. The paths and signatures are Extism's: [`Plugin`],
//! [`PluginBuilder`], [`CompiledPlugin`], [`Manifest`], [`Wasm`], [`Function`], [`UserData`],
//! [`CurrentPlugin`], [`ValType`] and [`PTR`], [`host_fn!`], [`typed_plugin!`], [`Pool`],
//! [`CancelHandle`], [`convert`] (`Json`, `Msgpack`, `Base64`, `Raw`, `Prost`, the
//! `ToBytes`/`FromBytes` derives), and [`Error`], which is [`anyhow::Error`] as in Extism.
//!
//! ```no_run
//! # extern crate plinth_extism as extism;
//! use extism::*;
//!
//! host_fn!(greet(user_data: Vec<String>; name: String) -> String {
//!     let seen = user_data.get()?;
//!     seen.lock().unwrap().push(name.clone());
//!     Ok(format!("Hello, {name}!"))
//! });
//!
//! let manifest = Manifest::new([Wasm::file("host_greet.wasm")]).with_config_key("k", "v");
//! let mut plugin = PluginBuilder::new(manifest)
//!     .with_wasi(false)
//!     .with_function("greet", [PTR], [PTR], UserData::new(Vec::new()), greet)
//!     .build()?;
//! let out = plugin.call::<&str, &str>("call_greet", "Ada")?;
//! # Ok::<(), Error>(())
//! ```
//!
//! # Differences from `extism` 1.x
//!
//! - **Errors** are `anyhow::Error` wrapping [`plinth::Error`]: `err.downcast_ref::<plinth::Error>()`
//!   tells the kind of failure. Where hosts match on Extism's text, the error displays it: the
//!   plug-in's own message for a plug-in error, `timeout` (also for a cancelled call), `oom`,
//!   `plugin ran out of fuel`, `Function not found: NAME`, `Returned non-zero exit code: N`.
//!   `{:#}` adds Plinth's explanation. Other failures (traps, link errors, host function
//!   errors) have Plinth's messages.
//! - **[`CurrentPlugin`]** has two lifetime parameters; `&mut CurrentPlugin` in a signature
//!   elides them, so host functions compile unchanged, but a host that denies the
//!   `elided_lifetimes_in_paths` lint must write `CurrentPlugin<'_, '_>`.
//! - **User data must be `Send`**: `Function::new`, `PluginBuilder::with_function` and the
//!   other constructors require `T: Send`, where Extism asserts thread safety for any `T`
//!   unchecked. For the same reason [`set_log_callback`] wants a `Send + Sync` callback.
//! - **Manifest**: [`Manifest`] is Plinth's (the same fields and serde form). The
//!   `extism-manifest` builder methods it lacks, `disallow_all_hosts`, `with_memory_options`
//!   and `with_allowed_paths`, come from the [`ManifestExt`] trait, in scope with
//!   `use extism::*;`. `with_allowed_hosts` adds to the list where Extism's replaces it.
//!   `Wasm::file` takes `impl Into<PathBuf>` (Extism: `impl AsRef<Path>`).
//! - **No-ops**: [`DebugOptions`] (coredumps, memory dumps, profiling, debug info),
//!   `with_cache_config` and `with_wasmtime_config` are accepted and have no effect: Plinth
//!   configures its wasmtime (48) engines itself and keeps its own compiled-module cache
//!   (`with_cache_disabled` turns its disk cache off). A `wasmtime::Config` or
//!   `ProfilingStrategy` must come from wasmtime 48.
//! - **Encodings**: `Msgpack` and the number encodings give Extism's bytes; the `Protobuf`
//!   encoding (rust-protobuf) is not provided, `Prost` is. The derives find this crate under
//!   the name the host gave it in `Cargo.toml`.
//! - **Not provided**: the `sdk` module (Extism's C API; Plinth's is libplinth,
//!   `crates/capi`), and Extism's `EXTISM_*` environment variables other than
//!   `EXTISM_ENABLE_WASI_OUTPUT`.
//! - **Logs**: plug-in logs go to `tracing` under the target `plinth::plugin`, and Plinth's
//!   own under `plinth`; [`set_log_callback`] reads a directive for `extism` as one for
//!   `plinth`. A `tracing` filter set up by the host must name Plinth's targets.
//! - **Additions**: `Plugin::plinth()`, `CompiledPlugin::plinth()` and
//!   `CurrentPlugin::plinth()` give Plinth's own types, for what Extism has no call for
//!   (changing config at run time, for one).

mod current_plugin;
mod function;
mod manifest;
mod plugin;
mod pool;

pub mod convert;

pub use anyhow::Error;
pub use convert::{FromBytes, FromBytesOwned, ToBytes};
pub use current_plugin::CurrentPlugin;
pub use function::{CPtr, Function, UserData, Val, ValType, PTR};
pub use manifest::ManifestExt;
pub use plinth::manifest::{Manifest, Wasm, WasmMetadata};
pub use plugin::{CancelHandle, CompiledPlugin, DebugOptions, Plugin, PluginBuilder, WasmInput};
pub use pool::{Pool, PoolBuilder, PoolPlugin};

#[doc(hidden)]
pub use serde as __serde;

/// The namespace of the functions the runtime gives plug-ins.
pub const EXTISM_ENV_MODULE: &str = "extism:host/env";
/// The namespace host functions are in unless given another.
pub const EXTISM_USER_MODULE: &str = "extism:host/user";

/// The version of this crate (not of Extism).
pub fn extism_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Sends log lines, formatted, to `func`. Installs a global `tracing` subscriber, so call it
/// once (a second call fails). `filter` is a level (`"info"`), which applies to plug-in logs
/// and Plinth's own, or an `EnvFilter` directive list, in which the target `extism` stands
/// for Plinth's `plinth` (`"extism=trace"`; plug-in logs alone: `"plinth::plugin=debug"`).
pub fn set_log_callback<F: 'static + Clone + Fn(&str) + Send + Sync>(
    func: F,
    filter: impl AsRef<str>,
) -> Result<(), Error> {
    let filter = filter.as_ref();
    let directives = if filter.parse::<tracing::Level>().is_ok() {
        format!("plinth={filter},plinth_extism={filter}")
    } else {
        // Extism logs under the target `extism`; Plinth under `plinth` (plug-in logs:
        // `plinth::plugin`), so a directive for the one applies to the other.
        filter
            .split(',')
            .map(|d| match d.trim().strip_prefix("extism") {
                Some(rest) if rest.is_empty() || rest.starts_with(['=', ':']) => {
                    format!("plinth{rest}")
                }
                _ => d.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let env_filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing::Level::ERROR.into())
        .parse_lossy(directives);
    tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_ansi(false)
        .with_writer(move || LogWriter(func.clone()))
        .try_init()
        .map_err(|e| Error::msg(e.to_string()))
}

/// Hands each formatted line to the callback.
struct LogWriter<F>(F);

impl<F: Fn(&str)> std::io::Write for LogWriter<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (self.0)(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

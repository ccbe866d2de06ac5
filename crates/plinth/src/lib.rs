//! Plinth: a WebAssembly plug-in runtime that speaks the Extism ABI.
//!
//! ```no_run
//! use plinth::{Manifest, Plugin, Wasm};
//! let manifest = Manifest::new([Wasm::file("count_vowels.wasm")]).with_config_key("vowels", "aeiou");
//! let mut plugin = Plugin::builder(manifest).with_wasi(false).build()?;
//! let out: String = plugin.call("count_vowels", "Hello, world!")?;
//! # Ok::<(), plinth::Error>(())
//! ```

#![warn(missing_docs)]

/// The ABI, Extism memory and the load-time rewrites live in their own crate, shared with
/// the web kernel.
pub use plinth_abi as abi;
mod compile;
mod concurrency;
mod engine;
mod error;
mod host;
mod http;
mod instance;
mod log;
mod plugin;
pub mod reload;
mod store;

pub use compile::disk_cache::{
    check_dir as check_cache_dir, default_dir as default_cache_dir,
    DEFAULT_MAX_BYTES as DEFAULT_CACHE_MAX_BYTES,
};
pub use compile::module_cache::clear as clear_compile_cache;
pub use compile::{
    inspect, ArtifactKey, CompileLimits, CompiledPlugin, ImportReport, ImportStatus, ModuleReport,
    PluginBuilder, Source, Tier,
};
pub use concurrency::{PluginPool, SharedPlugin, MAX_POOL_INSTANCES};
pub use engine::{POOLED_INSTANCES, POOLED_MEMORY_BYTES};
pub use error::{Error, ErrorKind, Result, TRAP_CODE};
pub use host::{
    CurrentPlugin, Function, HostFuture, MemoryHandle, UserData, DEFAULT_NAMESPACE, PTR,
};
pub use instance::StreamStats;
pub use plugin::{CancelHandle, Plugin};
pub use store::{CapturedOutput, WasiStdio};

pub use plinth_convert as convert;
pub use plinth_convert::{Base64, FromBytes, FromBytesOwned, Json, Msgpack, ToBytes};
pub use plinth_manifest as manifest;
pub use plinth_manifest::{Manifest, ManifestError, Wasm};
pub use wasmtime::{Val, ValType};

/// How plug-in text is escaped for a terminal or a log line.
pub use log::escape_control;
/// Target of plug-in log events in `tracing`.
pub use log::TARGET as LOG_TARGET;

#[doc(hidden)]
pub use anyhow;

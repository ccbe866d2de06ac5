//! Plinth: a WebAssembly plug-in runtime that speaks the Extism ABI.
//!
//! ```no_run
//! use plinth::{Manifest, Plugin, Wasm};
//! let manifest = Manifest::new([Wasm::file("count_vowels.wasm")]).with_config_key("vowels", "aeiou");
//! let mut plugin = Plugin::builder(manifest).with_wasi(false).build()?;
//! let out: String = plugin.call("count_vowels", "Hello, world!")?;
//! # Ok::<(), plinth::Error>(())
//! ```

mod abi;
mod compile_limits;
mod concurrency;
mod disk_cache;
mod engine;
mod error;
mod function;
mod fuse;
mod http;
mod log;
pub mod memory;
pub mod module_cache;
mod plugin;
mod poll;
mod state;
mod wasi;

pub use compile_limits::CompileLimits;
pub use concurrency::{PluginPool, SharedPlugin, MAX_POOL_INSTANCES};
pub use disk_cache::{
    check_dir as check_cache_dir, default_dir as default_cache_dir,
    DEFAULT_MAX_BYTES as DEFAULT_CACHE_MAX_BYTES,
};
pub use engine::{POOLED_INSTANCES, POOLED_MEMORY_BYTES};
pub use error::{Error, ErrorKind, Result, TRAP_CODE};
pub use function::{CurrentPlugin, Function, MemoryHandle, UserData, DEFAULT_NAMESPACE, PTR};
pub use plugin::{
    inspect, CancelHandle, CompiledPlugin, ImportReport, ImportStatus, ModuleReport, Plugin,
    PluginBuilder, Source,
};
pub use wasi::{CapturedOutput, WasiStdio};

pub use plinth_convert as convert;
pub use plinth_convert::{Base64, FromBytes, FromBytesOwned, Json, Msgpack, ToBytes};
pub use plinth_manifest as manifest;
pub use plinth_manifest::{Manifest, ManifestError, Wasm};
pub use wasmtime::{Val, ValType};

/// The ABI import names this host provides, for tools that list a plug-in's imports.
pub use abi::{ENV as ENV_NAMESPACE, IMPORTS as ENV_IMPORTS};
/// How plug-in text is escaped for a terminal or a log line.
pub use log::escape_control;
/// Target of plug-in log events in `tracing`.
pub use log::TARGET as LOG_TARGET;

#[doc(hidden)]
pub use anyhow;

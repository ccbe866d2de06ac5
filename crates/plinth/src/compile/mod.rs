//! Loading: from a [`Source`] to a [`CompiledPlugin`] that instances start from.
//!
//! The pipeline, in the order a load runs it:
//! - [`Source`] (`source.rs`): a path, bytes, WAT or a manifest, and the one rule for relative
//!   paths;
//! - [`PluginBuilder`] (`builder.rs`): every load-time choice;
//! - `compiled.rs`: manifest → resolve → limits → stream link → fuse → compile (cached) → link, giving the
//!   [`CompiledPlugin`] and its internal `Compiled` (engine, linker, modules, settings);
//! - [`CompileLimits`] (`limits.rs`): bounds on what a module may cost to compile;
//! - `plinth_abi::prepare` (crates/abi): the load-time rewrites, `stream_link` (a Plinth PDK's
//!   streaming exports linked to the host's stream imports, so that one binary streams on
//!   Plinth and falls back to whole buffers on Extism) then `fuse` (the hot ABI functions put
//!   into the plug-in), shared with the web kernel;
//! - `module_cache.rs` and `disk_cache/`: compiled modules in memory and on disk, by content;
//! - `imports.rs`: how each import is satisfied, for the load-time check and [`inspect`];
//! - `link.rs`: the order modules are instantiated in, and cycles bound late;
//! - [`ArtifactKey`] (`artifact.rs`): precompiled, signed artifacts that skip compiling;
//! - [`Tier`] (`tier.rs`): the baseline tier, its background upgrade, and which instance
//!   state can move to the optimized code.

pub(crate) mod artifact;
mod builder;
mod compiled;
pub(crate) mod disk_cache;
pub(crate) use plinth_abi::fuse;
pub(crate) mod imports;
mod limits;
pub(crate) mod link;
pub(crate) mod module_cache;
mod source;
pub(crate) mod tier;

pub use artifact::ArtifactKey;
pub use builder::PluginBuilder;
pub(crate) use compiled::Compiled;
pub use compiled::CompiledPlugin;
pub use imports::{inspect, ImportReport, ImportStatus, ModuleReport};
pub use limits::CompileLimits;
pub use source::Source;
pub use tier::Tier;

//! [`PluginBuilder`]: every load-time choice, gathered before compiling.

use std::path::PathBuf;

use super::{ArtifactKey, CompileLimits, CompiledPlugin, Source};
use crate::host::Function;
use crate::store::WasiStdio;
use crate::Result;

/// Builds a [`Plugin`](crate::Plugin) or a [`CompiledPlugin`].
#[must_use]
pub struct PluginBuilder {
    pub(super) source: Source,
    pub(super) wasi: bool,
    pub(super) functions: Vec<Function>,
    pub(super) fuel: Option<u64>,
    pub(super) init_fuel: Option<u64>,
    pub(super) instance_memory_max: Option<u32>,
    pub(super) pooled: bool,
    pub(super) stdio: WasiStdio,
    pub(super) http_headers: bool,
    pub(super) cache_dir: Option<PathBuf>,
    pub(super) cache_max_bytes: Option<u64>,
    pub(super) compile_limits: CompileLimits,
    /// Native code compiled ahead of time, and the key the host trusts it under.
    pub(super) artifact: Option<(Vec<u8>, ArtifactKey)>,
    /// The artifact's own wasm is the source (`from_artifact`), not the one `source` names.
    pub(super) artifact_is_source: bool,
    pub(super) tiering: bool,
    pub(super) asynchronous: bool,
    pub(super) output_limit: Option<u64>,
}

impl PluginBuilder {
    /// A builder with the defaults: WASI off, no host functions, no fuel limit, the disk
    /// cache in its default folder.
    pub fn new(source: impl Into<Source>) -> Self {
        PluginBuilder {
            source: source.into(),
            wasi: false,
            functions: Vec::new(),
            fuel: None,
            init_fuel: None,
            instance_memory_max: None,
            pooled: true,
            stdio: WasiStdio::Inherit,
            http_headers: false,
            cache_dir: super::disk_cache::default_dir(),
            cache_max_bytes: None,
            compile_limits: CompileLimits::default(),
            artifact: None,
            artifact_is_source: false,
            tiering: false,
            asynchronous: false,
            output_limit: None,
        }
    }

    /// The most one call may write to its output stream
    /// ([`Plugin::call_stream`](crate::Plugin::call_stream)): a plug-in that writes more fails
    /// with [`Error::Stream`](crate::Error::Stream) as it crosses the limit, after the bytes
    /// up to it were delivered. No limit by default for a streaming call, whose output goes
    /// out as it comes; a classic call's output is always bounded by the plug-in's memory
    /// limit.
    pub fn with_output_limit(mut self, bytes: u64) -> Self {
        self.output_limit = Some(bytes);
        self
    }

    /// Tiered compiling: the plug-in is compiled first by Winch, wasmtime's baseline compiler
    /// (several times faster than Cranelift, to code that runs slower), so that its first call
    /// comes early; Cranelift compiles it on a thread of its own meanwhile. New instances take
    /// the optimized code once it is ready, and a live [`Plugin`](crate::Plugin) moves to it
    /// at its next call when its state can be carried over (memories and globals; not for
    /// modules with a start function, tables that change, or run-time passive data). Plug-ins
    /// whose optimized code is already in a cache, precompiled artifacts, plug-ins of several
    /// modules and modules Winch refuses (tail calls) are compiled optimized at once. Off by
    /// default. [`CompiledPlugin::tier`] says which code runs.
    pub fn with_tiering(mut self, on: bool) -> Self {
        self.tiering = on;
        self
    }

    /// Builds the plug-in to be called with [`Plugin::call_async`](crate::Plugin::call_async)
    /// (and [`PluginPool::call_async`](crate::PluginPool::call_async)): the built-in functions
    /// that wait (`http_request`, WASI's clock waits in `poll_oneoff`) then await, so that the
    /// executor's thread serves other calls meanwhile, as an async host function's wait does.
    /// A plug-in with an async host function ([`Function::new_async`]) is built this way
    /// anyway. Such a plug-in cannot be called synchronously. Off by default: on a plug-in
    /// built without it, `call_async` works too, but those built-ins block the thread while
    /// they wait.
    pub fn with_async(mut self, on: bool) -> Self {
        self.asynchronous = on;
        self
    }

    /// A builder for a plug-in precompiled by `plinth compile` (or
    /// [`PluginBuilder::compile_artifact`]): the artifact holds the wasm and its native code,
    /// signed with `key`. Loading it skips compiling. An artifact is native code that runs
    /// without the checks compiling wasm gives, so it loads only when its signature verifies
    /// under `key`; one made by another wasmtime version or with other engine settings is
    /// compiled from its wasm instead, with a warning.
    pub fn from_artifact(artifact: impl Into<Vec<u8>>, key: &ArtifactKey) -> Self {
        let mut b = PluginBuilder::new(Vec::<u8>::new());
        b.artifact = Some((artifact.into(), key.clone()));
        b.artifact_is_source = true;
        b
    }

    /// Uses native code from a precompiled artifact for the main module of this builder's
    /// source, which stays the plug-in's definition (config, limits, hash checks). The artifact
    /// must have been compiled from exactly that module: otherwise loading fails with
    /// [`Error::Artifact`](crate::Error::Artifact).
    pub fn with_artifact(mut self, artifact: impl Into<Vec<u8>>, key: &ArtifactKey) -> Self {
        self.artifact = Some((artifact.into(), key.clone()));
        self.artifact_is_source = false;
        self
    }

    /// Compiles the plug-in ahead of time into a signed artifact (what `plinth compile`
    /// writes), for [`PluginBuilder::from_artifact`] or [`PluginBuilder::with_artifact`]. The
    /// artifact is made for the engine this builder picks: with a fuel limit, for metered
    /// engines; a host that loads it with other settings compiles instead.
    pub fn compile_artifact(self, key: &ArtifactKey) -> Result<Vec<u8>> {
        CompiledPlugin::compile_artifact(self, key)
    }

    /// WASI preview 1 for the plug-in (off by default).
    pub fn with_wasi(mut self, on: bool) -> Self {
        self.wasi = on;
        self
    }

    /// Where the plug-in's WASI stdout and stderr go (inherited by default).
    pub fn with_wasi_stdio(mut self, stdio: WasiStdio) -> Self {
        self.stdio = stdio;
        self
    }

    /// Adds a host function the plug-in may import.
    pub fn with_function(mut self, f: Function) -> Self {
        self.functions.push(f);
        self
    }

    /// Adds host functions the plug-in may import.
    pub fn with_functions(mut self, fs: impl IntoIterator<Item = Function>) -> Self {
        self.functions.extend(fs);
        self
    }

    /// Limits each call to `fuel` units of work (roughly, wasm instructions); refilled per call.
    /// Making an instance ready gets the same amount, apart (see
    /// [`with_initialization_fuel_limit`](Self::with_initialization_fuel_limit)).
    pub fn with_fuel_limit(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Fuel for making an instance ready, apart from the calls' fuel: instantiation, the start
    /// function and the start-up exports (`_initialize`, `__wasm_call_ctors`, `hs_init`), which
    /// run before an instance's first call. Without it they get the call limit; either way they
    /// do not use up the first call's fuel. Needs [`with_fuel_limit`](Self::with_fuel_limit):
    /// a plug-in without a call limit runs unmetered, and building one fails with
    /// [`Error::Other`](crate::Error::Other). As Extism 1.41's method of the same name.
    pub fn with_initialization_fuel_limit(mut self, fuel: u64) -> Self {
        self.init_fuel = Some(fuel);
        self
    }

    /// One limit on all the memory an instance holds, from its first byte: every memory's
    /// initial size and growth (Extism memory's too) and every table (8 bytes an element), in
    /// all the manifest's modules. `memory.max_pages` follows Extism instead: it does not
    /// count what the modules declare, only growth after instantiation. Going over this limit
    /// fails like going over `max_pages` ([`Error::OutOfMemory`](crate::Error::OutOfMemory), at instantiation or in the
    /// call). None by default.
    pub fn with_instance_memory_max(mut self, pages: u32) -> Self {
        self.instance_memory_max = Some(pages);
        self
    }

    /// Lets plug-ins read the headers of their HTTP responses (`http_headers`).
    pub fn with_http_response_headers(mut self, on: bool) -> Self {
        self.http_headers = on;
        self
    }

    /// Instances from pre-made slots (wasmtime's pooling allocator with copy-on-write memory
    /// images) instead of fresh memory mappings: a new instance costs a fraction as much, so
    /// an instance per request or per tenant is cheap. On by default. The slots are shared by
    /// every pooled plug-in of the process: when all [`POOLED_INSTANCES`](crate::POOLED_INSTANCES)
    /// are in use, further instances are allocated on demand (the plug-in is compiled once
    /// more for that, the first time it happens), and a module a slot cannot hold (more than
    /// one memory or table of its own, a memory over 4 GiB) is compiled for on-demand
    /// instances from the start. The slots' address space (not memory) is reserved when the
    /// first pooled plug-in is loaded; turn pooling off where address space is scarce.
    pub fn with_instance_pooling(mut self, on: bool) -> Self {
        self.pooled = on;
        self
    }

    /// Bounds on compiling each module of the plug-in: its size, its function count and a
    /// deadline ([`CompileLimits`](CompileLimits); the defaults bound size and count
    /// only). A module over a bound fails with [`Error::CompileLimit`](crate::Error::CompileLimit).
    pub fn with_compile_limits(mut self, limits: CompileLimits) -> Self {
        self.compile_limits = limits;
        self
    }

    /// Where compiled modules are cached on disk, or `None` for no disk cache. The default is
    /// [`default_cache_dir`](crate::default_cache_dir): `$PLINTH_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/plinth`, else `~/.cache/plinth`; `PLINTH_CACHE=off` turns it off.
    pub fn with_cache_dir(mut self, dir: Option<impl Into<PathBuf>>) -> Self {
        self.cache_dir = dir.map(Into::into);
        self
    }

    /// How many bytes of compiled modules the disk cache keeps: past that, the least recently
    /// used are deleted. The default is `$PLINTH_CACHE_MAX_BYTES`, else 512 MiB.
    pub fn with_cache_max_bytes(mut self, max_bytes: u64) -> Self {
        self.cache_max_bytes = Some(max_bytes);
        self
    }

    /// Compiles the plug-in without making an instance.
    pub fn compile(self) -> Result<CompiledPlugin> {
        CompiledPlugin::compile(self)
    }
}

//! [`CompiledPlugin`]: the load pipeline, manifest → resolve → fuse → compile → link, and
//! what it leaves for instances to start from.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use plinth_manifest::{ResolvedModule, MAIN_MODULE};
use wasmtime::{FuncType, InstancePre, Linker, Module};

use super::artifact::{self, Artifact};
use super::imports::{callable_exports, check_imports};
use super::link::order_dependencies;
use super::{ArtifactKey, PluginBuilder, Source};
use crate::engine::EngineHandle;
use crate::host::{self, Function};
use crate::http::HttpPolicy;
use crate::store::{Settings, StoreData, WasiOptions};
use crate::{Error, Result};

/// A compiled plug-in: makes new [`Plugin`](crate::Plugin) instances without compiling again. Cheap to clone
/// and safe to share between threads.
#[derive(Clone)]
pub struct CompiledPlugin {
    pub(crate) inner: Arc<Compiled>,
}

pub(crate) struct Compiled {
    pub(crate) engine: EngineHandle,
    pub(crate) linker: Linker<StoreData>,
    pub(crate) main: Module,
    /// Other modules, in the order they must be instantiated.
    pub(crate) deps: Vec<(String, Module)>,
    pub(crate) pre: Option<InstancePre<StoreData>>,
    /// The main module carries Extism memory and the hot ABI functions itself.
    pub(crate) fused: Option<super::fuse::Fused>,
    pub(crate) settings: Arc<Settings>,
    /// For a pooled plug-in: the same plug-in with instances allocated on demand, for when
    /// the pool is full.
    pub(crate) on_demand: Option<OnDemand>,
    /// The main module came from a precompiled artifact.
    pub(crate) precompiled: bool,
    /// For a build on the baseline tier: the optimized build, once the background compile
    /// has made it.
    pub(crate) upgrade: Option<Arc<super::tier::Upgrade>>,
    /// Whether a live instance's state can be copied to an instance of the optimized build
    /// (see `tier::state_can_move`).
    pub(crate) movable: bool,
    /// Some host function is async: instances are made and called through wasmtime's async
    /// path only.
    pub(crate) has_async: bool,
    /// The main module reads its input as a stream (`stream_read`): a streaming call lends it
    /// the caller's reader instead of reading the whole input first.
    pub(crate) reads_stream: bool,
}

/// Everything a load decided before choosing an engine: kept by pooled plug-ins, so that they
/// can be built again for instances allocated on demand when the pool is full.
pub(crate) struct Recipe {
    /// The modules as wasm binaries, the main one last.
    modules: Vec<(String, Vec<u8>)>,
    functions: Vec<Function>,
    /// Called asynchronously: async host functions, or `with_async`.
    asynchronous: bool,
    wasi: Option<WasiOptions>,
    settings: Arc<Settings>,
    compile_limits: super::CompileLimits,
    cache_dir: Option<std::path::PathBuf>,
    cache_max_bytes: u64,
    /// Verified native code for the main module, compiled ahead of time.
    artifact: Option<Artifact>,
}

/// Builds `recipe` on the Cranelift engine (or Winch, with `baseline`), pooled when asked: a
/// module the pool's slots cannot hold (more memories or tables than a slot has, a memory
/// bigger than a slot) is built for instances allocated on demand instead; a module that is
/// broken fails there too, with the same error as without a pool.
fn build_on(recipe: &Arc<Recipe>, fuel: bool, pooled: bool, baseline: bool) -> Result<Compiled> {
    if !pooled {
        return recipe.build(EngineHandle::shared_tier(fuel, false, baseline));
    }
    match recipe.build(EngineHandle::shared_tier(fuel, true, baseline)) {
        Ok(mut compiled) => {
            compiled.on_demand = Some(OnDemand {
                recipe: recipe.clone(),
                built: OnceLock::new(),
            });
            Ok(compiled)
        }
        Err(Error::Compile { message, .. }) => {
            let compiled = recipe.build(EngineHandle::shared_tier(fuel, false, baseline))?;
            tracing::debug!(
                "the plug-in does not fit the instance pool ({message}); its instances are \
                 allocated on demand"
            );
            Ok(compiled)
        }
        Err(e) => Err(e),
    }
}

/// The on-demand twin of a pooled plug-in, built the first time the pool is full.
pub(crate) struct OnDemand {
    recipe: Arc<Recipe>,
    built: OnceLock<std::result::Result<Arc<Compiled>, String>>,
}

impl Compiled {
    /// The same plug-in on the engine whose instances are allocated on demand, for when every
    /// pooled slot is taken: `None` for a plug-in that is not pooled.
    pub(crate) fn on_demand(&self) -> Option<Result<Arc<Compiled>>> {
        let twin = self.on_demand.as_ref()?;
        let built = twin.built.get_or_init(|| {
            let engine = EngineHandle::shared_tier(
                self.settings.fuel.is_some(),
                false,
                self.engine.is_baseline(),
            );
            tracing::debug!(
                "every pooled instance slot is in use; this plug-in's next instances are \
                 allocated on demand"
            );
            twin.recipe
                .build(engine)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        Some(built.clone().map_err(Error::Link))
    }
}

impl Recipe {
    /// Reads the manifest and its modules and settles every setting that does not depend on
    /// the engine.
    fn new(b: PluginBuilder) -> Result<Recipe> {
        let artifact = match &b.artifact {
            Some((bytes, key)) => Some(Artifact::read(bytes, key)?),
            None => None,
        };
        let source = match &artifact {
            Some(a) if b.artifact_is_source => Source::Bytes(a.wasm.clone()),
            _ => b.source,
        };
        let manifest = source.into_manifest()?;
        let mut modules = Vec::new();
        for ResolvedModule { name, bytes } in manifest.resolve()? {
            let binary = wat::parse_bytes(&bytes)
                .map_err(|e| Error::Compile {
                    module: name.clone(),
                    message: e.to_string(),
                })?
                .into_owned();
            b.compile_limits.check(&name, &binary)?;
            modules.push((name, binary));
        }
        if let (Some(a), Some((name, main))) = (&artifact, modules.last()) {
            let main_sha256 = artifact::sha256(main);
            if main_sha256 != a.wasm_sha256 {
                return Err(Error::Artifact(format!(
                    "the artifact was compiled from another module than `{name}`: the artifact's \
                     wasm has sha256 {}, the module's is {}; compile the artifact again from \
                     this module",
                    artifact::hex(&a.wasm_sha256),
                    artifact::hex(&main_sha256)
                )));
            }
        }
        let wasi = if b.wasi {
            Some(WasiOptions {
                preopens: manifest.preopens(),
                stdio: b.stdio,
            })
        } else {
            if manifest
                .allowed_paths
                .as_ref()
                .is_some_and(|p| !p.is_empty())
            {
                tracing::warn!("allowed_paths is set but WASI is off, so the plug-in cannot use them; enable WASI");
            }
            None
        };
        let settings = Settings {
            max_var_bytes: manifest.max_var_bytes(),
            max_pages: manifest.memory.max_pages,
            instance_memory_max: b.instance_memory_max,
            timeout: manifest.timeout(),
            fuel: b.fuel,
            init_fuel: b.init_fuel.or(b.fuel),
            http: HttpPolicy::new(
                manifest.allowed_hosts.as_deref(),
                manifest.max_http_response_bytes(),
                b.http_headers,
            )?,
            wasi: wasi.clone(),
            config: manifest.config.clone(),
            output_limit: b.output_limit,
        };
        Ok(Recipe {
            modules,
            asynchronous: b.asynchronous || b.functions.iter().any(Function::is_async),
            functions: b.functions,
            wasi,
            settings: Arc::new(settings),
            compile_limits: b.compile_limits,
            cache_max_bytes: b
                .cache_max_bytes
                .unwrap_or_else(super::disk_cache::default_max_bytes),
            cache_dir: b.cache_dir,
            artifact,
        })
    }

    /// The disk cache this load uses, if any.
    fn disk(&self) -> Option<super::disk_cache::DiskCache<'_>> {
        self.cache_dir
            .as_deref()
            .map(|dir| super::disk_cache::DiskCache {
                dir,
                max_bytes: self.cache_max_bytes,
            })
    }

    /// Compiles (or finds in the caches) and links the modules on `engine`.
    fn build(&self, engine: EngineHandle) -> Result<Compiled> {
        // Baseline code is for the minutes until the optimized code is there: not kept on disk.
        let disk = self.disk().filter(|_| !engine.is_baseline());
        let mut compiled: Vec<(String, Module)> = Vec::with_capacity(self.modules.len());
        let last = self.modules.len() - 1;
        let mut fused = None;
        let mut precompiled_main = false;
        for (i, (name, binary)) in self.modules.iter().enumerate() {
            let compile_error = |message: String| Error::Compile {
                module: name.clone(),
                message,
            };
            // Only the main module is fused: Extism memory is one per instance, and the other
            // modules reach it through the host functions.
            let is_main = i == last;
            let limits = self.compile_limits;
            let precompiled = match &self.artifact {
                Some(a) if is_main => a.module_for(&engine),
                _ => None,
            };
            precompiled_main |= precompiled.is_some();
            let module = if let Some(module) = precompiled {
                Ok(module)
            } else if limits.deadline.is_some() {
                // On a thread of its own, so that the load can give up at the deadline.
                let (engine, binary) = (engine.clone(), binary.clone());
                let (dir, max_bytes) = (self.cache_dir.clone(), self.cache_max_bytes);
                limits.run(name, move || {
                    let disk = dir
                        .as_deref()
                        .map(|dir| super::disk_cache::DiskCache { dir, max_bytes });
                    super::module_cache::get_or_compile(&engine, &binary, is_main, disk)
                })?
            } else {
                super::module_cache::get_or_compile(&engine, binary, is_main, disk)
            }
            .map_err(|e| compile_error(format!("{e:#}")))?;
            if is_main {
                // Fusing adds the Extism memory export under a name the module itself does not
                // use; a module it left alone lacks it.
                fused = super::fuse::fused_exports(binary).filter(|f| {
                    matches!(
                        module.get_export(&f.memory_export),
                        Some(wasmtime::ExternType::Memory(_))
                    )
                });
            }
            compiled.push((name.clone(), module));
        }
        let (_, main) = compiled
            .pop()
            .expect("resolve returns at least the main module");
        let deps = order_dependencies(compiled)?;

        let mut linker: Linker<StoreData> = Linker::new(engine.engine());
        host::add_to_linker(&mut linker).map_err(|e| Error::other(e.to_string()))?;
        if self.wasi.is_some() {
            host::add_wasi_to_linker(&mut linker).map_err(|e| Error::other(e.to_string()))?;
        }
        if self.asynchronous {
            host::add_async_to_linker(&mut linker, self.wasi.is_some())
                .map_err(|e| Error::other(e.to_string()))?;
        }
        // Host functions may replace built-in ones, and manifest modules may replace both.
        linker.allow_shadowing(true);
        let mut provided: HashSet<(String, String)> = HashSet::new();
        for f in &self.functions {
            let ty = FuncType::new(engine.engine(), f.params.clone(), f.results.clone());
            provided.insert((f.namespace.clone(), f.name.clone()));
            let f = f.clone();
            let (ns, name) = (f.namespace.clone(), f.name.clone());
            if f.is_async() {
                linker
                    .func_new_async(&ns, &name, ty, move |caller, params, results| {
                        let f = f.clone();
                        Box::new(async move { f.invoke_async(caller, params, results).await })
                    })
                    .map_err(|e| Error::other(e.to_string()))?;
            } else {
                linker
                    .func_new(&ns, &name, ty, move |caller, params, results| {
                        f.invoke(caller, params, results)
                    })
                    .map_err(|e| Error::other(e.to_string()))?;
            }
        }

        let module_names: HashMap<&str, &Module> =
            deps.iter().map(|(n, m)| (n.as_str(), m)).collect();
        for (name, module) in deps
            .iter()
            .map(|(n, m)| (n.as_str(), m))
            .chain([(MAIN_MODULE, &main)])
        {
            check_imports(name, module, &module_names, &provided, self.wasi.is_some())?;
        }

        let pre = if deps.is_empty() {
            Some(
                linker
                    .instantiate_pre(&main)
                    .map_err(|e| Error::Link(format!("cannot link the plug-in: {e:#}")))?,
            )
        } else {
            None
        };
        let reads_stream = main
            .imports()
            .any(|i| i.module() == crate::abi::PLINTH_ENV && i.name() == crate::abi::STREAM_READ);
        Ok(Compiled {
            engine,
            linker,
            main,
            deps,
            pre,
            fused,
            settings: self.settings.clone(),
            on_demand: None,
            precompiled: precompiled_main,
            upgrade: None,
            movable: false,
            has_async: self.asynchronous,
            reads_stream,
        })
    }
}

impl CompiledPlugin {
    /// Compiles a plug-in: `CompiledPlugin::new(&manifest, [], false)`, like Extism.
    pub fn new(
        source: impl Into<Source>,
        functions: impl IntoIterator<Item = Function>,
        wasi: bool,
    ) -> Result<Self> {
        PluginBuilder::new(source)
            .with_functions(functions)
            .with_wasi(wasi)
            .compile()
    }

    pub(super) fn compile(b: PluginBuilder) -> Result<Self> {
        if b.init_fuel.is_some() && b.fuel.is_none() {
            return Err(Error::other(
                "an initialization fuel limit needs a call fuel limit too: fuel is metered only \
                 for plug-ins with one; add `with_fuel_limit`",
            ));
        }
        let pooled = b.pooled;
        let fuel = b.fuel.is_some();
        let tiering = b.tiering;
        let recipe = Arc::new(Recipe::new(b)?);
        if tiering {
            if let Some(baseline) = Self::baseline_first(&recipe, fuel, pooled) {
                return Ok(CompiledPlugin {
                    inner: Arc::new(baseline),
                });
            }
        }
        Ok(CompiledPlugin {
            inner: Arc::new(build_on(&recipe, fuel, pooled, false)?),
        })
    }

    /// The baseline (Winch) build, with Cranelift's started on a thread of its own; `None`
    /// when tiering does not apply: several modules, an artifact, optimized code already in a
    /// cache, or a module Winch refuses (such as one with tail calls).
    fn baseline_first(recipe: &Arc<Recipe>, fuel: bool, pooled: bool) -> Option<Compiled> {
        let [(_, wasm)] = recipe.modules.as_slice() else {
            return None;
        };
        if recipe.artifact.is_some() {
            return None;
        }
        let optimized = EngineHandle::shared_tier(fuel, pooled, false);
        if super::module_cache::is_cached(&optimized, wasm, true, recipe.disk()) {
            return None;
        }
        let mut baseline = match build_on(recipe, fuel, pooled, true) {
            Ok(baseline) => baseline,
            Err(e) => {
                tracing::debug!("no baseline tier for this plug-in ({e}); compiling it optimized");
                return None;
            }
        };
        let upgrade = Arc::new(super::tier::Upgrade::default());
        let (recipe, ready) = (recipe.clone(), upgrade.clone());
        let started = std::thread::Builder::new()
            .name("plinth-optimize".into())
            .spawn(move || {
                let optimized = match build_on(&recipe, fuel, pooled, false) {
                    Ok(c) => Some(Arc::new(c)),
                    Err(e) => {
                        tracing::warn!(
                            "the optimized compile of a plug-in failed ({e}); it stays on its \
                             baseline code"
                        );
                        None
                    }
                };
                let _ = ready.ready.set(optimized);
            });
        if started.is_err() {
            return None;
        }
        baseline.movable = baseline.fused.is_some() && super::tier::state_can_move(wasm);
        baseline.upgrade = Some(upgrade);
        Some(baseline)
    }

    pub(super) fn compile_artifact(b: PluginBuilder, key: &ArtifactKey) -> Result<Vec<u8>> {
        let engine = EngineHandle::shared(b.fuel.is_some(), b.pooled);
        let recipe = Recipe::new(b)?;
        let [(_, wasm)] = recipe.modules.as_slice() else {
            return Err(Error::Artifact(format!(
                "an artifact holds one module, and this plug-in has {}; load its modules from \
                 the manifest instead",
                recipe.modules.len()
            )));
        };
        let compiled = recipe.build(engine.clone())?;
        let native = compiled
            .main
            .serialize()
            .map_err(|e| Error::Artifact(format!("cannot serialize the compiled module: {e}")))?;
        Ok(Artifact::write(
            key,
            u32::from(compiled.settings.fuel.is_some()),
            super::disk_cache::fingerprint(compiled.engine.engine()),
            wasm,
            &native,
        ))
    }

    /// Whether the main module's native code came from a precompiled artifact rather than
    /// from compiling (false when the artifact was for another engine and was compiled).
    pub fn is_precompiled(&self) -> bool {
        self.inner.precompiled
    }

    /// Which code new instances of this plug-in run: [`Tier::Optimized`](super::Tier) unless
    /// it was loaded [`with_tiering`](PluginBuilder::with_tiering) and Cranelift has not
    /// finished yet (or failed).
    pub fn tier(&self) -> super::Tier {
        match self.inner.upgraded() {
            Some(optimized) => optimized.tier(),
            None => self.inner.tier(),
        }
    }

    /// Waits until the background compile of a plug-in loaded with tiering has ended, and
    /// returns the tier new instances get. Returns at once for other plug-ins.
    pub fn wait_for_optimized(&self) -> super::Tier {
        if let Some(upgrade) = &self.inner.upgrade {
            upgrade.ready.wait();
        }
        self.tier()
    }

    /// Names of the main module's exports that can be called.
    pub fn functions(&self) -> Vec<String> {
        let hidden = self
            .inner
            .fused
            .as_ref()
            .and_then(|f| f.start_export.as_deref());
        callable_exports(&self.inner.main, hidden)
    }

    /// Whether `name` is a callable export of the main module.
    pub fn function_exists(&self, name: &str) -> bool {
        self.functions().iter().any(|f| f == name)
    }
}

//! [`CompiledPlugin`]: the load pipeline, manifest → resolve → fuse → compile → link, and
//! what it leaves for instances to start from.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use plinth_manifest::{ResolvedModule, MAIN_MODULE};
use wasmtime::{FuncType, InstancePre, Linker, Module};

use super::imports::{callable_exports, check_imports};
use super::link::order_dependencies;
use super::{PluginBuilder, Source};
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
        let manifest = b.source.into_manifest()?;
        let modules = manifest.resolve()?;
        let engine = EngineHandle::shared(b.fuel.is_some(), b.pooled);

        let disk = b
            .cache_dir
            .as_deref()
            .map(|dir| super::disk_cache::DiskCache {
                dir,
                max_bytes: b
                    .cache_max_bytes
                    .unwrap_or_else(super::disk_cache::default_max_bytes),
            });
        let mut compiled: Vec<(String, Module)> = Vec::with_capacity(modules.len());
        let last = modules.len() - 1;
        let mut fused = None;
        for (i, ResolvedModule { name, bytes }) in modules.into_iter().enumerate() {
            let compile_error = |message: String| Error::Compile {
                module: name.clone(),
                message,
            };
            let binary = wat::parse_bytes(&bytes).map_err(|e| compile_error(e.to_string()))?;
            // Only the main module is fused: Extism memory is one per instance, and the other
            // modules reach it through the host functions.
            let is_main = i == last;
            let limits = b.compile_limits;
            limits.check(&name, &binary)?;
            let module = if limits.deadline.is_some() {
                // On a thread of its own, so that the load can give up at the deadline.
                let (engine, binary) = (engine.clone(), binary.to_vec());
                let (dir, max_bytes) = (b.cache_dir.clone(), disk.as_ref().map(|d| d.max_bytes));
                limits.run(&name, move || {
                    let disk = dir
                        .as_deref()
                        .zip(max_bytes)
                        .map(|(dir, max_bytes)| super::disk_cache::DiskCache { dir, max_bytes });
                    super::module_cache::get_or_compile(&engine, &binary, is_main, disk)
                })?
            } else {
                super::module_cache::get_or_compile(&engine, &binary, is_main, disk)
            }
            .map_err(|e| compile_error(format!("{e:#}")))?;
            if is_main {
                // Fusing adds the Extism memory export under a name the module itself does not
                // use; a module it left alone lacks it.
                fused = super::fuse::fused_exports(&binary).filter(|f| {
                    matches!(
                        module.get_export(&f.memory_export),
                        Some(wasmtime::ExternType::Memory(_))
                    )
                });
            }
            compiled.push((name, module));
        }
        let (_, main) = compiled
            .pop()
            .expect("resolve returns at least the main module");
        let deps = order_dependencies(compiled)?;

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

        let mut linker: Linker<StoreData> = Linker::new(engine.engine());
        host::add_to_linker(&mut linker).map_err(|e| Error::other(e.to_string()))?;
        if wasi.is_some() {
            host::add_wasi_to_linker(&mut linker).map_err(|e| Error::other(e.to_string()))?;
        }
        // Host functions may replace built-in ones, and manifest modules may replace both.
        linker.allow_shadowing(true);
        let mut provided: HashSet<(String, String)> = HashSet::new();
        for f in b.functions {
            let ty = FuncType::new(engine.engine(), f.params.clone(), f.results.clone());
            provided.insert((f.namespace.clone(), f.name.clone()));
            let (ns, name) = (f.namespace.clone(), f.name.clone());
            linker
                .func_new(&ns, &name, ty, move |caller, params, results| {
                    f.invoke(caller, params, results)
                })
                .map_err(|e| Error::other(e.to_string()))?;
        }

        let module_names: HashMap<&str, &Module> =
            deps.iter().map(|(n, m)| (n.as_str(), m)).collect();
        for (name, module) in deps
            .iter()
            .map(|(n, m)| (n.as_str(), m))
            .chain([(MAIN_MODULE, &main)])
        {
            check_imports(name, module, &module_names, &provided, wasi.is_some())?;
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
            wasi,
            config: manifest.config.clone(),
        };
        Ok(CompiledPlugin {
            inner: Arc::new(Compiled {
                engine,
                linker,
                main,
                deps,
                pre,
                fused,
                settings: Arc::new(settings),
            }),
        })
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

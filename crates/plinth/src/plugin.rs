//! Loading, instantiating and calling plug-ins.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use plinth_convert::{FromBytes, ToBytes};
use plinth_manifest::{Manifest, ResolvedModule, Wasm, MAIN_MODULE};
use wasmtime::{
    ExternType, FuncType, InstancePre, Linker, Memory, MemoryType, Module, Store, Trap, TypedFunc,
    UpdateDeadline, ValType,
};

use crate::engine::EngineHandle;
use crate::function::Function;
use crate::http::HttpPolicy;
use crate::memory::{self, Arena};
use crate::state::{self, HttpState, Interrupt, Kernel, Limiter, Refusal, StoreData, Vars};
use crate::wasi::{WasiOptions, WasiStdio};
use crate::{abi, Error, Result};

/// What a plug-in is loaded from: a manifest, a file, or raw bytes.
///
/// Every SDK and the `plinth` command turn their argument into one of these, so that the same
/// input loads the same way in every language. The one rule for relative paths: in a manifest
/// read from a file ([`Source::File`]), relative `wasm` file paths and `allowed_paths` are
/// relative to the manifest file's folder; everywhere else (a [`Manifest`] value, manifest
/// bytes) they are relative to the working directory, as in Extism.
#[derive(Debug, Clone)]
pub enum Source {
    /// A manifest value.
    Manifest(Manifest),
    /// A wasm binary, WAT text, or a manifest in JSON or TOML, told apart by content.
    Bytes(Vec<u8>),
    /// A file holding a wasm binary, WAT text or a manifest, told apart by content.
    File(PathBuf),
}

impl From<Manifest> for Source {
    fn from(m: Manifest) -> Self {
        Source::Manifest(m)
    }
}
impl From<&Manifest> for Source {
    fn from(m: &Manifest) -> Self {
        Source::Manifest(m.clone())
    }
}
impl From<Wasm> for Source {
    fn from(w: Wasm) -> Self {
        Source::Manifest(Manifest::new([w]))
    }
}
impl From<Vec<u8>> for Source {
    fn from(b: Vec<u8>) -> Self {
        Source::Bytes(b)
    }
}
impl From<&[u8]> for Source {
    fn from(b: &[u8]) -> Self {
        Source::Bytes(b.to_vec())
    }
}
impl<const N: usize> From<&[u8; N]> for Source {
    fn from(b: &[u8; N]) -> Self {
        Source::Bytes(b.to_vec())
    }
}
impl From<&str> for Source {
    fn from(s: &str) -> Self {
        Source::Bytes(s.as_bytes().to_vec())
    }
}
impl From<&std::path::Path> for Source {
    fn from(p: &std::path::Path) -> Self {
        Source::File(p.to_path_buf())
    }
}
impl From<PathBuf> for Source {
    fn from(p: PathBuf) -> Self {
        Source::File(p)
    }
}

impl Source {
    /// A file holding a wasm binary, WAT text or a manifest.
    pub fn file(path: impl Into<PathBuf>) -> Source {
        Source::File(path.into())
    }

    /// A manifest file (JSON or TOML), read now whatever its content looks like; its relative
    /// paths are rebased onto its folder.
    pub fn manifest_file(path: impl AsRef<std::path::Path>) -> Result<Source> {
        Ok(Source::Manifest(Manifest::from_file(path)?))
    }

    /// The manifest this source stands for (raw modules get a one-module manifest).
    pub fn into_manifest(self) -> Result<Manifest> {
        match self {
            Source::Manifest(m) => Ok(m),
            Source::Bytes(b) => {
                if !b.starts_with(b"\0asm") && Manifest::looks_like_manifest(&b) {
                    Ok(Manifest::parse(&b)?)
                } else {
                    Ok(Manifest::new([Wasm::data(b)]))
                }
            }
            Source::File(path) => {
                let bytes = std::fs::read(&path).map_err(|source| {
                    Error::Manifest(plinth_manifest::ManifestError::ReadSource {
                        path: path.clone(),
                        source,
                    })
                })?;
                if !bytes.starts_with(b"\0asm") && Manifest::looks_like_manifest(&bytes) {
                    let mut manifest = Manifest::parse(&bytes)?;
                    manifest.rebase_paths(path.parent().unwrap_or(std::path::Path::new("")));
                    Ok(manifest)
                } else {
                    // The module is read again at load, by path, so that its name and the
                    // errors that mention it carry the file's path.
                    Ok(Manifest::new([Wasm::file(path)]))
                }
            }
        }
    }
}

/// Builds a [`Plugin`] or a [`CompiledPlugin`].
#[must_use]
pub struct PluginBuilder {
    source: Source,
    wasi: bool,
    functions: Vec<Function>,
    fuel: Option<u64>,
    init_fuel: Option<u64>,
    instance_memory_max: Option<u32>,
    pooled: bool,
    stdio: WasiStdio,
    http_headers: bool,
    cache_dir: Option<PathBuf>,
    cache_max_bytes: Option<u64>,
    compile_limits: crate::CompileLimits,
}

impl PluginBuilder {
    pub fn new(source: impl Into<Source>) -> Self {
        PluginBuilder {
            source: source.into(),
            wasi: false,
            functions: Vec::new(),
            fuel: None,
            init_fuel: None,
            instance_memory_max: None,
            pooled: false,
            stdio: WasiStdio::Inherit,
            http_headers: false,
            cache_dir: crate::disk_cache::default_dir(),
            cache_max_bytes: None,
            compile_limits: crate::CompileLimits::default(),
        }
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

    pub fn with_function(mut self, f: Function) -> Self {
        self.functions.push(f);
        self
    }

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
    /// [`Error::Other`]. As Extism 1.41's method of the same name.
    pub fn with_initialization_fuel_limit(mut self, fuel: u64) -> Self {
        self.init_fuel = Some(fuel);
        self
    }

    /// One limit on all the memory an instance holds, from its first byte: every memory's
    /// initial size and growth (Extism memory's too) and every table (8 bytes an element), in
    /// all the manifest's modules. `memory.max_pages` follows Extism instead: it does not
    /// count what the modules declare, only growth after instantiation. Going over this limit
    /// fails like going over `max_pages` ([`Error::OutOfMemory`], at instantiation or in the
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

    /// Instances from pre-made slots (wasmtime's pooling allocator) instead of fresh memory
    /// mappings: a new instance costs a fraction as much, which pays off for hosts that make
    /// an instance per request. The slots are shared by every pooled plug-in of the process:
    /// at most [`POOLED_INSTANCES`](crate::POOLED_INSTANCES) pooled instances can be alive at
    /// once (making one more fails with [`Error::Link`] until one is dropped), each memory can
    /// grow to at most 4 GiB, and a module may have at most one table and one memory of its
    /// own. The slots' address space (not memory) is reserved when the first pooled plug-in
    /// is loaded. Off by default.
    pub fn with_instance_pooling(mut self, on: bool) -> Self {
        self.pooled = on;
        self
    }

    /// Bounds on compiling each module of the plug-in: its size, its function count and a
    /// deadline ([`CompileLimits`](crate::CompileLimits); the defaults bound size and count
    /// only). A module over a bound fails with [`Error::CompileLimit`].
    pub fn with_compile_limits(mut self, limits: crate::CompileLimits) -> Self {
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

    pub fn compile(self) -> Result<CompiledPlugin> {
        CompiledPlugin::compile(self)
    }

    pub fn build(self) -> Result<Plugin> {
        Plugin::from_compiled(&self.compile()?)
    }
}

/// Settings every instance of a compiled plug-in shares.
pub(crate) struct Shared {
    pub max_var_bytes: u64,
    pub max_pages: Option<u32>,
    pub instance_memory_max: Option<u32>,
    pub timeout: Option<Duration>,
    pub fuel: Option<u64>,
    /// Fuel for instantiation and the start-up exports: the initialization limit, or `fuel`.
    pub init_fuel: Option<u64>,
    pub http: HttpPolicy,
    pub wasi: Option<WasiOptions>,
    pub config: BTreeMap<String, String>,
}

/// A compiled plug-in: makes new [`Plugin`] instances without compiling again. Cheap to clone
/// and safe to share between threads.
#[derive(Clone)]
pub struct CompiledPlugin {
    inner: Arc<Compiled>,
}

struct Compiled {
    engine: EngineHandle,
    linker: Linker<StoreData>,
    main: Module,
    /// Other modules, in the order they must be instantiated.
    deps: Vec<(String, Module)>,
    pre: Option<InstancePre<StoreData>>,
    /// The main module carries Extism memory and the hot ABI functions itself.
    fused: Option<crate::fuse::Fused>,
    shared: Arc<Shared>,
}

#[derive(Clone)]
enum Callable {
    I32(TypedFunc<(), i32>),
    Unit(TypedFunc<(), ()>),
}

fn callable_type(ty: &FuncType) -> Option<bool> {
    if ty.params().len() != 0 {
        return None;
    }
    let results: Vec<ValType> = ty.results().collect();
    match results.as_slice() {
        [] => Some(false),
        [ValType::I32] => Some(true),
        _ => None,
    }
}

impl CompiledPlugin {
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

    fn compile(b: PluginBuilder) -> Result<Self> {
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
            .map(|dir| crate::disk_cache::DiskCache {
                dir,
                max_bytes: b
                    .cache_max_bytes
                    .unwrap_or_else(crate::disk_cache::default_max_bytes),
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
                        .map(|(dir, max_bytes)| crate::disk_cache::DiskCache { dir, max_bytes });
                    crate::module_cache::get_or_compile(&engine, &binary, is_main, disk)
                })?
            } else {
                crate::module_cache::get_or_compile(&engine, &binary, is_main, disk)
            }
            .map_err(|e| compile_error(format!("{e:#}")))?;
            if is_main {
                // Fusing adds the Extism memory export under a name the module itself does not
                // use; a module it left alone lacks it.
                fused = crate::fuse::fused_exports(&binary).filter(|f| {
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
        abi::add_to_linker(&mut linker).map_err(|e| Error::other(e.to_string()))?;
        if wasi.is_some() {
            crate::wasi::add_to_linker(&mut linker).map_err(|e| Error::other(e.to_string()))?;
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

        let shared = Shared {
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
                shared: Arc::new(shared),
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

    pub fn function_exists(&self, name: &str) -> bool {
        self.functions().iter().any(|f| f == name)
    }

    /// A new, independent instance.
    pub fn instantiate(&self) -> Result<Plugin> {
        Plugin::from_compiled(self)
    }
}

/// `(i64, i64) -> i64` for functions; the kind of anything else.
fn describe_type(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let list = |it: &mut dyn Iterator<Item = ValType>| {
                it.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            };
            format!(
                "({}) -> ({})",
                list(&mut f.params()),
                list(&mut f.results())
            )
        }
        ExternType::Memory(_) => "memory".into(),
        ExternType::Table(_) => "table".into(),
        ExternType::Global(_) => "global".into(),
        ExternType::Tag(_) => "tag".into(),
    }
}

fn callable_exports(module: &Module, hidden: Option<&str>) -> Vec<String> {
    module
        .exports()
        .filter(|e| Some(e.name()) != hidden)
        .filter_map(|e| match e.ty() {
            ExternType::Func(f) if callable_type(&f).is_some() => Some(e.name().to_string()),
            _ => None,
        })
        .collect()
}

/// Sorts non-main modules so that each comes after the modules it imports from. Modules that
/// import each other in a cycle cannot: one of them goes first, and its imports from the others
/// are bound late, through trampolines (see `late_bind`), which only functions allow.
fn order_dependencies(mut pending: Vec<(String, Module)>) -> Result<Vec<(String, Module)>> {
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        // For each pending module, the other pending modules it imports from.
        let waits: Vec<Vec<usize>> = pending
            .iter()
            .map(|(name, m)| {
                let mut on: Vec<usize> = m
                    .imports()
                    .filter(|i| i.module() != name)
                    .filter_map(|i| pending.iter().position(|(n, _)| n == i.module()))
                    .collect();
                on.sort_unstable();
                on.dedup();
                on
            })
            .collect();
        let next = match waits.iter().position(Vec::is_empty) {
            Some(i) => i,
            None => break_cycle(&pending, &waits)?,
        };
        out.push(pending.remove(next));
    }
    Ok(out)
}

/// Which module to instantiate first when every pending module imports from another pending
/// one. It comes from a cycle that imports from no other pending module (one always exists),
/// so all its late-bound imports point into that cycle; the first in manifest order whose
/// imports from the cycle are all functions is chosen.
fn break_cycle(pending: &[(String, Module)], waits: &[Vec<usize>]) -> Result<usize> {
    let reach = |from: usize| {
        let mut seen = vec![false; pending.len()];
        let mut stack = vec![from];
        while let Some(m) = stack.pop() {
            for &n in &waits[m] {
                if !seen[n] {
                    seen[n] = true;
                    stack.push(n);
                }
            }
        }
        seen
    };
    let reaches: Vec<Vec<bool>> = (0..pending.len()).map(reach).collect();
    // A module of such a cycle is reached back from everything it reaches.
    let first = (0..pending.len())
        .find(|&m| (0..pending.len()).all(|n| !reaches[m][n] || reaches[n][m]))
        .expect("a graph where every node has an edge out has a cycle with none leaving it");
    let cycle: Vec<usize> = (0..pending.len()).filter(|&n| reaches[first][n]).collect();
    let in_cycle = |ns: &str| cycle.iter().any(|&n| pending[n].0 == ns);

    let mut blocked = Vec::new();
    for &m in &cycle {
        let (name, module) = &pending[m];
        let imports: Vec<_> = module
            .imports()
            .filter(|i| i.module() != name && in_cycle(i.module()))
            .collect();
        if let Some(i) = imports
            .iter()
            .find(|i| !matches!(i.ty(), ExternType::Func(_)))
        {
            blocked.push(format!(
                "`{name}` imports {} `{}::{}`",
                describe_type(&i.ty()),
                i.module(),
                i.name()
            ));
            continue;
        }
        // A trampoline takes the import's type, so wasmtime's link-time check does not see
        // the export's: check it here.
        for i in &imports {
            let ExternType::Func(want) = i.ty() else {
                unreachable!("checked above")
            };
            let target = &pending
                .iter()
                .find(|(n, _)| n == i.module())
                .expect("in the cycle")
                .1;
            let found = match target.get_export(i.name()) {
                Some(ExternType::Func(got)) if got.matches(&want) => continue,
                // check_imports reports a missing export.
                None => continue,
                Some(got @ ExternType::Func(_)) => format!("it as {}", describe_type(&got)),
                Some(got) => format!("a {} under that name", describe_type(&got)),
            };
            return Err(Error::Link(format!(
                "module `{name}` imports `{}::{}` as a function {}, but module `{}` exports {found}",
                i.module(),
                i.name(),
                describe_type(&i.ty()),
                i.module()
            )));
        }
        return Ok(m);
    }
    let names: Vec<String> = cycle
        .iter()
        .map(|&n| format!("`{}`", pending[n].0))
        .collect();
    Err(Error::Link(format!(
        "the modules {} import each other in a cycle that Plinth cannot link: it closes a cycle \
         by binding one module's imports from the others late, which only works for functions, \
         but {}",
        names.join(", "),
        blocked.join(" and ")
    )))
}

/// A function import of a module from one instantiated after it: its trampoline calls `func`
/// once that module exists.
struct LateImport {
    module: String,
    name: String,
    func: Arc<OnceLock<wasmtime::Func>>,
}

/// Defines in `linker` a trampoline for each import of `module` from a module in `later`
/// (instantiated after it: they import each other in a cycle, and `order_dependencies` made
/// sure that such imports are functions of the right type).
fn late_bind(
    linker: &mut Linker<StoreData>,
    importer: &str,
    module: &Module,
    later: &[(String, Module)],
    late: &mut Vec<LateImport>,
) -> wasmtime::Result<()> {
    for import in module.imports() {
        let (target, name) = (import.module(), import.name());
        if !later.iter().any(|(n, _)| n == target) {
            continue;
        }
        let ExternType::Func(ty) = import.ty() else {
            return Err(wasmtime::Error::msg(format!(
                "module `{importer}` imports `{target}::{name}` from a module instantiated after \
                 it, which only works for functions"
            )));
        };
        let func = match late.iter().find(|l| l.module == target && l.name == name) {
            Some(l) => l.func.clone(),
            None => {
                let func = Arc::new(OnceLock::new());
                late.push(LateImport {
                    module: target.to_string(),
                    name: name.to_string(),
                    func: func.clone(),
                });
                func
            }
        };
        let early = format!(
            "module `{importer}` called `{target}::{name}` before module `{target}` was \
             instantiated: modules that import each other are instantiated one at a time, so a \
             start function or `_initialize` cannot call into one instantiated later; list \
             `{target}` before `{importer}` in the manifest, or make the call later"
        );
        linker.func_new(
            target,
            name,
            ty,
            move |mut caller, params, results| match func.get() {
                Some(f) => f.call(&mut caller, params, results),
                None => Err(wasmtime::Error::msg(early.clone())),
            },
        )?;
    }
    Ok(())
}

/// Points the trampolines that wait for module `name` at its exports.
fn bind_late(
    store: &mut Store<StoreData>,
    name: &str,
    instance: wasmtime::Instance,
    late: &mut Vec<LateImport>,
) -> wasmtime::Result<()> {
    for l in late.iter().filter(|l| l.module == name) {
        let func = instance.get_func(&mut *store, &l.name).ok_or_else(|| {
            wasmtime::Error::msg(format!(
                "module `{name}` does not export function `{}`",
                l.name
            ))
        })?;
        // Set once: each instantiation makes its own trampolines.
        let _ = l.func.set(func);
    }
    late.retain(|l| l.module != name);
    Ok(())
}

/// How the host satisfies one import of a plug-in module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportStatus {
    /// Part of the Extism ABI that Plinth provides.
    Abi,
    /// A host function the program registered.
    HostFunction,
    /// An export of another module in the manifest.
    Module,
    /// WASI, which is on.
    Wasi,
    /// Not provided; the text says why and what to do.
    Missing(String),
}

pub(crate) fn classify_import(
    module_name: &str,
    ns: &str,
    name: &str,
    modules: &HashMap<&str, &Module>,
    provided: &HashSet<(String, String)>,
    wasi: bool,
) -> ImportStatus {
    if let Some(m) = modules.get(ns) {
        return if m.get_export(name).is_some() {
            ImportStatus::Module
        } else {
            ImportStatus::Missing(format!(
                "module `{module_name}` imports `{ns}::{name}`, but module `{ns}` does not export `{name}`"
            ))
        };
    }
    if provided.contains(&(ns.to_string(), name.to_string())) {
        return ImportStatus::HostFunction;
    }
    if ns == abi::ENV {
        return if abi::IMPORTS.contains(&name) {
            ImportStatus::Abi
        } else {
            ImportStatus::Missing(format!(
                "module `{module_name}` imports `{ns}::{name}`, which this host does not provide; it may need a newer Plinth, or a host function registered under that name"
            ))
        };
    }
    if ns == abi::PLINTH_ENV {
        return if abi::PLINTH_IMPORTS.contains(&name) {
            ImportStatus::Abi
        } else {
            ImportStatus::Missing(format!(
                "module `{module_name}` imports `{ns}::{name}`, which this version of Plinth does not provide; it may need a newer Plinth"
            ))
        };
    }
    if ns == abi::LEGACY_ENV
        && name
            .strip_prefix(abi::LEGACY_PREFIX)
            .is_some_and(|n| abi::IMPORTS.contains(&n))
    {
        return ImportStatus::Abi;
    }
    if ns.starts_with("wasi_snapshot_preview1") || ns.starts_with("wasi_unstable") {
        return if wasi {
            ImportStatus::Wasi
        } else {
            ImportStatus::Missing(format!(
                "module `{module_name}` imports WASI (`{ns}::{name}`) but WASI is off; enable it with `with_wasi(true)` or `--wasi`"
            ))
        };
    }
    ImportStatus::Missing(format!(
        "module `{module_name}` imports `{ns}::{name}`, which nothing provides; register a host function `{name}` in namespace `{ns}`, or add a module named `{ns}` to the manifest"
    ))
}

fn check_imports(
    module_name: &str,
    module: &Module,
    modules: &HashMap<&str, &Module>,
    provided: &HashSet<(String, String)>,
    wasi: bool,
) -> Result<()> {
    for import in module.imports() {
        if let ImportStatus::Missing(why) = classify_import(
            module_name,
            import.module(),
            import.name(),
            modules,
            provided,
            wasi,
        ) {
            return Err(Error::Link(why));
        }
    }
    Ok(())
}

/// What one module of a plug-in exports and imports, for `plinth info`.
#[derive(Debug, Clone)]
pub struct ModuleReport {
    pub name: String,
    /// Exports that can be called as plug-in functions.
    pub functions: Vec<String>,
    pub imports: Vec<ImportReport>,
}

#[derive(Debug, Clone)]
pub struct ImportReport {
    pub module: String,
    pub name: String,
    /// The import's type, as wasmtime prints it.
    pub ty: String,
    pub status: ImportStatus,
}

/// Reads a plug-in's modules without linking them, and says how the host would satisfy each
/// import when WASI is `wasi` and `functions` are registered.
pub fn inspect(
    source: impl Into<Source>,
    wasi: bool,
    functions: &[Function],
) -> Result<Vec<ModuleReport>> {
    let manifest = source.into().into_manifest()?;
    let engine = EngineHandle::shared(false, false);
    let mut modules = Vec::new();
    for ResolvedModule { name, bytes } in manifest.resolve()? {
        let module = Module::new(engine.engine(), &bytes).map_err(|e| Error::Compile {
            module: name.clone(),
            message: format!("{e:#}"),
        })?;
        modules.push((name, module));
    }
    let provided: HashSet<(String, String)> = functions
        .iter()
        .map(|f| (f.namespace.clone(), f.name.clone()))
        .collect();
    let last = modules.len() - 1;
    let by_name: HashMap<&str, &Module> = modules[..last]
        .iter()
        .map(|(n, m)| (n.as_str(), m))
        .collect();
    Ok(modules
        .iter()
        .map(|(name, module)| ModuleReport {
            name: name.clone(),
            functions: callable_exports(module, None),
            imports: module
                .imports()
                .map(|i| ImportReport {
                    module: i.module().to_string(),
                    name: i.name().to_string(),
                    ty: describe_type(&i.ty()),
                    status: classify_import(name, i.module(), i.name(), &by_name, &provided, wasi),
                })
                .collect(),
        })
        .collect())
}

/// One wasmtime instance of a plug-in and its store.
struct Live {
    store: Store<StoreData>,
    instance: wasmtime::Instance,
    funcs: HashMap<String, Callable>,
    last: Option<(Box<str>, Callable)>,
    initialized: bool,
    /// The instance may not be called again (`_start` ran, or a call trapped).
    spent: bool,
}

/// A loaded plug-in instance. Calls on it run one at a time (`&mut self`); for calls from many
/// threads use [`SharedPlugin`] or one instance per thread from a [`CompiledPlugin`].
pub struct Plugin {
    compiled: CompiledPlugin,
    live: Option<Live>,
    /// Vars while no instance is live (between a spent instance and its replacement).
    vars: Vars,
    config: Arc<RwLock<BTreeMap<String, String>>>,
    cancel: Arc<AtomicBool>,
    id: Arc<str>,
    http_headers: bool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("id", &self.id).finish()
    }
}

/// Stops the running call of a plug-in from any thread.
#[derive(Clone)]
pub struct CancelHandle {
    flag: Arc<AtomicBool>,
    engine: EngineHandle,
}

impl CancelHandle {
    /// Cancels the call in progress, which then fails with [`Error::Cancelled`]. Does nothing
    /// when no call is running.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.engine.interrupt_now();
    }
}

impl Plugin {
    /// Loads a plug-in: `Plugin::new(&manifest, [], false)`, like Extism.
    pub fn new(
        source: impl Into<Source>,
        functions: impl IntoIterator<Item = Function>,
        wasi: bool,
    ) -> Result<Plugin> {
        PluginBuilder::new(source)
            .with_functions(functions)
            .with_wasi(wasi)
            .build()
    }

    pub fn builder(source: impl Into<Source>) -> PluginBuilder {
        PluginBuilder::new(source)
    }

    /// A new instance of a compiled plug-in.
    pub fn from_compiled(compiled: &CompiledPlugin) -> Result<Plugin> {
        let mut plugin = Plugin {
            compiled: compiled.clone(),
            live: None,
            vars: Vars::default(),
            config: Arc::new(RwLock::new(compiled.inner.shared.config.clone())),
            cancel: Arc::new(AtomicBool::new(false)),
            id: new_id().into(),
            http_headers: false,
        };
        // Instantiate now so that link and start-up errors show at load time.
        plugin.live()?;
        Ok(plugin)
    }

    /// The id that tags this plug-in's log lines.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn compiled(&self) -> &CompiledPlugin {
        &self.compiled
    }

    pub fn functions(&self) -> Vec<String> {
        self.compiled.functions()
    }

    pub fn function_exists(&self, name: &str) -> bool {
        self.compiled.function_exists(name)
    }

    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            flag: self.cancel.clone(),
            engine: self.compiled.inner.engine.clone(),
        }
    }

    /// Lets this plug-in read the headers of its HTTP responses (`http_headers`), as
    /// `PluginBuilder::with_http_response_headers` does for every instance.
    pub fn allow_http_response_headers(&mut self) {
        self.http_headers = true;
        if let Some(live) = &mut self.live {
            live.store.data_mut().http.headers_enabled = true;
        }
    }

    /// Current config (what `config_get` sees).
    pub fn config(&self) -> BTreeMap<String, String> {
        self.config.read().unwrap().clone()
    }

    /// Sets (`Some`) or removes (`None`) config keys; takes effect from the next call.
    pub fn update_config<K: Into<String>, V: Into<String>>(
        &mut self,
        changes: impl IntoIterator<Item = (K, Option<V>)>,
    ) {
        let mut config = self.config.write().unwrap();
        for (k, v) in changes {
            match v {
                Some(v) => config.insert(k.into(), v.into()),
                None => config.remove(&k.into()),
            };
        }
    }

    pub fn set_config(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.update_config([(key.into(), Some(value.into()))]);
    }

    fn vars(&self) -> &Vars {
        match &self.live {
            Some(l) => &l.store.data().vars,
            None => &self.vars,
        }
    }

    fn vars_mut(&mut self) -> &mut Vars {
        match &mut self.live {
            Some(l) => &mut l.store.data_mut().vars,
            None => &mut self.vars,
        }
    }

    /// A var the plug-in stored.
    pub fn var_get(&self, key: &str) -> Option<&[u8]> {
        self.vars().map.get(key).map(Vec::as_slice)
    }

    /// Sets or removes a var, within `memory.max_var_bytes`.
    pub fn var_set(&mut self, key: impl Into<String>, value: Option<&[u8]>) -> Result<()> {
        let limit = self.compiled.inner.shared.max_var_bytes;
        self.vars_mut()
            .set(key.into(), value.map(<[u8]>::to_vec), limit)
    }

    /// Releases all Extism memory of the last call (its output included).
    pub fn reset(&mut self) -> Result<()> {
        if let Some(live) = &mut self.live {
            let d = live.store.data_mut();
            d.arena.reset();
            d.output = (0, 0);
            d.error = 0;
            state::set_input(&mut live.store, 0, 0);
        }
        Ok(())
    }

    /// Makes the instance if there is none or the last one is spent; vars carry over.
    fn live(&mut self) -> Result<&mut Live> {
        if self.live.as_ref().is_some_and(|l| l.spent) {
            let old = self.live.take().unwrap();
            self.vars = old.store.into_data().vars;
        }
        if self.live.is_none() {
            // A copy, so that the vars survive an instantiation that fails (a start function
            // that times out, say).
            let live = self.instantiate(self.vars.clone())?;
            self.vars = Vars::default();
            self.live = Some(live);
        }
        Ok(self.live.as_mut().unwrap())
    }

    fn instantiate(&mut self, vars: Vars) -> Result<Live> {
        let c = &self.compiled.inner;
        let shared = c.shared.clone();
        let wasi = match &shared.wasi {
            Some(opts) => Some(opts.build()?),
            None => None,
        };
        let data = StoreData {
            arena: Arena::new(),
            kernel: None,
            input: (0, 0),
            output: (0, 0),
            error: 0,
            limiter: Limiter::new(shared.max_pages, shared.instance_memory_max),
            fuel_limit: shared.init_fuel.unwrap_or(0),
            vars,
            config: self.config.clone(),
            http: HttpState {
                headers_enabled: self.http_headers,
                ..HttpState::default()
            },
            shared: shared.clone(),
            plugin_id: self.id.clone(),
            deadline: None,
            cancel: self.cancel.clone(),
            host_context: None,
            wasi,
        };
        let mut store = Store::new(c.engine.engine(), data);
        store.limiter(|d| &mut d.limiter);
        store.epoch_deadline_callback(|ctx| {
            let d = ctx.data();
            if d.cancelled() {
                return Err(Interrupt::Cancelled.into());
            }
            if d.deadline.is_some_and(|t| Instant::now() >= t) {
                return Err(Interrupt::Timeout.into());
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        // One initialization budget for instantiation, start functions and (at the first
        // call) the start-up exports.
        if let Some(f) = shared.init_fuel {
            store.set_fuel(f).map_err(|e| Error::other(e.to_string()))?;
        }
        // A start function runs here: it gets the call's time limit and can be cancelled, so
        // a module that loops in it cannot hang the host.
        store.data_mut().deadline = shared.timeout.map(|t| Instant::now() + t);
        let _running = c.engine.call_guard();
        let link = |e: wasmtime::Error, store: &Store<StoreData>| -> Error {
            let refused = store.data().limiter.refused;
            if e.is::<Interrupt>() || (e.is::<Trap>() && refused.is_some()) {
                return classify_failure(store.data(), INSTANTIATION, e, &shared);
            }
            match refused {
                // A memory or table the limiter refused to create.
                Some(r) if r.is_budget() => out_of_memory(INSTANTIATION, r, &shared),
                Some(r) => Error::Link(format!(
                    "cannot instantiate the plug-in: it asks for {r}; it cannot be loaded"
                )),
                None if e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) => {
                    classify_failure(store.data(), INSTANTIATION, e, &shared)
                }
                None => Error::Link(format!("cannot instantiate the plug-in: {e:#}")),
            }
        };
        let fused_memory = c.fused.is_some();
        if !fused_memory {
            let memory =
                Memory::new(&mut store, MemoryType::new(1, None)).map_err(|e| link(e, &store))?;
            store.data_mut().kernel = Some(Kernel { memory });
        }
        // What the main module declares is checked against `max_pages`, not charged.
        let declare = |store: &mut Store<StoreData>| store.data_mut().limiter.declare(fused_memory);
        let instance = match &c.pre {
            Some(pre) => {
                declare(&mut store);
                pre.instantiate(&mut store).map_err(|e| link(e, &store))?
            }
            None => {
                let mut linker = c.linker.clone();
                // Imports from modules not instantiated yet (a cycle), until they are.
                let mut late = Vec::new();
                for (i, (name, module)) in c.deps.iter().enumerate() {
                    late_bind(&mut linker, name, module, &c.deps[i + 1..], &mut late)
                        .map_err(|e| link(e, &store))?;
                    let inst = linker
                        .instantiate(&mut store, module)
                        .map_err(|e| link(e, &store))?;
                    bind_late(&mut store, name, inst, &mut late).map_err(|e| link(e, &store))?;
                    if let Ok(init) = inst.get_typed_func::<(), ()>(&mut store, "_initialize") {
                        init.call(&mut store, ()).map_err(|e| link(e, &store))?;
                    }
                    linker
                        .instance(&mut store, name, inst)
                        .map_err(|e| link(e, &store))?;
                }
                declare(&mut store);
                linker
                    .instantiate(&mut store, &c.main)
                    .map_err(|e| link(e, &store))?
            }
        };
        if let Some(fused) = &c.fused {
            let Some(memory) = instance.get_memory(&mut store, &fused.memory_export) else {
                return Err(Error::other(
                    "the fused plug-in lacks its Extism memory export",
                ));
            };
            store.data_mut().kernel = Some(Kernel { memory });
            // The start function, deferred by fusing until Extism memory is reachable.
            if let Some(name) = &fused.start_export {
                let start = instance
                    .get_typed_func::<(), ()>(&mut store, name)
                    .map_err(|e| link(e, &store))?;
                start.call(&mut store, ()).map_err(|e| link(e, &store))?;
            }
        }
        // Instantiation is over: from here on, growth is charged (Extism resets its limiter
        // at this point).
        store.data_mut().limiter.run();
        Ok(Live {
            store,
            instance,
            funcs: HashMap::new(),
            last: None,
            initialized: false,
            spent: false,
        })
    }

    /// Calls `function` with `input` and decodes its output.
    pub fn call<'a, 'b, I: ToBytes<'a>, O: FromBytes<'b>>(
        &'b mut self,
        function: impl AsRef<str>,
        input: I,
    ) -> Result<O> {
        let bytes = input.to_bytes()?;
        self.raw_call(function.as_ref(), bytes.as_ref(), None)?;
        Ok(O::from_bytes(self.output())?)
    }

    /// Like [`Plugin::call`], with a value that host functions reach through
    /// [`CurrentPlugin::host_context`](crate::CurrentPlugin::host_context) during this call.
    pub fn call_with_host_context<'a, 'b, I: ToBytes<'a>, O: FromBytes<'b>, T: Any + Send>(
        &'b mut self,
        function: impl AsRef<str>,
        input: I,
        context: T,
    ) -> Result<O> {
        let bytes = input.to_bytes()?;
        self.raw_call(function.as_ref(), bytes.as_ref(), Some(Box::new(context)))?;
        Ok(O::from_bytes(self.output())?)
    }

    /// The output of the last successful call (empty after a failed one).
    pub fn output(&self) -> &[u8] {
        let Some(live) = &self.live else { return &[] };
        let (h, len) = live.store.data().output;
        if h == 0 || len == 0 {
            return &[];
        }
        memory::range(state::bytes(&live.store), h, len).unwrap_or(&[])
    }

    /// Runs a call; the output stays in the plug-in until the next call (see [`Plugin::output`]).
    pub fn raw_call(
        &mut self,
        function: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<()> {
        // A cancel aimed at an earlier call must stop neither this one nor the instantiation
        // that may precede it.
        if self.cancel.load(Ordering::Relaxed) {
            self.cancel.store(false, Ordering::SeqCst);
        }
        self.live()?;
        // Split borrows: no Arc clones on the hot path.
        let Plugin {
            compiled,
            live,
            cancel,
            ..
        } = self;
        let (shared, engine) = (&*compiled.inner.shared, &compiled.inner.engine);
        let live = live.as_mut().expect("made by live()");
        // Hosts usually call one function over and over: skip the hash lookup then. The
        // function is used by reference: cloning a TypedFunc bumps a reference count that
        // every instance of the engine shares, which threads calling at once fight over.
        if !matches!(&live.last, Some((name, _)) if &**name == function) {
            let f = match live.funcs.get(function) {
                Some(f) => f.clone(),
                None => {
                    let hidden = compiled
                        .inner
                        .fused
                        .as_ref()
                        .and_then(|f| f.start_export.as_deref());
                    let f = lookup(live, function, hidden)?;
                    live.funcs.insert(function.to_string(), f.clone());
                    f
                }
            };
            live.last = Some((function.into(), f));
        }
        let store = &mut live.store;
        store.data_mut().limiter.refused = None;
        if let Err(e) = state::begin_call(store, input) {
            return Err(match (e, store.data().limiter.refused) {
                (memory::AllocError::Budget, Some(r)) => out_of_memory(function, r, shared),
                _ => Error::Memory(format!(
                    "the input of `{function}` ({} bytes) is more than Extism memory can hold \
                     (4 GiB)",
                    input.len()
                )),
            });
        }
        {
            let d = store.data_mut();
            d.host_context = host_context;
            d.deadline = shared.timeout.map(|t| Instant::now() + t);
        }
        // A first call runs the start-up exports on what instantiation left of the
        // initialization fuel, and gets its own fuel after them.
        if live.initialized {
            set_call_fuel(store, shared)?;
        }
        store.set_epoch_deadline(1);
        // A cancel that came in since the start of this call advanced the epoch before the
        // deadline above was set: stop at the first check instead.
        if cancel.load(Ordering::SeqCst) {
            store.set_epoch_deadline(0);
        }
        // Only a deadline needs the ticker; a cancel advances the epoch itself.
        let _running = shared.timeout.is_some().then(|| engine.call_guard());

        let mut result = Ok(0);
        if !live.initialized {
            live.initialized = true;
            result = initialize(live);
            if result.is_ok() {
                set_call_fuel(&mut live.store, shared)?;
            }
        }
        let Live { store, last, .. } = &mut *live;
        if result.is_ok() {
            let (_, f) = last.as_ref().expect("set above");
            result = match f {
                Callable::I32(f) => f.call(&mut *store, ()),
                Callable::Unit(f) => f.call(&mut *store, ()).map(|()| 0),
            };
        }
        store.data_mut().host_context = None;
        if function == "_start" {
            live.spent = true;
        }
        let mut outcome = finish(live, function, result, shared);
        // The deadline is checked only while wasm runs, so a host call (a big alloc, a host
        // function) can carry the call past it unnoticed: a call that ends late is a timeout,
        // never a success, and its instance is replaced like after any timeout.
        if let Some(deadline) = live.store.data().deadline {
            if !matches!(
                outcome,
                Err(Error::Timeout { .. } | Error::Cancelled { .. })
            ) && Instant::now() >= deadline
            {
                live.spent = true;
                outcome = Err(Error::Timeout {
                    function: function.to_string(),
                    limit: shared.timeout.unwrap_or_default(),
                });
            }
        }
        if outcome.is_err() {
            let d = live.store.data_mut();
            d.output = (0, 0);
        }
        outcome
    }
}

impl Plugin {
    /// Fuel the last call used (Extism's `fuel_consumed`); `None` without a fuel limit.
    pub fn fuel_consumed(&self) -> Option<u64> {
        let limit = self.compiled.inner.shared.fuel?;
        let left = self.live.as_ref()?.store.get_fuel().ok()?;
        Some(limit.saturating_sub(left))
    }
}

/// The export `function`, unless it is `hidden` (a fused module's deferred start function,
/// which the host runs once at instantiation and never again).
fn lookup(live: &mut Live, function: &str, hidden: Option<&str>) -> Result<Callable> {
    let found = match hidden {
        Some(h) if h == function => None,
        _ => live.instance.get_func(&mut live.store, function),
    };
    let Some(func) = found else {
        let module = live.instance.module(&live.store).clone();
        // An export that is not a function (a global, a memory, a table) says what it is.
        if let Some(ty) = module
            .get_export(function)
            .filter(|_| hidden != Some(function))
        {
            return Err(Error::NotCallable {
                name: function.to_string(),
                signature: describe_type(&ty),
            });
        }
        return Err(Error::FunctionNotFound {
            name: function.to_string(),
            available: callable_exports(&module, hidden),
        });
    };
    let ty = func.ty(&live.store);
    match callable_type(&ty) {
        Some(true) => Ok(Callable::I32(
            func.typed(&live.store).expect("type checked"),
        )),
        Some(false) => Ok(Callable::Unit(
            func.typed(&live.store).expect("type checked"),
        )),
        None => Err(Error::NotCallable {
            name: function.to_string(),
            signature: format!("{ty}"),
        }),
    }
}

/// Refills the call's fuel, when the plug-in has a fuel limit.
fn set_call_fuel(store: &mut Store<StoreData>, shared: &Shared) -> Result<()> {
    if let Some(fuel) = shared.fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| Error::other(e.to_string()))?;
        store.data_mut().fuel_limit = fuel;
    }
    Ok(())
}

/// Runs the start-up exports once: `_initialize` (or `__wasm_call_ctors`), then `hs_init(0, 0)`.
fn initialize(live: &mut Live) -> wasmtime::Result<i32> {
    let store = &mut live.store;
    let inst = live.instance;
    if let Ok(f) = inst.get_typed_func::<(), ()>(&mut *store, "_initialize") {
        f.call(&mut *store, ())?;
    } else if let Ok(f) = inst.get_typed_func::<(), ()>(&mut *store, "__wasm_call_ctors") {
        f.call(&mut *store, ())?;
    }
    if let Ok(f) = inst.get_typed_func::<(i32, i32), ()>(&mut *store, "hs_init") {
        f.call(&mut *store, (0, 0))?;
    }
    Ok(0)
}

/// Turns what the export returned into the call's result.
fn finish(
    live: &mut Live,
    function: &str,
    result: wasmtime::Result<i32>,
    shared: &Shared,
) -> Result<()> {
    let name = || function.to_string();
    let guest_error = |live: &Live| -> Option<String> {
        let error = live.store.data().error;
        (error != 0).then(|| match state::block(&live.store, error) {
            Some(msg) => String::from_utf8_lossy(msg).into_owned(),
            // Said plainly, rather than an empty message that tells nobody anything.
            None => format!(
                "the plug-in reported an error, but its message handle {error} is not a block                  of Extism memory (a bug in the plug-in or its PDK)"
            ),
        })
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                // proc_exit ends the instance either way.
                live.spent = true;
                exit.0
            } else {
                live.spent = true;
                return Err(classify_failure(live.store.data(), function, e, shared));
            }
        }
    };
    if let Some(message) = guest_error(live) {
        return Err(Error::Guest {
            function: name(),
            code,
            message,
        });
    }
    if code != 0 {
        return Err(if live.spent {
            Error::Exit {
                function: name(),
                code,
            }
        } else {
            Error::Guest {
                function: name(),
                code,
                message: format!("`{function}` returned code {code} without an error message"),
            }
        });
    }
    let (h, len) = live.store.data().output;
    // Inside the allocated part of memory is inside memory: no need to look the memory up.
    let allocated = h >= memory::RESERVED
        && h.checked_add(len)
            .is_some_and(|end| end <= live.store.data().arena.used());
    if (h != 0 || len != 0)
        && !allocated
        && memory::range(state::bytes(&live.store), h, len).is_none()
    {
        return Err(Error::Memory(format!(
            "`{function}` set its output to {len} bytes at {h}, which is outside its memory"
        )));
    }
    Ok(())
}

fn classify_failure(
    data: &StoreData,
    function: &str,
    e: wasmtime::Error,
    shared: &Shared,
) -> Error {
    let function = function.to_string();
    if let Some(i) = e.downcast_ref::<Interrupt>() {
        return match i {
            Interrupt::Timeout => Error::Timeout {
                function,
                limit: shared.timeout.unwrap_or_default(),
            },
            Interrupt::Cancelled => Error::Cancelled { function },
        };
    }
    let trap = e.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::OutOfFuel) {
        return Error::OutOfFuel {
            function,
            limit: data.fuel_limit,
        };
    }
    // A refused growth is the cause only of what it leads to at once, and only while nothing
    // has grown since: a host function that could not place its data (`Error::Memory`), or the
    // guest's own reaction to `memory.grow` returning -1, which is an abort (`unreachable`) or
    // an access to the memory that did not grow. Any other failure is itself.
    let refused = data.limiter.refused;
    let budget = refused.filter(|r| r.is_budget());
    let e = match e.downcast::<Error>() {
        Ok(Error::Memory(message)) => {
            return match budget {
                Some(r) => out_of_memory(&function, r, shared),
                None => Error::Memory(message),
            }
        }
        Ok(err) => return err,
        Err(e) => e,
    };
    if let Some(r) = budget {
        if matches!(
            trap,
            Some(Trap::UnreachableCodeReached | Trap::MemoryOutOfBounds)
        ) {
            return out_of_memory(&function, r, shared);
        }
    }
    // A refusal that did not cause the failure may still explain it.
    let note = refused
        .map(|r| format!("\n(earlier in the call, the host refused {r})"))
        .unwrap_or_default();
    let message = match trap {
        Some(t) => {
            let backtrace = e
                .downcast_ref::<wasmtime::WasmBacktrace>()
                .map(|b| {
                    // Deep recursion gives thousands of frames; the top few say enough.
                    let text = b.to_string();
                    let mut lines: Vec<&str> = text.lines().take(11).collect();
                    if text.lines().count() > 11 {
                        lines.push("    ...");
                    }
                    format!("\n{}", lines.join("\n"))
                })
                .unwrap_or_default();
            format!("{t}{backtrace}{note}")
        }
        None => format!("{e:#}{note}"),
    };
    Error::Trap { function, message }
}

/// Where instantiation failures are reported as happening.
const INSTANTIATION: &str = "(instantiation)";

/// The error for a growth that the limit `refusal` refused.
fn out_of_memory(function: &str, refusal: Refusal, shared: &Shared) -> Error {
    let limit_pages = match refusal {
        Refusal::Instance => shared.instance_memory_max,
        _ => shared.max_pages,
    };
    Error::OutOfMemory {
        function: function.to_string(),
        limit_pages: limit_pages.unwrap_or(0),
    }
}

/// A random-looking v4 UUID, unique in the process: a counter run through a bijective mixer
/// keyed by one random draw per process. Ids tag log lines, they are not secrets, and a
/// system call for fresh randomness per instance was a noticeable part of making one.
fn new_id() -> String {
    use std::sync::atomic::AtomicU64;
    static KEY: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let key = *KEY.get_or_init(|| {
        u64::from_le_bytes(*uuid::Uuid::new_v4().as_bytes().first_chunk().unwrap())
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mix = |mut z: u64| {
        // splitmix64's finaliser: a bijection, so distinct counters give distinct ids.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let hi = mix(n ^ key);
    let lo = mix(n.wrapping_add(key.rotate_left(32)) ^ 0x9e37_79b9_7f4a_7c15);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_le_bytes());
    bytes[8..].copy_from_slice(&lo.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

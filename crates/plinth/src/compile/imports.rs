//! How the host satisfies a plug-in's imports: the check at load time and [`inspect`] for
//! tools, from one classification ([`ImportStatus`]).

use std::collections::{HashMap, HashSet};

use plinth_manifest::ResolvedModule;
use wasmtime::{ExternType, FuncType, Module, ValType};

use super::Source;
use crate::engine::EngineHandle;
use crate::host::Function;
use crate::{abi, Error, Result};

/// Whether a function type can be a plug-in's export: `() -> i32` (true) or `() -> ()` (false).
pub(crate) fn callable_type(ty: &FuncType) -> Option<bool> {
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

/// `(i64, i64) -> i64` for functions; the kind of anything else.
pub(crate) fn describe_type(ty: &ExternType) -> String {
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

pub(crate) fn callable_exports(module: &Module, hidden: Option<&str>) -> Vec<String> {
    module
        .exports()
        .filter(|e| Some(e.name()) != hidden)
        .filter_map(|e| match e.ty() {
            ExternType::Func(f) if callable_type(&f).is_some() => Some(e.name().to_string()),
            _ => None,
        })
        .collect()
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
    ty: &ExternType,
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
    if let Some(f) = abi::find(ns, name) {
        return abi_import(module_name, ns, f, ty);
    }
    if ns == abi::ENV || ns == abi::PLINTH_ENV {
        return ImportStatus::Missing(format!(
            "module `{module_name}` imports `{ns}::{name}`, which this version of Plinth does not provide; it may need a newer Plinth, or a host function registered under that name"
        ));
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

/// An import of an ABI function: provided, if its type is the ABI's.
fn abi_import(module_name: &str, ns: &str, f: &abi::AbiFunction, ty: &ExternType) -> ImportStatus {
    let wanted = |tys: &[abi::Ty]| -> Vec<ValType> {
        tys.iter()
            .map(|t| match t {
                abi::Ty::I32 => ValType::I32,
                abi::Ty::I64 => ValType::I64,
            })
            .collect()
    };
    let same = |a: &[ValType], b: &[ValType]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, y))
    };
    if let ExternType::Func(func) = ty {
        let (params, results): (Vec<ValType>, Vec<ValType>) =
            (func.params().collect(), func.results().collect());
        if same(&params, &wanted(f.params)) && same(&results, &wanted(f.results)) {
            return ImportStatus::Abi;
        }
    }
    let list = |tys: &[abi::Ty]| tys.iter().map(|t| t.wat()).collect::<Vec<_>>().join(", ");
    ImportStatus::Missing(format!(
        "module `{module_name}` imports `{ns}::{}` as {}, but the ABI's `{}` is ({}) -> ({}); \
         the plug-in was built against a different ABI",
        f.name,
        describe_type(ty),
        f.name,
        list(f.params),
        list(f.results)
    ))
}

pub(super) fn check_imports(
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
            &import.ty(),
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
    /// The module's name in the manifest.
    pub name: String,
    /// Exports that can be called as plug-in functions.
    pub functions: Vec<String>,
    /// Every import, with how it would be satisfied.
    pub imports: Vec<ImportReport>,
}

#[derive(Debug, Clone)]
/// One import of a module and how the host would satisfy it.
pub struct ImportReport {
    /// The namespace imported from.
    pub module: String,
    /// The import name.
    pub name: String,
    /// The import's type, as wasmtime prints it.
    pub ty: String,
    /// How the host satisfies it.
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
                    status: classify_import(
                        name,
                        i.module(),
                        i.name(),
                        &i.ty(),
                        &by_name,
                        &provided,
                        wasi,
                    ),
                })
                .collect(),
        })
        .collect())
}

//! Linking the manifest's modules to each other: the order they are instantiated in, and
//! late-bound trampolines for modules that import each other in a cycle.

use std::sync::{Arc, OnceLock};

use wasmtime::{ExternType, Linker, Module, Store};

use super::imports::describe_type;
use crate::store::StoreData;
use crate::{Error, Result};

/// Sorts non-main modules so that each comes after the modules it imports from. Modules that
/// import each other in a cycle cannot: one of them goes first, and its imports from the others
/// are bound late, through trampolines (see `late_bind`), which only functions allow.
pub(super) fn order_dependencies(
    mut pending: Vec<(String, Module)>,
) -> Result<Vec<(String, Module)>> {
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
pub(crate) struct LateImport {
    module: String,
    name: String,
    func: Arc<OnceLock<wasmtime::Func>>,
}

/// Defines in `linker` a trampoline for each import of `module` from a module in `later`
/// (instantiated after it: they import each other in a cycle, and `order_dependencies` made
/// sure that such imports are functions of the right type).
pub(crate) fn late_bind(
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
pub(crate) fn bind_late(
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

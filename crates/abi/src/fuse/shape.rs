//! `Shape`: what a first pass over a module finds (index spaces, hot imports, code size).

use wasmparser::{Parser, Payload, TypeRef};

use super::wasm_types;
use crate::{self as abi, AbiFunction, Fusion};

/// Counts of each index space and the hot imports, from a first pass over the module.
pub(super) struct Shape {
    pub(super) types: u32,
    /// Parameter and result types of each function type, to fuse only imports declared with
    /// the ABI's signature (others stay imports, and linking names them).
    pub(super) sigs: Vec<Option<(Vec<wasmparser::ValType>, Vec<wasmparser::ValType>)>>,
    pub(super) funcs: u32,
    pub(super) memories: u32,
    /// Whether memory 0 (the plug-in's own) exists and is 32-bit, as the bulk copies need.
    pub(super) memory0_is_32: bool,
    /// (function index, ABI function) of each fused import.
    pub(super) hot: Vec<(u32, &'static AbiFunction)>,
    /// Parameter count of each function the module defines, to place scratch locals after
    /// its own when fused bodies are spliced into it.
    pub(super) defined_params: Vec<u32>,
    /// Size of the code section in bytes: the splicing budget is relative to it.
    pub(super) code_bytes: u64,
    /// The module's own export names, so that the appended exports take names it does not use.
    pub(super) exports: std::collections::HashSet<String>,
    /// The start function, which the rewrite defers (see [`Fused::start_export`]).
    pub(super) start: Option<u32>,
    /// Globals, imported ones included.
    pub(super) globals: u32,
    /// The index of each mutable global the module defines: exported by the rewrite so that a
    /// live instance's state can move to the optimized tier (see [`Fused::global_exports`]).
    pub(super) mutable_globals: Vec<u32>,
}

impl Shape {
    /// Reads the module's shape; with `stop_at_code`, only what precedes the code section
    /// (all that [`fused_exports`] needs), which is quick even for a large module.
    pub(super) fn read(wasm: &[u8], stop_at_code: bool) -> Option<Shape> {
        let mut s = Shape {
            types: 0,
            sigs: Vec::new(),
            funcs: 0,
            memories: 0,
            memory0_is_32: false,
            hot: Vec::new(),
            defined_params: Vec::new(),
            code_bytes: 0,
            exports: Default::default(),
            start: None,
            globals: 0,
            mutable_globals: Vec::new(),
        };
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.ok()? {
                Payload::Version { encoding, .. } if encoding != wasmparser::Encoding::Module => {
                    return None;
                }
                Payload::TypeSection(r) => {
                    for group in r {
                        for sub in group.ok()?.types() {
                            s.sigs.push(match &sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => {
                                    Some((f.params().to_vec(), f.results().to_vec()))
                                }
                                _ => None,
                            });
                            s.types += 1;
                        }
                    }
                }
                Payload::ImportSection(r) => {
                    for imports in r {
                        for import in imports.ok()? {
                            let (_, import) = import.ok()?;
                            match import.ty {
                                TypeRef::Func(ty) | TypeRef::FuncExact(ty) => {
                                    if let Some(f) = abi::fused().find(|f| {
                                        f.namespace == import.module && f.name == import.name
                                    }) {
                                        let sig = s.sigs.get(ty as usize).cloned().flatten();
                                        if sig.as_ref().is_some_and(|(p, r)| {
                                            (p, r)
                                                == (&wasm_types(f.params), &wasm_types(f.results))
                                        }) {
                                            s.hot.push((s.funcs, f));
                                        }
                                    }
                                    s.funcs += 1;
                                }
                                TypeRef::Memory(m) => {
                                    if s.memories == 0 {
                                        s.memory0_is_32 = !m.memory64;
                                    }
                                    s.memories += 1
                                }
                                TypeRef::Global(_) => s.globals += 1,
                                _ => {}
                            }
                        }
                    }
                }
                Payload::FunctionSection(r) => {
                    s.funcs += r.count();
                    for ty in r {
                        let ty = ty.ok()?;
                        let params = s.sigs.get(ty as usize).cloned().flatten();
                        s.defined_params
                            .push(params.map_or(0, |(p, _)| p.len() as u32));
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        s.exports.insert(e.ok()?.name.to_string());
                    }
                }
                Payload::StartSection { func, .. } => s.start = Some(func),
                Payload::GlobalSection(r) => {
                    for g in r {
                        if g.ok()?.ty.mutable {
                            s.mutable_globals.push(s.globals);
                        }
                        s.globals += 1;
                    }
                }
                Payload::CodeSectionStart { size, .. } => {
                    s.code_bytes = size as u64;
                    if stop_at_code {
                        break;
                    }
                }
                Payload::MemorySection(r) => {
                    for m in r {
                        let m = m.ok()?;
                        if s.memories == 0 {
                            s.memory0_is_32 = !m.memory64;
                        }
                        s.memories += 1;
                    }
                }
                _ => {}
            }
        }
        // Without a 32-bit memory 0 the bulk copies stay host functions.
        if !s.memory0_is_32 {
            s.hot.retain(|(_, f)| f.fusion == Fusion::Memory);
        }
        Some(s)
    }
}

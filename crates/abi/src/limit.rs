//! Caps the memories a module defines at a page budget (`memory.max_pages`), so that the
//! engine itself refuses `memory.grow` past it (the plug-in sees -1, as wasm specifies).
//!
//! The native runtime bounds both of an instance's memories with wasmtime's `ResourceLimiter`;
//! a host without one (the web SDK) applies this rewrite before compiling instead.
//! [`limit_memory`] changes only the memory section; every other byte of the module is kept as
//! it is. Imported memories are left alone: their maximum is the importer's to set.
//!
//! The cap bounds each memory on its own. [`limit_memory_flagged`] also routes every
//! `memory.grow` on memory 0 through an appended function that records a refusal in an
//! exported global (the native limiter records it too, to report the trap that follows as out
//! of memory), and, for a fused module, keeps the sum of its two memories (the plug-in's
//! memory 0 and Extism memory, the memory the fuse rewrite appended last) within the budget,
//! as the native limiter does.

use std::borrow::Cow;
use std::fmt;

use wasm_encoder::reencode::{utils, Reencode};
use wasm_encoder::{
    CodeSection, ConstExpr, ExportKind, ExportSection, Function, FunctionSection, GlobalSection,
    GlobalType, Instruction, MemorySection, MemoryType, SectionId, TypeSection, ValType,
};
use wasmparser::{BinaryReader, MemorySectionReader, Operator, Parser, Payload};

use crate::sections::{reencode_appending, Appends};

/// The memory section's id in the binary format.
const MEMORY_SECTION: u8 = 5;
/// wasm's default page size: `max_pages` counts pages of this many bytes.
const PAGE_SIZE_LOG2: u32 = 16;

/// Why [`limit_memory`] refused a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    /// A memory's declared minimum is already over the budget: the module cannot run within it.
    OverBudget {
        /// The memory's index (imported memories come first).
        memory: u32,
        /// Its declared minimum, in 64 KiB pages.
        minimum_pages: u64,
        /// The budget.
        max_pages: u64,
    },
    /// The bytes are not a module whose sections can be read.
    Invalid(String),
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::OverBudget {
                memory,
                minimum_pages,
                max_pages,
            } => write!(
                f,
                "the plug-in's memory {memory} declares a minimum of {minimum_pages} pages, more \
                 than memory.max_pages = {max_pages}; raise `memory.max_pages` in the manifest"
            ),
            LimitError::Invalid(message) => {
                write!(f, "not a valid WebAssembly module: {message}")
            }
        }
    }
}

impl std::error::Error for LimitError {}

/// `wasm` with the maximum of every memory it defines lowered to `max_pages` 64 KiB pages (a
/// lower declared maximum is kept); borrowed when no maximum changes. A memory with a custom
/// page size gets the same number of bytes.
pub fn limit_memory(wasm: &[u8], max_pages: u64) -> Result<Cow<'_, [u8]>, LimitError> {
    let invalid = |e: wasmparser::BinaryReaderError| LimitError::Invalid(e.to_string());
    let header = wasm
        .get(..8)
        .ok_or_else(|| LimitError::Invalid("shorter than the 8-byte header".into()))?;
    let mut reader = BinaryReader::new(&wasm[8..], 8);
    let mut imported = 0u32;
    let mut out: Option<Vec<u8>> = None;
    let mut copied_to = 0usize;
    while !reader.eof() {
        let from = reader.original_position();
        let id = reader.read_u8().map_err(invalid)?;
        let size = reader.read_var_u32().map_err(invalid)? as usize;
        let body_at = reader.original_position();
        let body = reader.read_bytes(size).map_err(invalid)?;
        match id {
            2 => imported = imported_memories(body, body_at).map_err(invalid)?,
            MEMORY_SECTION => {
                let memories =
                    MemorySectionReader::new(BinaryReader::new(body, body_at)).map_err(invalid)?;
                let mut section = MemorySection::new();
                let mut changed = false;
                for (i, memory) in memories.into_iter().enumerate() {
                    let memory = memory.map_err(invalid)?;
                    let log2 = memory.page_size_log2.unwrap_or(PAGE_SIZE_LOG2);
                    // In the memory's own pages; pages larger than 64 KiB round the cap down.
                    let cap = if log2 <= PAGE_SIZE_LOG2 {
                        max_pages.saturating_mul(1 << (PAGE_SIZE_LOG2 - log2))
                    } else {
                        max_pages >> (log2 - PAGE_SIZE_LOG2)
                    };
                    if memory.initial > cap {
                        return Err(LimitError::OverBudget {
                            memory: imported + i as u32,
                            minimum_pages: in_default_pages(memory.initial, log2),
                            max_pages,
                        });
                    }
                    let maximum = Some(memory.maximum.map_or(cap, |m| m.min(cap)));
                    changed |= maximum != memory.maximum;
                    section.memory(MemoryType {
                        minimum: memory.initial,
                        maximum,
                        memory64: memory.memory64,
                        shared: memory.shared,
                        page_size_log2: memory.page_size_log2,
                    });
                }
                if changed {
                    let out = out.get_or_insert_with(|| header.to_vec());
                    out.extend_from_slice(&wasm[copied_to.max(8)..from]);
                    // A section's encoding is its size and contents; the id goes first.
                    out.push(MEMORY_SECTION);
                    wasm_encoder::Encode::encode(&section, out);
                    copied_to = body_at + size;
                }
            }
            _ => {}
        }
    }
    Ok(match out {
        Some(mut out) => {
            out.extend_from_slice(&wasm[copied_to..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(wasm),
    })
}

/// The export under which [`limit_memory_flagged`] exposes its refusal flag: a mutable `i32`
/// global, 1 while the last `memory.grow` on memory 0 was refused, 0 otherwise. Names starting
/// `__plinth_` are Plinth's; a module that already exports this one is not flagged.
pub const GROW_REFUSED_EXPORT: &str = "__plinth_grow_refused";

/// The export under which [`limit_memory_flagged`] takes, in a module that is not fused, the
/// pages of Extism memory (a memory the host made, which the module cannot see): a mutable
/// `i32` global that the host keeps equal to them, so that the plug-in's own growth counts
/// them against the budget as a fused module's does.
pub const EXTISM_PAGES_EXPORT: &str = "__plinth_extism_pages";

/// [`limit_memory`], and every `memory.grow` on memory 0 (a plain 32-bit memory of 64 KiB
/// pages, defined or imported) becomes a call to an appended function that grows it and
/// sets an appended global, exported as [`GROW_REFUSED_EXPORT`], to whether the growth was
/// refused. A host without a resource limiter reads it after a trap, to report the trap as
/// out of memory when a refused growth led to it, as the native runtime does.
///
/// The function also keeps memory 0 and Extism memory within the budget together, as the
/// native limiter does: it gives -1 when memory 0's pages, Extism memory's and the request
/// pass `max_pages`. With `fused` (the module is the fuse rewrite's output, whose last memory
/// is Extism memory) it reads Extism memory's size itself; a fused module whose memories are
/// not all plain grows against the cap alone. Without `fused` it reads them from a global
/// exported as [`EXTISM_PAGES_EXPORT`], which the host keeps current (0 until it does).
///
/// A module with no such `memory.grow` gets the cap alone.
pub fn limit_memory_flagged(
    wasm: &[u8],
    max_pages: u64,
    fused: bool,
) -> Result<Cow<'_, [u8]>, LimitError> {
    let capped = limit_memory(wasm, max_pages)?;
    let Some(shape) = GrowShape::read(&capped, fused) else {
        return Ok(capped);
    };
    let mut flagger = Flagger {
        shape,
        max_pages,
        emitted: Vec::new(),
    };
    let mut module = wasm_encoder::Module::new();
    // The module was validated before (and re-read above), so re-encoding it does not fail;
    // if it did, the cap alone still bounds the memory.
    if flagger
        .parse_core_module(&mut module, Parser::new(0), &capped)
        .is_err()
    {
        return Ok(capped);
    }
    Ok(Cow::Owned(module.finish()))
}

/// What [`limit_memory_flagged`] needs to know before re-encoding.
struct GrowShape {
    /// Types defined, so the appended `(i32) -> i32` is the next.
    types: u32,
    /// Functions imported and defined, so the appended one is the next.
    funcs: u32,
    /// Globals imported and defined, so the appended flag is the next.
    globals: u32,
    /// Where Extism memory's pages come from, when the budget is shared with it.
    extism: Option<ExtismPages>,
}

/// How the grow function learns Extism memory's size.
#[derive(Clone, Copy)]
enum ExtismPages {
    /// The fused module's memory of that index (the last one).
    Memory(u32),
    /// The appended global after the flag, which the host sets.
    Global,
}

impl GrowShape {
    /// None when there is nothing to rewrite: memory 0 is missing or not plain, no function
    /// grows it, or the flag's export name is taken.
    fn read(wasm: &[u8], fused: bool) -> Option<GrowShape> {
        let (mut types, mut funcs, mut globals) = (0u32, 0u32, 0u32);
        let mut memories = Vec::new();
        let mut grows = false;
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.ok()? {
                Payload::TypeSection(r) => {
                    for group in r {
                        types += group.ok()?.types().len() as u32;
                    }
                }
                Payload::ImportSection(r) => {
                    for import in r.into_imports_with_offsets() {
                        match import.ok()?.1.ty {
                            wasmparser::TypeRef::Func(_) | wasmparser::TypeRef::FuncExact(_) => {
                                funcs += 1
                            }
                            wasmparser::TypeRef::Memory(m) => memories.push(m),
                            wasmparser::TypeRef::Global(_) => globals += 1,
                            _ => {}
                        }
                    }
                }
                Payload::FunctionSection(r) => funcs += r.count(),
                Payload::MemorySection(r) => {
                    for m in r {
                        memories.push(m.ok()?);
                    }
                }
                Payload::GlobalSection(r) => globals += r.count(),
                Payload::ExportSection(r) => {
                    for export in r {
                        let name = export.ok()?.name;
                        if name == GROW_REFUSED_EXPORT || name == EXTISM_PAGES_EXPORT {
                            return None;
                        }
                    }
                }
                Payload::CodeSectionEntry(body) if !grows => {
                    for op in body.get_operators_reader().ok()? {
                        if matches!(op.ok()?, Operator::MemoryGrow { mem: 0 }) {
                            grows = true;
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        let plain = |m: &wasmparser::MemoryType| {
            !m.memory64 && m.page_size_log2.unwrap_or(PAGE_SIZE_LOG2) == PAGE_SIZE_LOG2
        };
        if !grows || !memories.first().is_some_and(plain) {
            return None;
        }
        let extism = if !fused {
            Some(ExtismPages::Global)
        } else if memories.len() >= 2 && memories.iter().all(plain) {
            Some(ExtismPages::Memory(memories.len() as u32 - 1))
        } else {
            None
        };
        Some(GrowShape {
            types,
            funcs,
            globals,
            extism,
        })
    }
}

/// The re-encoding pass of [`limit_memory_flagged`].
struct Flagger {
    shape: GrowShape,
    max_pages: u64,
    /// The sections that already carry the appended items.
    emitted: Vec<SectionId>,
}

impl Flagger {
    /// `(param $delta i32) (result i32)`: grows memory 0 by `$delta` pages (-1 when refused,
    /// and, with a shared budget, when memory 0's pages, Extism memory's and `$delta` pass
    /// it), and sets the flag to whether the result is -1.
    fn grow_function(&self) -> Function {
        use Instruction as I;
        let mut f = Function::new([(1, ValType::I32)]);
        let mut body = Vec::new();
        let extism_pages = match self.shape.extism {
            Some(ExtismPages::Memory(extism)) => Some(I::MemorySize(extism)),
            Some(ExtismPages::Global) => Some(I::GlobalGet(self.shape.globals + 1)),
            None => None,
        };
        match extism_pages {
            Some(extism_pages) => body.extend([
                I::LocalGet(0),
                I::I64ExtendI32U,
                I::MemorySize(0),
                I::I64ExtendI32U,
                I::I64Add,
                extism_pages,
                I::I64ExtendI32U,
                I::I64Add,
                I::I64Const(self.max_pages as i64),
                I::I64GtU,
                I::If(wasm_encoder::BlockType::Result(ValType::I32)),
                I::I32Const(-1),
                I::Else,
                I::LocalGet(0),
                I::MemoryGrow(0),
                I::End,
            ]),
            None => body.extend([I::LocalGet(0), I::MemoryGrow(0)]),
        }
        body.extend([
            I::LocalTee(1),
            I::I32Const(-1),
            I::I32Eq,
            I::GlobalSet(self.shape.globals),
            I::LocalGet(1),
            I::End,
        ]);
        for i in &body {
            f.instruction(i);
        }
        f
    }
}

type ReencodeResult<T> =
    std::result::Result<T, wasm_encoder::reencode::Error<std::convert::Infallible>>;

impl Appends for Flagger {
    const SECTIONS: &'static [SectionId] = &[
        SectionId::Type,
        SectionId::Function,
        SectionId::Global,
        SectionId::Export,
        SectionId::Code,
    ];

    fn written(&mut self) -> &mut Vec<SectionId> {
        &mut self.emitted
    }

    fn add_types(&self, types: &mut TypeSection) {
        types.ty().function([ValType::I32], [ValType::I32]);
    }

    fn add_functions(&self, funcs: &mut FunctionSection) {
        funcs.function(self.shape.types);
    }

    fn add_globals(&self, globals: &mut GlobalSection) {
        let count = if matches!(self.shape.extism, Some(ExtismPages::Global)) {
            2
        } else {
            1
        };
        for _ in 0..count {
            globals.global(
                GlobalType {
                    val_type: ValType::I32,
                    mutable: true,
                    shared: false,
                },
                &ConstExpr::i32_const(0),
            );
        }
    }

    fn add_exports(&self, exports: &mut ExportSection) {
        exports.export(GROW_REFUSED_EXPORT, ExportKind::Global, self.shape.globals);
        if matches!(self.shape.extism, Some(ExtismPages::Global)) {
            exports.export(
                EXTISM_PAGES_EXPORT,
                ExportKind::Global,
                self.shape.globals + 1,
            );
        }
    }

    fn add_code(&self, code: &mut CodeSection) {
        code.function(&self.grow_function());
    }
}

impl Reencode for Flagger {
    type Error = std::convert::Infallible;

    fn instruction<'a>(&mut self, op: Operator<'a>) -> ReencodeResult<Instruction<'a>> {
        Ok(match op {
            Operator::MemoryGrow { mem: 0 } => Instruction::Call(self.shape.funcs),
            op => utils::instruction(self, op)?,
        })
    }

    reencode_appending!();
}

/// How many memories the import section (`body`, at `offset` in the module) imports.
fn imported_memories(body: &[u8], offset: usize) -> wasmparser::Result<u32> {
    let mut n = 0;
    let imports = wasmparser::ImportSectionReader::new(BinaryReader::new(body, offset))?;
    for import in imports.into_imports_with_offsets() {
        n += u32::from(matches!(import?.1.ty, wasmparser::TypeRef::Memory(_)));
    }
    Ok(n)
}

/// `pages` of `2^log2` bytes, in 64 KiB pages (rounded up).
fn in_default_pages(pages: u64, log2: u32) -> u64 {
    if log2 >= PAGE_SIZE_LOG2 {
        pages.saturating_mul(1 << (log2 - PAGE_SIZE_LOG2))
    } else {
        pages.div_ceil(1 << (PAGE_SIZE_LOG2 - log2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::bodies;

    fn memories(wasm: &[u8]) -> Vec<(u64, Option<u64>)> {
        let mut out = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            match payload.unwrap() {
                wasmparser::Payload::ImportSection(r) => {
                    for import in r.into_imports_with_offsets() {
                        if let wasmparser::TypeRef::Memory(m) = import.unwrap().1.ty {
                            out.push((m.initial, m.maximum));
                        }
                    }
                }
                wasmparser::Payload::MemorySection(r) => {
                    for m in r {
                        let m = m.unwrap();
                        out.push((m.initial, m.maximum));
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn defined_memories_are_capped_and_the_rest_is_kept() {
        let wasm = wat::parse_str(
            r#"(module
                (import "env" "m" (memory 1))
                (memory 2)
                (memory 1 3)
                (memory 1 100)
                (data (memory 1) (i32.const 0) "hi")
                (func (export "grow") (result i32) (memory.grow (i32.const 1))))"#,
        )
        .unwrap();
        let limited = limit_memory(&wasm, 10).unwrap();
        wasmparser::Validator::new()
            .validate_all(&limited)
            .expect("still valid");
        assert_eq!(
            memories(&limited),
            [(1, None), (2, Some(10)), (1, Some(3)), (1, Some(10))],
            "the import is left alone; a lower maximum is kept"
        );
        // Everything but the memory section is byte for byte the same.
        let sections = |w: &[u8]| -> Vec<Vec<u8>> {
            wasmparser::Parser::new(0)
                .parse_all(w)
                .filter_map(|p| p.unwrap().as_section())
                .filter(|(id, _)| *id != MEMORY_SECTION)
                .map(|(_, range)| w[range].to_vec())
                .collect()
        };
        assert_eq!(sections(&limited), sections(&wasm));
    }

    #[test]
    fn nothing_changes_when_every_maximum_fits() {
        let wasm = wat::parse_str("(module (memory 1 2) (func))").unwrap();
        assert!(matches!(limit_memory(&wasm, 2).unwrap(), Cow::Borrowed(_)));
        let none = wat::parse_str("(module (func))").unwrap();
        assert!(matches!(limit_memory(&none, 0).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn a_minimum_over_the_budget_is_refused_by_number() {
        let wasm = wat::parse_str(r#"(module (import "env" "m" (memory 1)) (memory 20))"#).unwrap();
        let err = limit_memory(&wasm, 4).unwrap_err();
        assert_eq!(
            err,
            LimitError::OverBudget {
                memory: 1,
                minimum_pages: 20,
                max_pages: 4
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("20 pages") && message.contains("max_pages = 4"),
            "{message}"
        );
        assert!(limit_memory(&wasm, 20).is_ok());
    }

    /// The flag's export: the index of a mutable i32 global that starts at 0.
    fn flag_global(wasm: &[u8]) -> u32 {
        exported_global(wasm, GROW_REFUSED_EXPORT).expect("the flag is exported")
    }

    /// The index of the mutable i32 global, starting at 0, exported as `name`.
    fn exported_global(wasm: &[u8], name: &str) -> Option<u32> {
        let (mut imported, mut defined, mut exported) = (0u32, Vec::new(), None);
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            match payload.unwrap() {
                wasmparser::Payload::ImportSection(r) => {
                    for import in r.into_imports_with_offsets() {
                        let ty = import.unwrap().1.ty;
                        imported += u32::from(matches!(ty, wasmparser::TypeRef::Global(_)));
                    }
                }
                wasmparser::Payload::GlobalSection(r) => {
                    for g in r {
                        let g = g.unwrap();
                        let init: Vec<_> = g.init_expr.get_operators_reader().into_iter().collect();
                        defined.push((g.ty, format!("{:?}", init[0].as_ref().unwrap())));
                    }
                }
                wasmparser::Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.unwrap();
                        if e.name == name {
                            assert_eq!(e.kind, wasmparser::ExternalKind::Global);
                            exported = Some(e.index);
                        }
                    }
                }
                _ => {}
            }
        }
        let index = exported?;
        let (ty, init) = &defined[(index - imported) as usize];
        assert!(ty.mutable && ty.content_type == wasmparser::ValType::I32);
        assert_eq!(init, "I32Const { value: 0 }");
        Some(index)
    }

    /// Checks that `wasm` flagged is valid, exports the flag, and that no function but the
    /// appended one grows memory 0, which the others call instead: the appended function's body.
    fn check_flagged(flagged: &[u8], original_grows: usize) -> Vec<String> {
        wasmparser::Validator::new()
            .validate_all(flagged)
            .expect("still valid");
        let flag = flag_global(flagged);
        let mut bodies = bodies(flagged);
        let appended = bodies.pop().unwrap();
        let grows_0 = |ops: &[String]| {
            ops.iter()
                .filter(|op| op.as_str() == "MemoryGrow { mem: 0 }")
                .count()
        };
        assert_eq!(grows_0(&appended), 1, "{appended:?}");
        assert!(appended.contains(&format!("GlobalSet {{ global_index: {flag} }}")));
        let calls: usize = bodies
            .iter()
            .map(|ops| {
                assert_eq!(grows_0(ops), 0, "{ops:?}");
                ops.iter()
                    .filter(|op| op.starts_with("Call { function_index"))
                    .count()
            })
            .sum();
        assert_eq!(calls, original_grows, "each grow became a call");
        appended
    }

    #[test]
    fn shared_grow_keeps_both_memories_within_the_budget() {
        // As the fuse rewrite leaves a module: Extism memory last, exported.
        let wasm = wat::parse_str(
            r#"(module
                (memory (export "memory") 1)
                (memory (export "extism") 1)
                (global $g (mut i32) (i32.const 7))
                (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
                (func (export "grow_extism") (param i32) (result i32)
                    (memory.grow 1 (local.get 0))))"#,
        )
        .unwrap();
        let shared = limit_memory_flagged(&wasm, 6, true).unwrap();
        assert_eq!(memories(&shared), [(1, Some(6)), (1, Some(6))]);
        let appended = check_flagged(&shared, 1);
        assert!(
            appended.contains(&"MemorySize { mem: 1 }".to_string()),
            "counts Extism memory: {appended:?}"
        );
        let grows_1 = bodies(&shared)
            .concat()
            .into_iter()
            .filter(|op| op == "MemoryGrow { mem: 1 }")
            .count();
        assert_eq!(grows_1, 1, "Extism memory's own grow is kept");
        assert_eq!(exported_global(&shared, EXTISM_PAGES_EXPORT), None);
        // Unfused, Extism memory is the host's: its pages come from a global the host sets.
        let unfused = limit_memory_flagged(&wasm, 6, false).unwrap();
        let appended = check_flagged(&unfused, 1);
        let pages = exported_global(&unfused, EXTISM_PAGES_EXPORT).expect("the pages global");
        assert_eq!(pages, flag_global(&unfused) + 1);
        assert!(
            appended.contains(&format!("GlobalGet {{ global_index: {pages} }}"))
                && appended.contains(&"MemorySize { mem: 0 }".to_string()),
            "counts memory 0 and the host's pages: {appended:?}"
        );
        assert!(!appended.contains(&"MemorySize { mem: 1 }".to_string()));
        assert!(limit_memory_flagged(&wasm, 0, true).is_err());
    }

    #[test]
    fn a_single_memory_gets_the_flag_and_missing_sections_are_added_in_order() {
        // No global or export section; a custom section in the middle.
        let wasm = wat::parse_str(
            r#"(module
                (type (func (result i32)))
                (import "env" "f" (func))
                (memory 1)
                (@custom "note" (after func) "x")
                (func (type 0) (drop (memory.grow (i32.const 1))) (memory.grow (i32.const 2)))
                (data (i32.const 0) "hi"))"#,
        )
        .unwrap();
        for fused in [false, true] {
            let flagged = limit_memory_flagged(&wasm, 4, fused).unwrap();
            assert_eq!(memories(&flagged), [(1, Some(4))]);
            let appended = check_flagged(&flagged, 2);
            // Fused with one memory there is no Extism memory to count; unfused, the host's.
            assert_eq!(
                appended.iter().any(|op| op.starts_with("MemorySize")),
                !fused
            );
            assert_eq!(
                exported_global(&flagged, EXTISM_PAGES_EXPORT).is_some(),
                !fused
            );
            let custom = wasmparser::Parser::new(0)
                .parse_all(&flagged)
                .any(|p| matches!(p.unwrap(), wasmparser::Payload::CustomSection(c) if c.name() == "note"));
            assert!(custom, "the custom section is kept");
        }
        // An imported memory 0 is left uncapped but its grows are flagged; the global follows
        // the imported one.
        let imported = wat::parse_str(
            r#"(module
                (import "env" "memory" (memory 1))
                (import "env" "g" (global i32))
                (global (mut i32) (i32.const 5))
                (export "x" (global 1))
                (func (export "grow") (result i32) (memory.grow (i32.const 1))))"#,
        )
        .unwrap();
        let flagged = limit_memory_flagged(&imported, 4, false).unwrap();
        assert_eq!(memories(&flagged), [(1, None)]);
        check_flagged(&flagged, 1);
        assert_eq!(flag_global(&flagged), 2);
    }

    #[test]
    fn without_a_plain_memory_0_grow_the_cap_alone() {
        for wat in [
            // No grow at all.
            "(module (memory 1) (func (drop (memory.size))))",
            // Only another memory grows.
            "(module (memory 1) (memory 1) (func (drop (memory.grow 1 (i32.const 1)))))",
            // A 64-bit memory 0.
            "(module (memory i64 1) (func (drop (memory.grow (i64.const 1)))))",
            // The flag's name is the plug-in's own.
            r#"(module (memory 1) (global (export "__plinth_grow_refused") i32 (i32.const 0))
                (func (drop (memory.grow (i32.const 1)))))"#,
        ] {
            let wasm = wat::parse_str(wat).unwrap();
            assert_eq!(
                limit_memory_flagged(&wasm, 6, true).unwrap(),
                limit_memory(&wasm, 6).unwrap(),
                "{wat}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"\0asm", b"\0asm\x01\0\0\0\x05\x10\x01"] {
            assert!(matches!(limit_memory(bad, 1), Err(LimitError::Invalid(_))));
        }
    }
}

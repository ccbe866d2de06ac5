//! Caps the memories a module defines at a page budget (`memory.max_pages`), so that the
//! engine itself refuses `memory.grow` past it (the plug-in sees -1, as wasm specifies).
//!
//! The native runtime bounds both of an instance's memories with wasmtime's `ResourceLimiter`;
//! a host without one (the web SDK) applies this rewrite before compiling instead. Only the
//! memory section changes; every other byte of the module is kept as it is. Imported memories
//! are left alone: their maximum is the importer's to set.
//!
//! The cap bounds each memory on its own. [`limit_memory_shared`] also keeps the sum of a fused
//! module's two memories (the plug-in's memory 0 and Extism memory, the memory the fuse
//! rewrite appended last) within the budget, as the native limiter does: every `memory.grow`
//! on memory 0 becomes a call to an appended function that grows only when both memories'
//! pages plus the request fit, and gives -1 otherwise.

use std::borrow::Cow;
use std::fmt;

use wasm_encoder::reencode::{utils, Reencode};
use wasm_encoder::{
    CodeSection, Function, FunctionSection, Instruction, MemorySection, MemoryType, SectionId,
    TypeSection, ValType,
};
use wasmparser::{BinaryReader, MemorySectionReader, Operator, Parser, Payload};

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

/// [`limit_memory`] for a module the fuse rewrite made (its last memory is Extism memory), with
/// the plug-in's memory 0 and Extism memory sharing the budget: `memory.grow` on memory 0 gives
/// -1 when the two memories' pages plus the request would pass `max_pages`. A module whose
/// memory 0 is not a plain 32-bit memory of 64 KiB pages, or that has a single memory, gets
/// the cap alone.
pub fn limit_memory_shared(wasm: &[u8], max_pages: u64) -> Result<Cow<'_, [u8]>, LimitError> {
    let capped = limit_memory(wasm, max_pages)?;
    let Some(shape) = GrowShape::read(&capped) else {
        return Ok(capped);
    };
    let mut sharer = Sharer {
        shape,
        max_pages,
        appended: Vec::new(),
    };
    let mut module = wasm_encoder::Module::new();
    let parsed = sharer.parse_core_module(&mut module, Parser::new(0), &capped);
    // A module lacking one of the sections the function goes into keeps the cap alone (a fused
    // module has them all).
    if parsed.is_err() || sharer.appended.len() != 3 {
        return Ok(capped);
    }
    Ok(Cow::Owned(module.finish()))
}

/// What [`limit_memory_shared`] needs to know before re-encoding.
struct GrowShape {
    /// Types defined, so the appended `(i32) -> i32` is the next.
    types: u32,
    /// Functions imported and defined, so the appended one is the next.
    funcs: u32,
    /// Extism memory's index: the last memory.
    extism: u32,
}

impl GrowShape {
    fn read(wasm: &[u8]) -> Option<GrowShape> {
        let (mut types, mut funcs, mut memories) = (0u32, 0u32, Vec::new());
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
                _ => {}
            }
        }
        let plain = |m: &wasmparser::MemoryType| {
            !m.memory64 && m.page_size_log2.unwrap_or(PAGE_SIZE_LOG2) == PAGE_SIZE_LOG2
        };
        if memories.len() < 2 || !memories.iter().all(plain) {
            return None;
        }
        Some(GrowShape {
            types,
            funcs,
            extism: memories.len() as u32 - 1,
        })
    }
}

/// The re-encoding pass of [`limit_memory_shared`].
struct Sharer {
    shape: GrowShape,
    max_pages: u64,
    /// The sections the grow function went into.
    appended: Vec<SectionId>,
}

impl Sharer {
    /// `(param $delta i32) (result i32)`: grows memory 0 by `$delta` pages when memory 0's
    /// pages, Extism memory's and `$delta` are within the budget, else -1 (as a refused grow).
    fn grow_function(&self) -> Function {
        use Instruction as I;
        let mut f = Function::new([]);
        for i in [
            I::LocalGet(0),
            I::I64ExtendI32U,
            I::MemorySize(0),
            I::I64ExtendI32U,
            I::I64Add,
            I::MemorySize(self.shape.extism),
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
            I::End,
        ] {
            f.instruction(&i);
        }
        f
    }
}

type ReencodeResult<T> =
    std::result::Result<T, wasm_encoder::reencode::Error<std::convert::Infallible>>;

impl Reencode for Sharer {
    type Error = std::convert::Infallible;

    fn instruction<'a>(&mut self, op: Operator<'a>) -> ReencodeResult<Instruction<'a>> {
        Ok(match op {
            Operator::MemoryGrow { mem: 0 } => Instruction::Call(self.shape.funcs),
            op => utils::instruction(self, op)?,
        })
    }

    fn parse_type_section(
        &mut self,
        types: &mut TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> ReencodeResult<()> {
        utils::parse_type_section(self, types, section)?;
        types.ty().function([ValType::I32], [ValType::I32]);
        self.appended.push(SectionId::Type);
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        funcs: &mut FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> ReencodeResult<()> {
        utils::parse_function_section(self, funcs, section)?;
        funcs.function(self.shape.types);
        self.appended.push(SectionId::Function);
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> ReencodeResult<()> {
        utils::parse_code_section(self, code, section)?;
        code.function(&self.grow_function());
        self.appended.push(SectionId::Code);
        Ok(())
    }
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

    #[test]
    fn shared_grow_keeps_both_memories_within_the_budget() {
        // As the fuse rewrite leaves a module: Extism memory last, exported.
        let wasm = wat::parse_str(
            r#"(module
                (memory (export "memory") 1)
                (memory (export "extism") 1)
                (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
                (func (export "grow_extism") (param i32) (result i32)
                    (memory.grow 1 (local.get 0))))"#,
        )
        .unwrap();
        let shared = limit_memory_shared(&wasm, 6).unwrap();
        wasmparser::Validator::new()
            .validate_all(&shared)
            .expect("still valid");
        assert_eq!(memories(&shared), [(1, Some(6)), (1, Some(6))]);
        let text = operators(&shared);
        assert_eq!(
            text.iter()
                .filter(|op| op.starts_with("MemoryGrow"))
                .count(),
            2,
            "the extism grow and the appended function's: {text:?}"
        );
        // A single memory, or none: the cap alone.
        let one = wat::parse_str("(module (memory 1) (func (drop (memory.grow (i32.const 1)))))")
            .unwrap();
        assert_eq!(
            limit_memory_shared(&one, 6).unwrap(),
            limit_memory(&one, 6).unwrap()
        );
        assert!(limit_memory_shared(&wasm, 0).is_err());
    }

    /// Every operator of every body, by its Debug name.
    fn operators(wasm: &[u8]) -> Vec<String> {
        let mut ops = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
                for op in body.get_operators_reader().unwrap() {
                    ops.push(format!("{:?}", op.unwrap()));
                }
            }
        }
        ops
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"\0asm", b"\0asm\x01\0\0\0\x05\x10\x01"] {
            assert!(matches!(limit_memory(bad, 1), Err(LimitError::Invalid(_))));
        }
    }
}

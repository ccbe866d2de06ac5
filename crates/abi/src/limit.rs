//! Caps the memories a module defines at a page budget (`memory.max_pages`), so that the
//! engine itself refuses `memory.grow` past it (the plug-in sees -1, as wasm specifies).
//!
//! The native runtime bounds both of an instance's memories with wasmtime's `ResourceLimiter`;
//! a host without one (the web SDK) applies this rewrite before compiling instead. Only the
//! memory section changes; every other byte of the module is kept as it is. Imported memories
//! are left alone: their maximum is the importer's to set.

use std::borrow::Cow;
use std::fmt;

use wasm_encoder::{MemorySection, MemoryType};
use wasmparser::{BinaryReader, MemorySectionReader};

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
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"\0asm", b"\0asm\x01\0\0\0\x05\x10\x01"] {
            assert!(matches!(limit_memory(bad, 1), Err(LimitError::Invalid(_))));
        }
    }
}

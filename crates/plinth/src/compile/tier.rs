//! Tiered compiling (`PluginBuilder::with_tiering`): a plug-in runs at once on code from Winch,
//! wasmtime's baseline compiler, while Cranelift compiles it on a thread of its own; new
//! instances take the optimized code as soon as it is there, and live instances move to it at
//! their next call when their state can be carried over.
//!
//! - [`Tier`]: which code a plug-in or instance runs.
//! - `Upgrade` (internal): the optimized build, filled in by the background compile.
//! - [`state_can_move`]: whether a module's instance state is all in places the host can copy
//!   (memories, globals), decided from its code once at load.

use std::sync::{Arc, OnceLock};

use wasmparser::{Operator, Parser, Payload, TypeRef};

use super::Compiled;

/// Which compiler's code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Winch's code: compiled several times faster, runs slower. The first tier of a plug-in
    /// loaded with `PluginBuilder::with_tiering`, until Cranelift's code is ready.
    Baseline,
    /// Cranelift's optimized code.
    Optimized,
}

/// The optimized build of a plug-in loaded on the baseline tier.
#[derive(Default)]
pub(crate) struct Upgrade {
    /// Set once the background compile ends: `None` when it failed (the plug-in stays on the
    /// baseline tier, which works).
    pub ready: OnceLock<Option<Arc<Compiled>>>,
}

impl Compiled {
    /// The optimized build, once it is ready, for a plug-in loaded on the baseline tier.
    pub(crate) fn upgraded(&self) -> Option<&Arc<Compiled>> {
        self.upgrade.as_ref()?.ready.get()?.as_ref()
    }

    /// Which code instances of this build run.
    pub(crate) fn tier(&self) -> Tier {
        if self.engine.is_baseline() {
            Tier::Baseline
        } else {
            Tier::Optimized
        }
    }
}

/// Whether an instance's whole state can be copied to a new instance of the same module: its
/// memories (all defined here, none imported) and mutable globals (which the fusing rewrite
/// exports), with nothing the host cannot see. Refused: a start function (it would run again),
/// tables the code or the host can change (their contents are not copied), passive data
/// segments used at run time (`memory.init`, `data.drop`), and imported memories or tables.
pub(crate) fn state_can_move(wasm: &[u8]) -> bool {
    let parse = || -> Option<bool> {
        // Memories are copied through their exports, so each must have one.
        let mut defined_memories = 0;
        let mut exported_memories = std::collections::HashSet::new();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.ok()? {
                Payload::StartSection { .. } => return Some(false),
                Payload::ImportSection(r) => {
                    for imports in r {
                        for import in imports.ok()? {
                            let (_, import) = import.ok()?;
                            if matches!(import.ty, TypeRef::Memory(_) | TypeRef::Table(_)) {
                                return Some(false);
                            }
                        }
                    }
                }
                Payload::MemorySection(r) => defined_memories += r.count(),
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.ok()?;
                        match e.kind {
                            wasmparser::ExternalKind::Table => return Some(false),
                            wasmparser::ExternalKind::Memory => {
                                exported_memories.insert(e.index);
                            }
                            _ => {}
                        }
                    }
                }
                Payload::CodeSectionEntry(body) => {
                    let mut ops = body.get_operators_reader().ok()?;
                    while !ops.eof() {
                        match ops.read().ok()? {
                            Operator::TableSet { .. }
                            | Operator::TableGrow { .. }
                            | Operator::TableFill { .. }
                            | Operator::TableCopy { .. }
                            | Operator::TableInit { .. }
                            | Operator::ElemDrop { .. }
                            | Operator::MemoryInit { .. }
                            | Operator::DataDrop { .. } => return Some(false),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Some(exported_memories.len() as u32 == defined_memories)
    };
    parse().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn movable(wat: &str) -> bool {
        state_can_move(&wat::parse_str(wat).unwrap())
    }

    #[test]
    fn only_state_the_host_can_copy_moves() {
        assert!(movable(
            r#"(module (memory (export "memory") 1) (global (mut i32) (i32.const 0)) (table 1 funcref)
                (func (export "f") (result i32) (i32.const 0)))"#
        ));
        assert!(!movable(r#"(module (func $s) (start $s))"#));
        assert!(!movable(
            r#"(module (table 1 funcref) (func (table.set 0 (i32.const 0) (ref.null func))))"#
        ));
        assert!(!movable(r#"(module (table (export "t") 1 funcref))"#));
        assert!(!movable(r#"(module (import "a" "m" (memory 1)))"#));
        assert!(
            !movable(r#"(module (memory 1))"#),
            "a memory without an export"
        );
        assert!(movable(r#"(module (memory (export "memory") 1))"#));
        assert!(!movable(
            r#"(module (memory (export "m") 1) (data $d "x") (func (data.drop $d)))"#
        ));
        assert!(!state_can_move(b"not wasm"));
    }
}

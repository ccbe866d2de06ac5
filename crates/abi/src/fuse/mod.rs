//! Fuses the hot part of the Extism ABI into a plug-in at load time.
//!
//! PDKs move data 8 bytes per ABI call (`input_load_u64`, `store_u64`, ...). As host functions
//! those calls cost a wasm-to-host transition each; fused into the module as ordinary wasm
//! functions over a second memory (the Extism memory), Cranelift inlines them into the
//! plug-in's loops. `cargo bench -p plinth-bench --bench abi_design` measured the difference
//! (BENCHMARKS.md): about 7x on a 1 MiB echo.
//!
//! The rewrite only appends (types, one memory, functions, exports), so no
//! existing index moves; calls to the hot imports are redirected to the new functions. The
//! imports themselves stay, so `ref.func`, tables and link-time type checks are unchanged, and
//! the host versions of those functions work on the same memory with the same semantics.

//!
//! - this file: the entry points ([`fuse`], [`fuse_named`], [`fused_exports`]) and [`Fused`], the
//!   names a rewrite exports for the host;
//! - `shape.rs`: `Shape`, a first pass over the module (index spaces, the hot imports);
//! - `kernels.rs`: the fused functions' bodies, keyed by their names in `abi::FUNCTIONS`, from
//!   which they take their signatures and order;
//! - `rewrite.rs`: `Fuser`, the re-encoding pass that appends the kernels and splices them into
//!   their call sites;
//! - `standalone.rs`: the same memory kernels as a module of their own
//!   ([`memory_functions_module`]), for hosts whose engine cannot fuse (no multi-memory).

mod kernels;
mod rewrite;
mod shape;
mod standalone;
#[cfg(test)]
mod tests;

use wasm_encoder::reencode::Reencode;
use wasm_encoder::ValType;
use wasmparser::Parser;

use crate::{self as abi, PrepareError, Ty};
use rewrite::Fuser;
use shape::Shape;
pub use standalone::{memory_functions, memory_functions_module, MEMORY_IMPORT};

/// Export name (or its stem, see [`Fused`]) through which the host reaches Extism memory.
pub const MEMORY_EXPORT: &str = "__plinth_extism_memory";
/// Export name stem of a fused module's deferred start function.
pub const START_EXPORT: &str = "__plinth_start";
/// The prefix of the names the rewrite exports mutable globals under, with their index.
pub const GLOBAL_EXPORT: &str = "__plinth_global_";

/// Rewrites `wasm` if it imports any of the fused functions; `None` when there is nothing to
/// fuse (or the bytes are not a plain core module, which compilation will then report).
pub fn fuse(wasm: &[u8]) -> Option<Vec<u8>> {
    fuse_named(wasm).ok().flatten().map(|(fused, _)| fused)
}

/// [`fuse`] with the names the rewrite exported, and the validator's message when `wasm` is
/// not a valid module.
pub fn fuse_named(wasm: &[u8]) -> Result<Option<(Vec<u8>, Fused)>, PrepareError> {
    // Appending a memory could make an invalid module valid (code naming a memory it lacks
    // would reach Extism memory), so only valid modules are fused; the caller reports the rest.
    wasmparser::Validator::new()
        .validate_all(wasm)
        .map_err(|e| PrepareError {
            message: e.to_string(),
        })?;
    let Some(shape) = Shape::read(wasm, false) else {
        return Ok(None);
    };
    if shape.hot.is_empty() {
        return Ok(None);
    }
    let names = shape.fused_exports();
    let mut fuser = Fuser::new(shape, names.clone());
    let mut module = wasm_encoder::Module::new();
    if fuser
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .is_err()
    {
        return Ok(None);
    }
    let fused = module.finish();
    Ok(match fuser.shape.start {
        Some(_) => without_start_section(&fused).map(|bytes| (bytes, names)),
        None => Some((fused, names)),
    })
}

/// What the rewrite of a module exports for the host, decided from the original bytes alone
/// (cheaply: only the sections before the code are read). `None` when the module is left as
/// it is. The names are chosen not to clash with the module's own exports, so a compiled
/// module has them only if the rewrite added them: a plug-in cannot pass for fused by
/// exporting a memory under a name of its choosing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fused {
    /// Export name of Extism memory.
    pub memory_export: String,
    /// Export name of the module's start function, when it has one. A fused module's Extism
    /// memory is one of its own memories, which the host can only reach after instantiation,
    /// so the rewrite removes the start section and the host calls this export right after
    /// instantiating, once Extism memory is set up, as the unfused form would have it.
    pub start_export: Option<String>,
    /// Each mutable global the module defines, by index, and the name it is exported under
    /// (its state is carried over when a live instance moves to the optimized tier).
    pub global_exports: Vec<(u32, String)>,
}

/// See [`Fused`].
pub fn fused_exports(wasm: &[u8]) -> Option<Fused> {
    let shape = Shape::read(wasm, true)?;
    (!shape.hot.is_empty()).then(|| shape.fused_exports())
}

impl Shape {
    fn fused_exports(&self) -> Fused {
        let unused = |base: &str| {
            (0u32..)
                .map(|n| match n {
                    0 => base.to_string(),
                    n => format!("{base}_{n}"),
                })
                .find(|name| !self.exports.contains(name))
                .expect("some name is free")
        };
        let memory_export = unused(MEMORY_EXPORT);
        let start_export = self.start.map(|_| unused(START_EXPORT));
        let mut taken = vec![memory_export.clone()];
        taken.extend(start_export.clone());
        let global_exports = self
            .mutable_globals
            .iter()
            .map(|&index| {
                let name = (0u32..)
                    .map(|n| match n {
                        0 => format!("{GLOBAL_EXPORT}{index}"),
                        n => format!("{GLOBAL_EXPORT}{index}_{n}"),
                    })
                    .find(|name| !self.exports.contains(name) && !taken.contains(name))
                    .expect("some name is free");
                taken.push(name.clone());
                (index, name)
            })
            .collect();
        Fused {
            memory_export,
            start_export,
            global_exports,
        }
    }
}

/// `wasm` without its start section (section id 8).
fn without_start_section(wasm: &[u8]) -> Option<Vec<u8>> {
    let mut out = wasm.get(..8)?.to_vec();
    let mut reader = wasmparser::BinaryReader::new(wasm.get(8..)?, 8);
    while !reader.eof() {
        let from = reader.original_position();
        let id = reader.read_u8().ok()?;
        let size = reader.read_var_u32().ok()? as usize;
        let body = reader.original_position();
        reader.read_bytes(size).ok()?;
        if id != 8 {
            out.extend_from_slice(wasm.get(from..body + size)?);
        }
    }
    Some(out)
}

/// ABI value types as wasmparser's.
pub(super) fn wasm_types(tys: &[Ty]) -> Vec<wasmparser::ValType> {
    tys.iter()
        .map(|t| match t {
            Ty::I32 => wasmparser::ValType::I32,
            Ty::I64 => wasmparser::ValType::I64,
        })
        .collect()
}

/// ABI value types as wasm-encoder's.
pub(super) fn encoder_types(tys: &[Ty]) -> Vec<ValType> {
    tys.iter()
        .map(|t| match t {
            Ty::I32 => ValType::I32,
            Ty::I64 => ValType::I64,
        })
        .collect()
}

/// The distinct signatures of the fused functions, in order of first use: the types the
/// rewrite appends.
pub(super) fn fused_signatures() -> Vec<(&'static [Ty], &'static [Ty])> {
    let mut sigs: Vec<(&'static [Ty], &'static [Ty])> = Vec::new();
    for f in abi::fused() {
        if !sigs.contains(&(f.params, f.results)) {
            sigs.push((f.params, f.results));
        }
    }
    sigs
}

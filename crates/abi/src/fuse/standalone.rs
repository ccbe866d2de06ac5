//! The fused memory functions as a module of their own, for hosts that cannot fuse.
//!
//! Fusing needs a second memory in the plug-in (multi-memory). An engine without it (Node.js
//! 20, Safari) runs the plug-in as it is, and its hot imports (`input_load_u64`, `store_u64`,
//! ...) would each be a call into the host, with 64-bit values boxed on the way. This module
//! imports Extism memory instead and exports the same bodies the rewrite fuses, so that the
//! plug-in's hot imports link to wasm functions: one source for both, and no host transition.
//! The bulk copies are left out: they move bytes between two memories, which needs
//! multi-memory again.

use wasm_encoder::{
    CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, ImportSection,
    Instruction, MemoryType, Module, TypeSection,
};

use super::encoder_types;
use super::kernels::kernels;
use crate::{AbiFunction, Fusion, ENV};

/// The import through which the module reaches Extism memory: `(import "env" "memory")`, any
/// size, 32-bit, not shared.
pub const MEMORY_IMPORT: (&str, &str) = ("env", "memory");

/// The functions the module exports, each under its name in [`ENV`] (`extism:host/env`).
pub fn memory_functions() -> impl Iterator<Item = &'static AbiFunction> {
    crate::FUNCTIONS
        .iter()
        .filter(|f| f.namespace == ENV && f.fusion == Fusion::Memory)
}

/// The module: imports Extism memory as [`MEMORY_IMPORT`] and exports every function of
/// [`memory_functions`], with the table's types and the fused bodies.
pub fn memory_functions_module() -> Vec<u8> {
    let functions: Vec<&AbiFunction> = memory_functions().collect();
    let bodies = kernels(functions.iter().copied(), 0);
    let mut types = TypeSection::new();
    let mut imports = ImportSection::new();
    let mut funcs = FunctionSection::new();
    let mut exports = ExportSection::new();
    let mut code = CodeSection::new();
    imports.import(
        MEMORY_IMPORT.0,
        MEMORY_IMPORT.1,
        EntityType::Memory(MemoryType {
            minimum: 0,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        }),
    );
    for (i, (f, kernel)) in functions.iter().zip(&bodies).enumerate() {
        let i = i as u32;
        types
            .ty()
            .function(encoder_types(f.params), encoder_types(f.results));
        funcs.function(i);
        exports.export(f.name, ExportKind::Func, i);
        let mut body = Function::new(kernel.locals.iter().map(|ty| (1, *ty)));
        for instruction in &kernel.body {
            body.instruction(instruction);
        }
        body.instruction(&Instruction::End);
        code.function(&body);
    }
    let mut module = Module::new();
    module
        .section(&types)
        .section(&imports)
        .section(&funcs)
        .section(&exports)
        .section(&code);
    module.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_is_valid_and_exports_every_memory_function_with_its_type() {
        let wasm = memory_functions_module();
        wasmparser::Validator::new()
            .validate_all(&wasm)
            .expect("a valid module");
        let mut exported = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
            if let wasmparser::Payload::ExportSection(reader) = payload.unwrap() {
                for export in reader {
                    exported.push(export.unwrap().name.to_string());
                }
            }
        }
        let expected: Vec<String> = memory_functions().map(|f| f.name.to_string()).collect();
        assert_eq!(exported, expected);
        for name in ["input_length", "input_load_u64", "load_u8", "store_u64"] {
            assert!(exported.iter().any(|e| e == name), "{name} is exported");
        }
        assert!(
            !exported.iter().any(|e| e == "input_read"),
            "bulk copies need two memories"
        );
    }
}

//! Unit tests of the rewrite.

use super::*;
use wasmparser::{Operator, Payload};

fn validate(wasm: &[u8]) {
    wasmparser::Validator::new()
        .validate_all(wasm)
        .expect("fused module is valid");
}

fn exports(wasm: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for p in Parser::new(0).parse_all(wasm) {
        if let Payload::ExportSection(r) = p.unwrap() {
            for e in r {
                names.push(e.unwrap().name.to_string());
            }
        }
    }
    names
}

#[test]
fn fuses_a_module_without_memory_global_or_export_sections() {
    // Only types, imports, functions and code: every appended section must be inserted.
    let wasm = wat::parse_str(
        r#"(module (import "extism:host/env" "load_u64" (func $l (param i64) (result i64)))
             (func (drop (call $l (i64.const 8)))))"#,
    )
    .unwrap();
    let fused = fuse(&wasm).expect("has a hot import");
    validate(&fused);
    let names = exports(&fused);
    assert!(names.contains(&MEMORY_EXPORT.to_string()), "{names:?}");
}

#[test]
fn keeps_existing_indices_and_redirects_calls() {
    let wasm = wat::parse_str(
        r#"(module
             (import "extism:host/env" "input_length" (func $len (result i64)))
             (import "other" "f" (func $f))
             (memory (export "memory") 1)
             (global $g (mut i32) (i32.const 5))
             (func $a (export "a") (result i64) (call $f) (call $len))
             (func (export "b") (result i32) (global.get $g)))"#,
    )
    .unwrap();
    let fused = fuse(&wasm).unwrap();
    validate(&fused);
    let names = exports(&fused);
    assert_eq!(&names[..3], ["memory", "a", "b"]);
    // `a` now has input_length spliced in: it reads the input length from Extism memory
    // (memory 1) itself, and calls neither the import nor the appended function (index 4).
    let mut loads_from_extism_memory = false;
    for p in Parser::new(0).parse_all(&fused) {
        if let Payload::CodeSectionEntry(body) = p.unwrap() {
            for op in body.get_operators_reader().unwrap() {
                match op.unwrap() {
                    Operator::Call { function_index } => {
                        assert!(function_index == 1, "only `other.f` is still called");
                    }
                    Operator::I64Load { memarg } => {
                        loads_from_extism_memory |= memarg.memory == 1;
                    }
                    _ => {}
                }
            }
            break;
        }
    }
    assert!(loads_from_extism_memory);
}

/// Counts calls to `index` and the size of the code section.
fn calls_to(wasm: &[u8], index: u32) -> usize {
    let mut n = 0;
    for p in Parser::new(0).parse_all(wasm) {
        if let Payload::CodeSectionEntry(body) = p.unwrap() {
            for op in body.get_operators_reader().unwrap() {
                if let Operator::Call { function_index } = op.unwrap() {
                    n += (function_index == index) as usize;
                }
            }
        }
    }
    n
}

#[test]
fn splices_within_a_budget_and_calls_past_it() {
    let calls = "(drop (call $l (i64.const 16)))".repeat(10_000);
    let wasm = wat::parse_str(format!(
        r#"(module (import "extism:host/env" "load_u64" (func $l (param i64) (result i64)))
             (func {calls}))"#
    ))
    .unwrap();
    let fused = fuse(&wasm).unwrap();
    validate(&fused);
    // The appended load_u64 is function 2 (one import, one function, input_length first).
    let appended_load_u64 = 2 + 4;
    let still_called = calls_to(&fused, appended_load_u64);
    assert!(
        still_called > 0 && still_called < 10_000,
        "some calls spliced, the rest kept: {still_called}"
    );
    assert!(
        fused.len() < 3 * wasm.len(),
        "{} bytes from {}",
        fused.len(),
        wasm.len()
    );
}

#[test]
fn tail_calls_are_spliced_then_return() {
    let wasm = wat::parse_str(
        r#"(module (import "extism:host/env" "load_u64" (func $l (param i64) (result i64)))
             (func (export "f") (param i64) (result i64) (return_call $l (local.get 0))))"#,
    )
    .unwrap();
    let fused = fuse(&wasm).unwrap();
    validate(&fused);
    assert_eq!(calls_to(&fused, 0), 0);
}

#[test]
fn the_start_function_is_deferred_under_a_free_name() {
    let wasm = wat::parse_str(
        r#"(module (import "extism:host/env" "load_u64" (func $l (param i64) (result i64)))
             (memory (export "__plinth_extism_memory") 1)
             (func $s (drop (call $l (i64.const 16))))
             (func (export "__plinth_start"))
             (start $s))"#,
    )
    .unwrap();
    let names = fused_exports(&wasm).unwrap();
    assert_eq!(names.memory_export, "__plinth_extism_memory_1");
    assert_eq!(names.start_export.as_deref(), Some("__plinth_start_1"));
    let fused = fuse(&wasm).unwrap();
    validate(&fused);
    let mut has_start = false;
    for p in Parser::new(0).parse_all(&fused) {
        has_start |= matches!(p.unwrap(), Payload::StartSection { .. });
    }
    assert!(!has_start, "the start section is gone");
    let names = exports(&fused);
    assert!(names.contains(&"__plinth_start_1".to_string()), "{names:?}");
    assert!(names.contains(&"__plinth_extism_memory_1".to_string()));
}

#[test]
fn bulk_copies_are_fused_only_over_a_32_bit_memory_0() {
    let module = |memory: &str| {
        wat::parse_str(format!(
            r#"(module (import "plinth:host/env" "read" (func $r (param i64 i32 i32)))
                 {memory}
                 (func (call $r (i64.const 16) (i32.const 0) (i32.const 8))))"#
        ))
        .unwrap()
    };
    let fused = fuse(&module("(memory 1)")).expect("read is fused");
    validate(&fused);
    for p in Parser::new(0).parse_all(&fused) {
        if let Payload::CodeSectionEntry(body) = p.unwrap() {
            for op in body.get_operators_reader().unwrap() {
                if let Operator::Call { function_index } = op.unwrap() {
                    assert_ne!(function_index, 0, "the call goes to the fused copy");
                }
            }
        }
    }
    assert!(fuse(&module("(memory i64 1)")).is_none());
    assert!(fuse(&module("")).is_none());
}

#[test]
fn leaves_modules_without_hot_imports_alone() {
    let plain = wat::parse_str(r#"(module (func (export "f")))"#).unwrap();
    assert!(fuse(&plain).is_none());
    let cold = wat::parse_str(
        r#"(module (import "extism:host/env" "alloc" (func (param i64) (result i64))))"#,
    )
    .unwrap();
    assert!(fuse(&cold).is_none());
    assert!(fuse(b"not wasm").is_none());
}

#[test]
fn invalid_modules_and_mistyped_imports_are_not_fused() {
    // Names memory 1, which only the appended Extism memory would supply.
    let invalid = wat::parse_str(
        r#"(module (import "extism:host/env" "load_u64" (func (param i64) (result i64)))
             (memory 1) (func (i64.store 1 (i32.const 0) (i64.const 1))))"#,
    )
    .unwrap();
    assert!(fuse(&invalid).is_none());
    let mistyped = wat::parse_str(
        r#"(module (import "extism:host/env" "load_u64" (func $l (param i32) (result i64)))
             (func (drop (call $l (i32.const 0)))))"#,
    )
    .unwrap();
    assert!(fuse(&mistyped).is_none());
}

//! Instance pooling (the default): instances from wasmtime's pooling allocator, and
//! instances on demand when the pool is full or cannot hold the module.
//!
//! A separate test binary, not a module of `tests/all`: it takes every one of the
//! [`POOLED_INSTANCES`] slots, which the whole process shares, and counts them.

use plinth::{CompiledPlugin, Error, Plugin, POOLED_INSTANCES};

/// `count` adds one to a global and to the first byte of linear memory, and outputs both: a
/// fresh instance starts from 0 in each, whatever slot it reuses.
const COUNTER: &str = r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (func (export "count") (result i32) (local $h i64)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store8 (i32.const 0) (i32.add (i32.load8_u (i32.const 0)) (i32.const 1)))
    (local.set $h (call $alloc (i64.const 2)))
    (call $store_u8 (local.get $h) (global.get $n))
    (call $store_u8 (i64.add (local.get $h) (i64.const 1)) (i32.load8_u (i32.const 0)))
    (call $output_set (local.get $h) (i64.const 2))
    (i32.const 0)))"#;

fn pooled() -> CompiledPlugin {
    // Pooling is the default.
    Plugin::builder(COUNTER.as_bytes())
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap()
}

fn count(p: &mut Plugin) -> plinth::Result<Vec<u8>> {
    p.call::<_, &[u8]>("count", "").map(<[u8]>::to_vec)
}

#[test]
fn pooled_instances_start_fresh_and_a_full_pool_falls_back_to_instances_on_demand() {
    let compiled = pooled();
    // Reused slots come back clean: globals and memory as the module declares them.
    for _ in 0..20 {
        let mut p = compiled.instantiate().unwrap();
        assert_eq!(count(&mut p).unwrap(), [1, 1]);
        assert_eq!(count(&mut p).unwrap(), [2, 2]);
    }
    // A fresh instance per call sees nothing of the calls before it.
    for _ in 0..20 {
        let out: Vec<u8> = compiled.call_fresh("count", "").unwrap();
        assert_eq!(out, [1, 1]);
    }

    // Every slot taken and more: instances past the pool are allocated on demand and behave
    // the same.
    let mut live = Vec::new();
    for _ in 0..POOLED_INSTANCES as usize + 50 {
        let mut p = compiled.instantiate().unwrap();
        assert_eq!(count(&mut p).unwrap(), [1, 1]);
        live.push(p);
    }
    let out: Vec<u8> = compiled.call_fresh("count", "").unwrap();
    assert_eq!(out, [1, 1], "a fresh call with the pool full");
    // Slots freed are used again.
    live.truncate(10);
    for _ in 0..100 {
        assert_eq!(count(&mut compiled.instantiate().unwrap()).unwrap(), [1, 1]);
    }
}

#[test]
fn modules_a_pool_slot_cannot_hold_load_on_demand() {
    // Two memories and two tables of its own: more than a slot holds.
    let wat = r#"(module
      (memory (export "memory") 1)
      (memory $b 1)
      (table $t1 1 funcref)
      (table $t2 1 funcref)
      (func (export "run") (result i32)
        (i32.store8 $b (i32.const 0) (i32.const 7))
        (i32.const 0)))"#;
    let compiled = Plugin::builder(wat.as_bytes())
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap();
    let mut p = compiled.instantiate().unwrap();
    p.call::<_, &[u8]>("run", "").unwrap();
    // Broken modules still get the compile error, not a pool error.
    let err = Plugin::builder(&b"\0asm\x01\0\0\0\x05"[..])
        .with_cache_dir(None::<&str>)
        .compile()
        .err()
        .expect("a truncated module does not load");
    assert!(matches!(err, Error::Compile { .. }), "{err:?}");
    assert!(!err.to_string().contains("pool"), "{err}");
}

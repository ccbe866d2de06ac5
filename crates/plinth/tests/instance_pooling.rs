//! `PluginBuilder::with_instance_pooling`: instances from wasmtime's pooling allocator.
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
    Plugin::builder(COUNTER.as_bytes())
        .with_instance_pooling(true)
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap()
}

fn count(p: &mut Plugin) -> plinth::Result<Vec<u8>> {
    p.call::<_, &[u8]>("count", "").map(<[u8]>::to_vec)
}

#[test]
fn pooled_instances_start_fresh_and_the_pool_has_a_clear_limit() {
    let compiled = pooled();
    // Reused slots come back clean: globals and memory as the module declares them.
    for _ in 0..20 {
        let mut p = compiled.instantiate().unwrap();
        assert_eq!(count(&mut p).unwrap(), [1, 1]);
        assert_eq!(count(&mut p).unwrap(), [2, 2]);
    }

    // Every slot taken: one more instance fails with an error that names the limit, and
    // works again once a slot is free.
    let mut live = Vec::new();
    let failure = loop {
        match compiled
            .instantiate()
            .and_then(|mut p| count(&mut p).map(|out| (p, out)))
        {
            Ok((p, out)) => {
                assert_eq!(out, [1, 1]);
                live.push(p);
            }
            Err(e) => break e,
        }
        assert!(live.len() <= POOLED_INSTANCES as usize, "no limit reached");
    };
    assert_eq!(live.len(), POOLED_INSTANCES as usize);
    assert!(matches!(failure, Error::Link(_)), "{failure:?}");
    assert!(
        failure.to_string().contains("instance"),
        "the error says what ran out: {failure}"
    );
    live.pop();
    let mut p = compiled.instantiate().unwrap();
    assert_eq!(count(&mut p).unwrap(), [1, 1]);
}

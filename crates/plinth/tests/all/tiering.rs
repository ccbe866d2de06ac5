//! Tiered compiling (`PluginBuilder::with_tiering`): the first instance runs on Winch's code,
//! the optimized code takes over in the background, and a live plug-in moves to it between
//! calls with its memories, globals, Extism memory and vars.

use plinth::{Plugin, Tier};

/// `count` adds one to a mutable global and to the first byte of linear memory, keeps a
/// block of Extism memory alive across calls (its handle in a global), and outputs the
/// three. Thousands of filler functions make Cranelift's compile slow enough that the first
/// instance is surely made before the optimized code is ready.
fn counter(fillers: usize) -> String {
    let mut wat = String::from(
        r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (global $kept (mut i64) (i64.const 0))
  (func (export "count") (result i32) (local $h i64)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store8 (i32.const 0) (i32.add (i32.load8_u (i32.const 0)) (i32.const 1)))
    (if (i64.eqz (global.get $kept)) (then
      (global.set $kept (call $alloc (i64.const 1)))
      (call $store_u8 (global.get $kept) (i32.const 0))))
    (call $store_u8 (global.get $kept) (i32.add (call $load_u8 (global.get $kept)) (i32.const 1)))
    (local.set $h (call $alloc (i64.const 3)))
    (call $store_u8 (local.get $h) (global.get $n))
    (call $store_u8 (i64.add (local.get $h) (i64.const 1)) (i32.load8_u (i32.const 0)))
    (call $store_u8 (i64.add (local.get $h) (i64.const 2)) (call $load_u8 (global.get $kept)))
    (call $output_set (local.get $h) (i64.const 3))
    (i32.const 0))
"#,
    );
    for i in 0..fillers {
        wat.push_str(&format!(
            "  (func (export \"f{i}\") (result i32) (local $x i32)
    (local.set $x (i32.const {i}))
    (block $b (loop $l
      (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 31)) (i32.const 7)))
      (br_if $b (i32.gt_u (local.get $x) (i32.const 100000)))
      (br $l)))
    (i32.rem_u (local.get $x) (i32.const 97)))\n"
        ));
    }
    wat.push(')');
    wat
}

fn count(p: &mut Plugin) -> Vec<u8> {
    p.call::<_, &[u8]>("count", "").unwrap().to_vec()
}

#[test]
fn a_live_plugin_moves_to_the_optimized_tier_with_its_state() {
    let compiled = Plugin::builder(counter(3000).as_bytes())
        .with_tiering(true)
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap();
    let mut p = compiled.instantiate().unwrap();
    assert_eq!(
        p.tier(),
        Tier::Baseline,
        "the first instance runs Winch's code"
    );
    assert_eq!(count(&mut p), [1, 1, 1]);
    assert_eq!(count(&mut p), [2, 2, 2]);
    p.var_set("kept", Some(&b"across tiers"[..])).unwrap();
    // The fillers return a number, which a call reports as its code.
    let code = |p: &mut Plugin| p.call::<_, &[u8]>("f7", "").err().map(|e| e.code());
    let before = code(&mut p);

    assert_eq!(compiled.wait_for_optimized(), Tier::Optimized);
    // The next call moves the instance: the counts go on where they were.
    assert_eq!(count(&mut p), [3, 3, 3]);
    assert_eq!(p.tier(), Tier::Optimized);
    assert_eq!(p.var_get("kept"), Some(&b"across tiers"[..]));
    // Both tiers compute the same.
    assert_eq!(code(&mut p), before);
    // New instances start on the optimized code, from the module's initial state.
    let mut fresh = compiled.instantiate().unwrap();
    assert_eq!(fresh.tier(), Tier::Optimized);
    assert_eq!(count(&mut fresh), [1, 1, 1]);
}

#[test]
fn both_tiers_give_the_same_results_for_the_example_plugin() {
    let wat = include_str!("../../../../examples/plugins/count_vowels.wat");
    let tiered = Plugin::builder(wat.as_bytes())
        .with_tiering(true)
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap();
    let mut first = tiered.instantiate().unwrap();
    let first_tier = first.tier();
    let inputs = ["", "Hello, world", "aeiou AEIOU xyz", "ünïcödé vowels"];
    let on_first: Vec<String> = inputs
        .iter()
        .map(|i| first.call::<_, String>("count_vowels", *i).unwrap())
        .collect();
    tiered.wait_for_optimized();
    let mut optimized = Plugin::builder(wat.as_bytes())
        .with_cache_dir(None::<&str>)
        .build()
        .unwrap();
    for (input, expected) in inputs.iter().zip(&on_first) {
        let got: String = optimized.call("count_vowels", *input).unwrap();
        assert_eq!(&got, expected, "{input:?} on {first_tier:?} and optimized");
    }
}

#[test]
fn modules_the_baseline_compiler_refuses_load_optimized() {
    // Winch has no tail calls: the plug-in is compiled by Cranelift at once.
    let wat = r#"(module (memory (export "memory") 1)
      (func $f (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
          (else (return_call $f (i32.sub (local.get 0) (i32.const 1))))))
      (func (export "run") (result i32) (call $f (i32.const 1000))))"#;
    let compiled = Plugin::builder(wat.as_bytes())
        .with_tiering(true)
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap();
    assert_eq!(compiled.tier(), Tier::Optimized);
    compiled
        .instantiate()
        .unwrap()
        .call::<_, &[u8]>("run", "")
        .unwrap();
}

//! Plinth's bulk copies (`plinth:host/env` `input_read`, `read`, `write`): fused into the
//! plug-in as `memory.copy` when its memory 0 is 32-bit, host functions otherwise; both
//! copy the same bytes and refuse the same bad ranges.

use plinth::{Error, Plugin};

/// An echo that goes input -> linear memory -> block 1 -> linear memory -> block 2 (from
/// `alloc_uninit`) -> output,
/// and calls with bad ranges. `memory` is the plug-in's memory 0 declaration.
fn bulk_plugin(memory: &str) -> Plugin {
    let wat = format!(
        r#"(module
  (import "extism:host/env" "input_length" (func $len (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $out (param i64 i64)))
  (import "plinth:host/env" "input_read" (func $input_read (param i64 i32 i32)))
  (import "plinth:host/env" "read" (func $read (param i64 i32 i32)))
  (import "plinth:host/env" "write" (func $write (param i64 i32 i32)))
  (import "plinth:host/env" "alloc_uninit" (func $alloc_uninit (param i64) (result i64)))
  {memory}
  (func (export "echo") (result i32) (local $n i32) (local $h1 i64) (local $h2 i64)
    (local.set $n (i32.wrap_i64 (call $len)))
    (call $input_read (i64.const 0) (i32.const 1024) (local.get $n))
    (local.set $h1 (call $alloc (i64.extend_i32_u (local.get $n))))
    (call $write (local.get $h1) (i32.const 1024) (local.get $n))
    (call $read (local.get $h1) (i32.add (i32.const 1024) (local.get $n)) (local.get $n))
    (local.set $h2 (call $alloc_uninit (i64.extend_i32_u (local.get $n))))
    (call $write (local.get $h2) (i32.add (i32.const 1024) (local.get $n)) (local.get $n))
    (call $out (local.get $h2) (i64.extend_i32_u (local.get $n)))
    (i32.const 0))
  (func (export "tail") (result i32) (local $n i32) (local $h i64)
    ;; The input from offset 3 on.
    (local.set $n (i32.sub (i32.wrap_i64 (call $len)) (i32.const 3)))
    (call $input_read (i64.const 3) (i32.const 1024) (local.get $n))
    (local.set $h (call $alloc (i64.extend_i32_u (local.get $n))))
    (call $write (local.get $h) (i32.const 1024) (local.get $n))
    (call $out (local.get $h) (i64.extend_i32_u (local.get $n)))
    (i32.const 0))
  (func (export "input_past_end") (result i32)
    (call $input_read (i64.const 1) (i32.const 0) (i32.wrap_i64 (call $len))) (i32.const 0))
  (func (export "write_reserved") (result i32)
    (call $write (i64.const 0) (i32.const 0) (i32.const 8)) (i32.const 0))
  (func (export "read_past_extism_memory") (result i32)
    (call $read (i64.const 0x10000000) (i32.const 0) (i32.const 8)) (i32.const 0))
  (func (export "read_nothing_at_max") (result i32)
    (call $read (i64.const -1) (i32.const 0x7fffffff) (i32.const 0)) (i32.const 0))
  (func (export "write_nothing_at_max") (result i32)
    (call $write (i64.const -1) (i32.const 0x7fffffff) (i32.const 0)) (i32.const 0))
  (func (export "input_read_nothing_at_end") (result i32)
    (call $input_read (call $len) (i32.const 0x7fffffff) (i32.const 0)) (i32.const 0))
  (func (export "write_from_past_linear_memory") (result i32)
    (call $write (call $alloc (i64.const 8)) (i32.const 0x7fffffff) (i32.const 8)) (i32.const 0)))"#
    );
    Plugin::new(wat.as_bytes(), [], false).unwrap()
}

fn check(memory: &str) {
    let mut p = bulk_plugin(memory);
    for n in [0usize, 1, 7, 8, 9, 1000, 60_000] {
        let input: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
        let out: Vec<u8> = p.call("echo", &input[..]).unwrap();
        assert_eq!(out, input, "echo of {n} bytes ({memory})");
    }
    let out: &[u8] = p.call("tail", "abcdefgh").unwrap();
    assert_eq!(out, b"defgh");
    // Copying nothing succeeds wherever it points, fused or not (the host versions check
    // nothing then; `memory.copy` of 0 bytes would still trap past the end).
    for empty in [
        "read_nothing_at_max",
        "write_nothing_at_max",
        "input_read_nothing_at_end",
    ] {
        p.call::<_, &[u8]>(empty, "some input")
            .unwrap_or_else(|e| panic!("{empty} ({memory}): {e}"));
    }
    for bad in [
        "input_past_end",
        "write_reserved",
        "read_past_extism_memory",
        "write_from_past_linear_memory",
    ] {
        let err = p.call::<_, &[u8]>(bad, "some input").unwrap_err();
        assert!(
            matches!(err, Error::Trap { .. }),
            "{bad} ({memory}): {err:?}"
        );
        // The instance is made again after a trap, and serves the next call.
        let out: &[u8] = p.call("echo", "still here").unwrap();
        assert_eq!(out, b"still here", "after {bad} ({memory})");
    }
}

#[test]
fn fused_bulk_copies_move_the_bytes_and_trap_on_bad_ranges() {
    check(r#"(memory (export "memory") 2)"#);
}

#[test]
fn host_bulk_copies_behave_the_same_for_a_64_bit_memory() {
    // A 64-bit memory 0 cannot take the fused copies' i32 addresses: the host versions serve.
    check(r#"(memory (export "memory") i64 2)"#);
}

/// Direct input and output: the plug-in offers a buffer for the input (`plinth_input_buffer`,
/// here always at `$at`, remembering the length) and hands its output over where it lies
/// (`output_direct`). `$at` and the exports that misbehave are the hostile cases.
fn direct_plugin(at: i64) -> Plugin {
    let wat = format!(
        r#"(module
  (import "plinth:host/env" "output_direct" (func $out (param i32 i32)))
  (import "extism:host/env" "input_length" (func $len (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 2)
  (global $n (mut i32) (i32.const 0))
  (global $calls (mut i32) (i32.const 0))
  (func (export "plinth_input_buffer") (param $len i32) (result i32)
    (global.set $n (local.get $len))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (if (i32.eq (local.get $len) (i32.const 13)) (then unreachable))
    (i32.wrap_i64 (i64.const {at})))
  (func (export "echo") (result i32)
    ;; Extism's input is empty when the input came directly.
    (if (i64.ne (call $len) (i64.const 0)) (then unreachable))
    (call $out (i32.const 1024) (global.get $n))
    (i32.const 0))
  (func (export "direct_then_extism") (result i32) (local $h i64)
    (call $out (i32.const 1024) (global.get $n))
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (i32.const 33))
    (call $output_set (local.get $h) (i64.const 1))
    (i32.const 0))
  (func (export "classic_length") (result i32) (local $h i64)
    ;; Without input, the host does not ask for a buffer: Extism's input is used (empty).
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (i32.add (i32.const 48) (i32.wrap_i64 (call $len))))
    (call $output_set (local.get $h) (i64.const 1))
    (i32.const 0))
  (func (export "out_of_bounds") (result i32)
    (call $out (i32.const 131000) (i32.const 1000)) (i32.const 0)))"#
    );
    Plugin::builder(wat.as_bytes())
        .with_cache_dir(None::<&str>)
        .build()
        .unwrap()
}

#[test]
fn direct_input_and_output_move_the_bytes_through_the_plugins_memory() {
    let mut p = direct_plugin(1024);
    for size in [1usize, 64, 4096, 100_000] {
        let input: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let out: Vec<u8> = p.call::<&[u8], &[u8]>("echo", &input).unwrap().to_vec();
        assert_eq!(out, input, "{size} bytes");
    }
    // The last output set wins, whichever way it was set.
    assert_eq!(
        p.call::<_, &[u8]>("direct_then_extism", "abc").unwrap(),
        b"!"
    );
    // No input: no buffer asked for.
    assert_eq!(p.call::<_, &[u8]>("classic_length", "").unwrap(), b"0");
    // A fresh instance per call, through the pool, takes the same path.
    let compiled = p.compiled().clone();
    let out: Vec<u8> = compiled.call_fresh("echo", "fresh and direct").unwrap();
    assert_eq!(out, b"fresh and direct");
}

#[test]
fn direct_buffers_and_outputs_outside_memory_fail_clearly_and_the_host_keeps_serving() {
    // A buffer that ends past the 128 KiB memory.
    let mut p = direct_plugin(131_000);
    let err = p.call::<_, &[u8]>("echo", &[1u8; 2000][..]).unwrap_err();
    assert!(err.to_string().contains("plinth_input_buffer"), "{err}");
    assert!(err.to_string().contains("outside"), "{err}");
    // A negative pointer is a large unsigned one: also outside.
    let mut p = direct_plugin(-8);
    let err = p.call::<_, &[u8]>("echo", "x").unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    // The buffer export traps (here for 13-byte inputs): the call fails as a trap.
    let mut p = direct_plugin(1024);
    let err = p.call::<_, &[u8]>("echo", "thirteen byte").unwrap_err();
    assert!(matches!(err, Error::Trap { .. }), "{err:?}");
    assert_eq!(p.call::<_, &[u8]>("echo", "after").unwrap(), b"after");
    // An output range outside memory.
    let err = p.call::<_, &[u8]>("out_of_bounds", "x").unwrap_err();
    assert!(err.to_string().contains("output_direct"), "{err}");
    assert_eq!(p.call::<_, &[u8]>("echo", "serving").unwrap(), b"serving");
}

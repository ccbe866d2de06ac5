//! 100,000 plug-in instances created, called and freed through the C API (the exported
//! functions, called as C would): RSS after equals RSS before within a small bound. Failed
//! calls (their error strings) and failed loads (their error messages) are in the loop too.
//! `PLINTH_CHURN_INSTANCES` changes the count.
//!
//! A separate test binary, not a module of `tests/all`: it reads the RSS of its whole process,
//! which tests running beside it on other threads would change.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};
use std::time::Instant;

use plinth_capi::*;

const ECHO: &str = r#"(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1)
  (func (export "echo") (result i32) (local $n i64) (local $h i64) (local $i i64)
    (local.set $n (call $input_length)) (local.set $h (call $alloc (local.get $n)))
    (block $d (loop $l (br_if $d (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $l)))
    (call $output_set (local.get $h) (local.get $n)) (i32.const 0))
  (func (export "boom") (result i32) unreachable))"#;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

unsafe fn output(p: *mut ExtismPlugin) -> Vec<u8> {
    let len = extism_plugin_output_length(p) as usize;
    std::slice::from_raw_parts(extism_plugin_output_data(p), len).to_vec()
}

/// One round of `count` instances from `compiled`.
unsafe fn round(compiled: *const ExtismCompiledPlugin, count: u64) {
    for i in 0..count {
        let mut err: *mut c_char = null_mut();
        let p = extism_plugin_new_from_compiled(compiled, &mut err);
        assert!(!p.is_null() && err.is_null());
        if i % 10 == 0 {
            let msg = i.to_string();
            let rc = extism_plugin_call(p, c"echo".as_ptr(), msg.as_ptr(), msg.len() as u64);
            assert_eq!(rc, 0);
            assert_eq!(output(p), msg.as_bytes());
        }
        if i % 100 == 1 {
            // 134: Extism's code for a trap.
            assert_eq!(extism_plugin_call(p, c"boom".as_ptr(), null(), 0), 134);
            let e = CStr::from_ptr(extism_plugin_error(p)).to_string_lossy();
            assert!(e.contains("unreachable"), "{e}");
        }
        if i % 1000 == 2 {
            // A load that fails hands back a message the caller frees.
            let bad = b"\0asm\x01\0\0\0garbage";
            let mut err: *mut c_char = null_mut();
            let q = extism_plugin_new(
                bad.as_ptr(),
                bad.len() as u64,
                null_mut(),
                0,
                false,
                &mut err,
            );
            assert!(q.is_null() && !err.is_null());
            extism_plugin_new_error_free(err);
        }
        extism_plugin_free(p);
    }
}

#[test]
fn creating_and_freeing_instances_through_the_c_api_returns_the_memory() {
    let n: u64 = std::env::var("PLINTH_CHURN_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    unsafe {
        let mut err: *mut c_char = null_mut();
        let compiled = extism_compiled_plugin_new(
            ECHO.as_ptr(),
            ECHO.len() as u64,
            null_mut(),
            0,
            false,
            &mut err,
        );
        assert!(
            !compiled.is_null(),
            "{}",
            CStr::from_ptr(err).to_string_lossy()
        );
        round(compiled, 3_000);
        let before = rss_kib();
        let start = Instant::now();
        round(compiled, n);
        let took = start.elapsed();
        let after = rss_kib();
        extism_compiled_plugin_free(compiled);
        println!(
            "{n} instances through the C API in {:.1} s; RSS before {before} KiB, after {after} KiB ({:+} KiB)",
            took.as_secs_f64(),
            after as i64 - before as i64
        );
        assert!(
            after < before + 4096,
            "RSS grew from {before} KiB to {after} KiB over {n} instances"
        );
    }
}

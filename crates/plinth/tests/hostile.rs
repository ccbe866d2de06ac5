//! Plug-ins that misbehave get clear errors, and the host goes on serving.

mod common;
use common::wat;
use plinth::{Error, Plugin};

#[test]
fn trap_reports_the_cause_and_the_instance_is_replaced() {
    let mut p = Plugin::new(
        wat(r#"
          (global $calls (mut i32) (i32.const 0))
          (func (export "boom") (result i32) unreachable)
          (func (export "div") (result i32) (i32.div_s (i32.const 1) (i32.const 0)))
          (func (export "calls") (result i32)
            (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
            (call $output_i64 (i64.extend_i32_u (global.get $calls))) (i32.const 0))"#)
        .as_bytes(),
        [],
        false,
    )
    .unwrap();
    assert_eq!(p.call::<_, u64>("calls", "").unwrap(), 1);
    assert_eq!(
        p.call::<_, u64>("calls", "").unwrap(),
        2,
        "globals persist across calls"
    );
    let err = p.call::<_, &[u8]>("boom", "").unwrap_err();
    assert!(matches!(err, Error::Trap { .. }), "{err:?}");
    assert_eq!(err.code(), plinth::TRAP_CODE);
    assert!(err.to_string().contains("unreachable"), "{err}");
    // After a trap the instance's state may be corrupt, so a fresh one serves the next call.
    assert_eq!(p.call::<_, u64>("calls", "").unwrap(), 1);
    let err = p.call::<_, &[u8]>("div", "").unwrap_err();
    assert!(err.to_string().contains("divide by zero"), "{err}");
}

#[test]
fn deep_recursion_is_a_stack_overflow_trap() {
    let mut p = Plugin::new(
        wat(r#"
          (func $down (param i64) (result i64) (call $down (i64.add (local.get 0) (i64.const 1))))
          (func (export "recurse") (result i32) (drop (call $down (i64.const 0))) (i32.const 0))
          (func (export "echo") (result i32) (call $echo_input) (i32.const 0))"#)
        .as_bytes(),
        [],
        false,
    )
    .unwrap();
    let err = p.call::<_, &[u8]>("recurse", "").unwrap_err();
    assert!(err.to_string().contains("call stack exhausted"), "{err}");
    assert!(
        err.to_string().lines().count() < 20,
        "the backtrace is trimmed: {err}"
    );
    assert_eq!(p.call::<_, &str>("echo", "ok").unwrap(), "ok");
}

#[test]
fn bogus_handles_to_every_import_are_harmless() {
    // Each export passes a bogus handle: 0, past the end, inside a block, u64::MAX.
    let mut body = String::new();
    for (i, h) in ["0", "999999999", "-1", "9"].iter().enumerate() {
        body.push_str(&format!(
            r#"
          (func (export "bogus{i}") (result i32) (local $b i64)
            (local.set $b (call $alloc (i64.const 32)))
            (drop (call $length (i64.const {h})))
            (drop (call $length_unsafe (i64.const {h})))
            (drop (call $load_u8 (i64.const {h})))
            (drop (call $load_u64 (i64.const {h})))
            (call $store_u8 (i64.const {h}) (i32.const 1))
            (call $store_u64 (i64.const {h}) (i64.const 1))
            (drop (call $input_load_u8 (i64.const {h})))
            (drop (call $input_load_u64 (i64.const {h})))
            (call $free (i64.const {h}))
            (drop (call $config_get (i64.const {h})))
            (drop (call $var_get (i64.const {h})))
            (call $log_info (i64.const {h}))
            (call $output_set (local.get $b) (i64.const 4))
            (i32.const 0))"#
        ));
    }
    body.push_str(r#"(func (export "echo") (result i32) (call $echo_input) (i32.const 0))"#);
    let mut p = Plugin::new(wat(&body).as_bytes(), [], false).unwrap();
    for i in 0..4 {
        let out = p.call::<_, Vec<u8>>(format!("bogus{i}"), "input").unwrap();
        assert_eq!(out.len(), 4, "bogus{i}");
    }
    assert_eq!(p.call::<_, &str>("echo", "fine").unwrap(), "fine");
}

#[test]
fn bogus_output_ranges_are_errors_not_crashes() {
    let mut p = Plugin::new(
        wat(r#"
          (func (export "neg") (result i32) (call $output_set (i64.const 8) (i64.const -5)) (i32.const 0))
          (func (export "huge") (result i32) (call $output_set (i64.const -1) (i64.const 1073741824)) (i32.const 0))
          (func (export "err_bogus") (result i32) (call $error_set (i64.const 123456789)) (i32.const 0))
          (func (export "err_utf8") (result i32) (local $h i64)
            (local.set $h (call $alloc (i64.const 2)))
            (call $store_u8 (local.get $h) (i32.const 0xff))
            (call $store_u8 (i64.add (local.get $h) (i64.const 1)) (i32.const 0xfe))
            (call $error_set (local.get $h)) (i32.const 1))"#)
        .as_bytes(),
        [],
        false,
    )
    .unwrap();
    for f in ["neg", "huge"] {
        let err = p.call::<_, &[u8]>(f, "").unwrap_err();
        assert!(matches!(err, Error::Memory(_)), "{f}: {err:?}");
    }
    // An error handle that is no block still fails the call.
    assert!(matches!(
        p.call::<_, &[u8]>("err_bogus", "").unwrap_err(),
        Error::Guest { .. }
    ));
    let err = p.call::<_, &[u8]>("err_utf8", "").unwrap_err();
    assert!(matches!(err, Error::Guest { code: 1, .. }), "{err:?}");
}

#[test]
fn malformed_modules_and_bad_exports() {
    let err = Plugin::new(&b"\0asm\x01\0\0\0garbage"[..], [], false).unwrap_err();
    assert!(matches!(err, Error::Compile { .. }), "{err:?}");
    let err = Plugin::new(
        "(module (func (export \"f\") (result i32) i64.const 1))",
        [],
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Compile { .. }), "{err:?}");
    let err = Plugin::new(&b"not wasm at all"[..], [], false).unwrap_err();
    assert!(
        err.to_string().contains("WebAssembly") || matches!(err, Error::Manifest(_)),
        "{err}"
    );

    let mut p = Plugin::new(
        wat(
            r#"(func (export "takes_args") (param i32) (result i32) (local.get 0))
               (func (export "ok") (result i32) (i32.const 0))
               (func (export "unit"))"#,
        )
        .as_bytes(),
        [],
        false,
    )
    .unwrap();
    let err = p.call::<_, &[u8]>("nope", "").unwrap_err();
    match &err {
        Error::FunctionNotFound { available, .. } => {
            assert!(available.contains(&"ok".to_string()));
            assert!(available.contains(&"unit".to_string()));
            assert!(!available.contains(&"takes_args".to_string()));
        }
        e => panic!("{e:?}"),
    }
    assert!(
        err.to_string().contains("ok"),
        "the message lists what exists: {err}"
    );
    assert!(matches!(
        p.call::<_, &[u8]>("takes_args", "").unwrap_err(),
        Error::NotCallable { .. }
    ));
    assert!(
        p.call::<_, &[u8]>("unit", "").is_ok(),
        "() -> () exports are callable"
    );
    assert!(p.function_exists("ok"));
    assert!(!p.function_exists("takes_args"));
    assert!(!p.function_exists("nope"));
}

#[test]
fn unknown_imports_fail_at_load_time_naming_the_import() {
    let err = Plugin::new(
        r#"(module (import "extism:host/env" "teleport" (func (param i64))) (func (export "f")))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(
        err.to_string().contains("extism:host/env::teleport"),
        "{err}"
    );

    let err = Plugin::new(
        r#"(module (import "extism:host/user" "lookup" (func (param i64) (result i64))) (func (export "f")))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("extism:host/user::lookup"),
        "{err}"
    );
    assert!(err.to_string().contains("host function"), "{err}");

    let err = Plugin::new(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (func (export "f")))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("WASI is off"), "{err}");

    // A known import with the wrong type is a link error too.
    let err = Plugin::new(
        r#"(module (import "extism:host/env" "alloc" (func (param i32) (result i32))) (func (export "f")))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(err.to_string().contains("alloc"), "{err}");
}

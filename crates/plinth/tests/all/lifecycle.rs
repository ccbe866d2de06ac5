//! Start-up exports, `_start`, `proc_exit`, compiled plug-ins, reset and vars across instances.

use crate::common;
use crate::common::wat;
use plinth::{CompiledPlugin, Error, Plugin, PluginBuilder, WasiStdio};

const INIT_COUNTER: &str = r#"
  (global $inits (mut i64) (i64.const 0))
  (global $hs (mut i64) (i64.const 0))
  (func (export "_initialize") (global.set $inits (i64.add (global.get $inits) (i64.const 1))))
  (func (export "hs_init") (param i32 i32)
    (global.set $hs (i64.add (i64.mul (global.get $inits) (i64.const 10)) (i64.const 1))))
  (func (export "inits") (result i32) (call $output_i64 (global.get $inits)) (i32.const 0))
  (func (export "hs") (result i32) (call $output_i64 (global.get $hs)) (i32.const 0))"#;

#[test]
fn initialize_runs_once_then_hs_init() {
    let mut p = Plugin::new(wat(INIT_COUNTER).as_bytes(), [], false).unwrap();
    assert_eq!(p.call::<_, u64>("inits", "").unwrap(), 1);
    assert_eq!(p.call::<_, u64>("inits", "").unwrap(), 1);
    // hs_init ran after _initialize (it saw inits == 1).
    assert_eq!(p.call::<_, u64>("hs", "").unwrap(), 11);
}

#[test]
fn wasm_call_ctors_runs_when_there_is_no_initialize() {
    let mut p = Plugin::new(
        wat(r#"(global $c (mut i64) (i64.const 0))
               (func (export "__wasm_call_ctors") (global.set $c (i64.add (global.get $c) (i64.const 1))))
               (func (export "ctors") (result i32) (call $output_i64 (global.get $c)) (i32.const 0))"#)
        .as_bytes(),
        [],
        false,
    )
    .unwrap();
    assert_eq!(p.call::<_, u64>("ctors", "").unwrap(), 1);
    assert_eq!(p.call::<_, u64>("ctors", "").unwrap(), 1);
}

#[test]
fn start_ends_the_instance_but_keeps_vars() {
    let mut p = Plugin::new(
        wat(r#"(global $g (mut i64) (i64.const 0))
               (data (i32.const 0) "k")
               (func (export "_start")
                 (global.set $g (i64.add (global.get $g) (i64.const 1)))
                 (call $var_set (call $copy_in (i32.const 0) (i32.const 1)) (call $copy_in (i32.const 0) (i32.const 1)))
                 (call $output_i64 (global.get $g)))"#)
        .as_bytes(),
        [],
        false,
    )
    .unwrap();
    assert_eq!(p.call::<_, u64>("_start", "").unwrap(), 1);
    // A fresh instance: the global starts over; the var survives.
    assert_eq!(p.call::<_, u64>("_start", "").unwrap(), 1);
    assert_eq!(p.var_get("k"), Some(&b"k"[..]));
}

#[allow(dead_code)]
const EXIT: &str = r#"
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (func (export "exit0") (result i32) (call $echo_input) (call $exit (i32.const 0)) (i32.const 9))
  (func (export "exit3") (result i32) (call $exit (i32.const 3)) (i32.const 0))"#;

#[test]
fn proc_exit_zero_is_success_and_nonzero_is_failure() {
    let src = format!(
        "(module {EXIT_IMPORT} {} (memory (export \"memory\") 1) {EXIT_BODY})",
        common::PRELUDE
    );
    let mut p = Plugin::new(src.as_bytes(), [], true).unwrap();
    assert_eq!(p.call::<_, &str>("exit0", "kept").unwrap(), "kept");
    let err = p.call::<_, &[u8]>("exit3", "").unwrap_err();
    assert!(matches!(err, Error::Exit { code: 3, .. }), "{err:?}");
    assert_eq!(err.code(), 3);
    assert_eq!(p.call::<_, &str>("exit0", "again").unwrap(), "again");
}
const EXIT_IMPORT: &str =
    r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#;
const EXIT_BODY: &str = r#"
  (func (export "exit0") (result i32) (call $echo_input) (call $exit (i32.const 0)) (i32.const 9))
  (func (export "exit3") (result i32) (call $exit (i32.const 3)) (i32.const 0))"#;

#[test]
fn compiled_plugins_make_independent_instances() {
    let compiled = CompiledPlugin::new(wat(INIT_COUNTER).as_bytes(), [], false).unwrap();
    assert!(compiled.function_exists("inits"));
    let mut a = compiled.instantiate().unwrap();
    let mut b = Plugin::from_compiled(&compiled).unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(a.call::<_, u64>("inits", "").unwrap(), 1);
    assert_eq!(b.call::<_, u64>("inits", "").unwrap(), 1);
    let compiled2 = compiled.clone();
    let t = std::thread::spawn(move || {
        compiled2
            .instantiate()
            .unwrap()
            .call::<_, u64>("inits", "")
            .unwrap()
    });
    assert_eq!(t.join().unwrap(), 1);
}

#[test]
fn reset_releases_the_last_output() {
    let mut p = Plugin::new(common::echo_wat().as_bytes(), [], false).unwrap();
    p.call::<_, &[u8]>("echo", "some output").unwrap();
    assert_eq!(p.output(), b"some output");
    p.reset().unwrap();
    assert_eq!(p.output(), b"");
    assert_eq!(p.call::<_, &str>("echo", "works").unwrap(), "works");
}

#[test]
fn wasi_stdout_can_be_captured_and_capped() {
    let src = String::from(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 100) "hello stdout\n")
          (func (export "print") (result i32)
            (i32.store (i32.const 0) (i32.const 100))
            (i32.store (i32.const 4) (i32.const 13))
            (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))"#,
    );
    let stdio = WasiStdio::capture(20);
    let WasiStdio::Capture { stdout, .. } = &stdio else {
        unreachable!()
    };
    let stdout = stdout.clone();
    let mut p = PluginBuilder::new(src.as_bytes())
        .with_wasi(true)
        .with_wasi_stdio(stdio)
        .build()
        .unwrap();
    p.call::<_, &[u8]>("print", "").unwrap();
    assert_eq!(stdout.contents(), b"hello stdout\n");
    // The second write passes the 20-byte cap: the buffer fills to the cap and no further,
    // and the plug-in's write fails.
    let err = p.call::<_, &[u8]>("print", "").unwrap_err();
    assert!(!err.to_string().is_empty());
    let captured = stdout.contents();
    assert_eq!(captured.len(), 20);
    assert!(captured.starts_with(b"hello stdout\nhello"));
}

//! Plug-ins shared by the benchmarks: WAT text, and the Rust plug-ins of plugins/ built to wasm.

use std::path::PathBuf;
use std::sync::Once;

/// Where scripts/build-plugins.sh puts the plug-ins: `$PLINTH_WASM_PLUGINS`, else
/// target/wasm-plugins of this repository.
pub fn wasm_plugins_dir() -> PathBuf {
    match std::env::var_os("PLINTH_WASM_PLUGINS") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("target/wasm-plugins"),
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bytes of plug-in `name` (target/wasm-plugins/NAME.wasm). When the file is missing,
/// runs `bash scripts/build-plugins.sh` once first (which needs the wasm toolchain of
/// scripts/install-wasm-toolchain.sh).
pub fn wasm_plugin(name: &str) -> Vec<u8> {
    static BUILD: Once = Once::new();
    let path = wasm_plugins_dir().join(format!("{name}.wasm"));
    if !path.exists() {
        BUILD.call_once(|| {
            let root = repo_root();
            eprintln!(
                "{} is missing: running scripts/build-plugins.sh",
                path.display()
            );
            let status = std::process::Command::new("bash")
                .arg("scripts/build-plugins.sh")
                .current_dir(&root)
                .status();
            match status {
                Ok(s) if s.success() => {}
                Ok(s) => panic!(
                    "scripts/build-plugins.sh failed ({s}) while building {name}.wasm for the \
                     benchmarks; run `bash scripts/install-wasm-toolchain.sh` once, then \
                     `bash scripts/build-plugins.sh`, in {}",
                    root.display()
                ),
                Err(e) => panic!(
                    "cannot run `bash scripts/build-plugins.sh` in {} to build {name}.wasm: {e}",
                    root.display()
                ),
            }
        });
    }
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read plug-in {}: {e}. It is built by `bash scripts/build-plugins.sh` \
             (or set PLINTH_WASM_PLUGINS to the directory that holds NAME.wasm files)",
            path.display()
        )
    })
}

/// The Extism imports an echo plug-in needs, from `ns`.
fn imports(ns: &str) -> String {
    format!(
        r#"(import "{ns}" "input_length" (func $input_length (result i64)))
  (import "{ns}" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "{ns}" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "{ns}" "alloc" (func $alloc (param i64) (result i64)))
  (import "{ns}" "store_u64" (func $store_u64 (param i64 i64)))
  (import "{ns}" "store_u8" (func $store_u8 (param i64 i32)))
  (import "{ns}" "output_set" (func $output_set (param i64 i64)))"#
    )
}

/// Echo the way the Extism PDKs move data: 8 bytes per ABI call, then the tail byte by byte.
pub const ECHO_BODY: &str = r#"
  (func (export "echo") (result i32)
    (local $len i64) (local $out i64) (local $i i64)
    (local.set $len (call $input_length))
    (local.set $out (call $alloc (local.get $len)))
    (block $d (loop $l
      (br_if $d (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $len)))
      (call $store_u64 (i64.add (local.get $out) (local.get $i)) (call $input_load_u64 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 8)))
      (br $l)))
    (block $d2 (loop $l2
      (br_if $d2 (i64.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $out) (local.get $i)) (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l2)))
    (call $output_set (local.get $out) (local.get $len))
    (i32.const 0))
  (func (export "empty") (result i32) (i32.const 0))"#;

/// An Extism-ABI echo plug-in (imports from `extism:host/env`).
pub fn echo_plugin() -> String {
    format!(
        "(module {}\n(memory (export \"memory\") 1)\n{ECHO_BODY})",
        imports("extism:host/env")
    )
}

/// Echo importing the ABI from namespace `ns` (for the design comparison).
pub fn echo_importing(ns: &str) -> String {
    format!(
        "(module {}\n(memory (export \"memory\") 1)\n{ECHO_BODY})",
        imports(ns)
    )
}

/// The ABI functions written in wasm over memory `$k`: input at offset 8, bump allocation.
pub const KERNEL_FUNCS: &str = r#"
  (global $in_len (mut i64) (i64.const 0))
  (global $top (mut i64) (i64.const 8))
  (global $out_ptr (mut i64) (i64.const 0))
  (global $out_len (mut i64) (i64.const 0))
  (func $input_length (result i64) (global.get $in_len))
  (func $input_load_u64 (param $off i64) (result i64)
    (if (result i64) (i64.le_u (i64.add (local.get $off) (i64.const 8)) (global.get $in_len))
      (then (i64.load $k offset=8 (i32.wrap_i64 (local.get $off))))
      (else (i64.const 0))))
  (func $input_load_u8 (param $off i64) (result i32)
    (if (result i32) (i64.lt_u (local.get $off) (global.get $in_len))
      (then (i32.load8_u $k offset=8 (i32.wrap_i64 (local.get $off))))
      (else (i32.const 0))))
  (func $alloc (param $n i64) (result i64) (local $h i64)
    (local.set $h (global.get $top))
    (global.set $top (i64.and (i64.add (i64.add (global.get $top) (local.get $n)) (i64.const 7)) (i64.const -8)))
    (local.get $h))
  (func $store_u64 (param $a i64) (param $v i64)
    (if (i64.le_u (i64.add (local.get $a) (i64.const 8))
                  (i64.shl (i64.extend_i32_u (memory.size $k)) (i64.const 16)))
      (then (i64.store $k (i32.wrap_i64 (local.get $a)) (local.get $v)))))
  (func $store_u8 (param $a i64) (param $v i32)
    (if (i64.lt_u (local.get $a) (i64.shl (i64.extend_i32_u (memory.size $k)) (i64.const 16)))
      (then (i32.store8 $k (i32.wrap_i64 (local.get $a)) (local.get $v)))))
  (func $output_set (param i64 i64) (global.set $out_ptr (local.get 0)) (global.set $out_len (local.get 1)))
  (func $begin (param $len i64)
    (global.set $in_len (local.get $len))
    (global.set $top (i64.and (i64.add (i64.add (i64.const 8) (local.get $len)) (i64.const 7)) (i64.const -8))))"#;

/// A kernel as its own module, exporting the ABI over its own memory.
pub fn kernel_module(pages: u32) -> String {
    format!(
        r#"(module (memory $k (export "mem") {pages})
  {KERNEL_FUNCS}
  (export "input_length" (func $input_length)) (export "input_load_u64" (func $input_load_u64))
  (export "input_load_u8" (func $input_load_u8)) (export "alloc" (func $alloc))
  (export "store_u64" (func $store_u64)) (export "store_u8" (func $store_u8))
  (export "output_set" (func $output_set)) (export "begin" (func $begin))
  (export "out_ptr" (global $out_ptr)) (export "out_len" (global $out_len)))"#
    )
}

/// The kernel fused into the plug-in: a second memory and the ABI as local functions.
pub fn fused_echo(pages: u32) -> String {
    format!(
        r#"(module (memory (export "memory") 1) (memory $k (export "mem") {pages})
  {KERNEL_FUNCS}
  (export "begin" (func $begin))
  (export "out_ptr" (global $out_ptr)) (export "out_len" (global $out_len))
  {ECHO_BODY})"#
    )
}

/// Where criterion writes its results, and the benchmarks their own JSON figures for
/// scripts/bench_report.py: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else
/// target/criterion of this repository.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    repo_root().join("target/criterion")
}

//! Multi-module manifests: modules import each other by name, and a module named
//! `extism:host/user` supplies "host" functions written in wasm.

mod common;
use common::wat;
use plinth::{Error, Manifest, Plugin, Wasm};

const MATH: &str = r#"(module
  (func (export "double") (param i64) (result i64) (i64.mul (local.get 0) (i64.const 2))))"#;

fn main_using(ns: &str) -> String {
    format!(
        r#"(module
          (import "{ns}" "double" (func $double (param i64) (result i64)))
          {}
          (memory (export "memory") 1)
          (func (export "run") (result i32)
            (call $output_i64 (call $double (call $input_length))) (i32.const 0)))"#,
        common::PRELUDE
    )
}

#[test]
fn modules_import_each_other_by_name() {
    let m = Manifest::new([
        Wasm::data(MATH.as_bytes().to_vec()).with_name("math"),
        Wasm::data(main_using("math").into_bytes()),
    ]);
    let mut p = Plugin::new(m, [], false).unwrap();
    assert_eq!(p.call::<_, u64>("run", "12345").unwrap(), 10);
    assert_eq!(
        p.functions(),
        vec!["run".to_string()],
        "only the main module's exports are callable"
    );
    assert!(!p.function_exists("double"));
}

#[test]
fn a_module_named_extism_host_user_supplies_functions() {
    let m = Manifest::new([
        Wasm::data(MATH.as_bytes().to_vec()).with_name("extism:host/user"),
        Wasm::data(main_using("extism:host/user").into_bytes()).with_name("main"),
    ]);
    let mut p = Plugin::new(m, [], false).unwrap();
    assert_eq!(p.call::<_, u64>("run", "abc").unwrap(), 6);
}

#[test]
fn dependencies_are_ordered_and_can_use_the_abi() {
    // `helper` imports `math`, `main` imports `helper`; listed in the "wrong" order.
    let helper = String::from(
        r#"(module (import "math" "double" (func $double (param i64) (result i64)))
           (import "extism:host/env" "input_length" (func $len (result i64)))
           (func (export "double") (param i64) (result i64) (i64.add (call $double (local.get 0)) (call $len))))"#,
    );
    let m = Manifest::new([
        Wasm::data(main_using("helper").into_bytes()),
        Wasm::data(helper.into_bytes()).with_name("helper"),
        Wasm::data(MATH.as_bytes().to_vec()).with_name("math"),
    ]);
    let mut p = Plugin::new(m, [], false).unwrap();
    // double(4) + input_length(4) = 12
    assert_eq!(p.call::<_, u64>("run", "four").unwrap(), 12);
}

#[test]
fn link_errors_name_the_problem() {
    let m = Manifest::new([
        Wasm::data(b"(module)".to_vec()).with_name("math"),
        Wasm::data(main_using("math").into_bytes()),
    ]);
    let err = Plugin::new(m, [], false).unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(
        err.to_string().contains("does not export `double`"),
        "{err}"
    );

    let a = r#"(module (import "b" "f" (func)) (func (export "f")))"#;
    let b = r#"(module (import "a" "f" (func)) (func (export "f")))"#;
    let m = Manifest::new([
        Wasm::data(a.as_bytes().to_vec()).with_name("a"),
        Wasm::data(b.as_bytes().to_vec()).with_name("b"),
        Wasm::data(wat("").into_bytes()),
    ]);
    let err = Plugin::new(m, [], false).unwrap_err();
    assert!(err.to_string().contains("cycle"), "{err}");
}

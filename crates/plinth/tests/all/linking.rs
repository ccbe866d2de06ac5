//! Multi-module manifests: modules import each other by name, and a module named
//! `extism:host/user` supplies "host" functions written in wasm.

use crate::common;
use crate::common::wat;
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
}

// Modules that import each other in a cycle (item 6 of the Extism-parity issue).

/// `lhs` imports `rhs.add_one`, `rhs` imports `lhs.mul_two`.
const LHS: &str = r#"(module
  (import "rhs" "add_one" (func $add_one (param i64) (result i64)))
  (func (export "mul_two") (param i64) (result i64) (i64.mul (local.get 0) (i64.const 2)))
  (func (export "mul_then_add") (param i64) (result i64)
    (call $add_one (i64.mul (local.get 0) (i64.const 2)))))"#;
const RHS: &str = r#"(module
  (import "lhs" "mul_two" (func $mul_two (param i64) (result i64)))
  (func (export "add_one") (param i64) (result i64) (i64.add (local.get 0) (i64.const 1)))
  (func (export "add_then_mul") (param i64) (result i64)
    (call $mul_two (i64.add (local.get 0) (i64.const 1)))))"#;

/// Calls both: outputs `lhs.mul_then_add(n) * 1000 + rhs.add_then_mul(n)`, n = input length.
fn main_calling_lhs_and_rhs() -> String {
    format!(
        r#"(module
          (import "lhs" "mul_then_add" (func $mul_then_add (param i64) (result i64)))
          (import "rhs" "add_then_mul" (func $add_then_mul (param i64) (result i64)))
          {}
          (memory (export "memory") 1)
          (func (export "run") (result i32)
            (call $output_i64
              (i64.add (i64.mul (call $mul_then_add (call $input_length)) (i64.const 1000))
                       (call $add_then_mul (call $input_length))))
            (i32.const 0)))"#,
        common::PRELUDE
    )
}

fn named(wat: &str, name: &str) -> Wasm {
    Wasm::data(wat.as_bytes().to_vec()).with_name(name)
}

#[test]
fn modules_that_import_each_other_call_both_ways_in_either_manifest_order() {
    // Whichever comes first in the manifest is instantiated first and gets the late-bound
    // import, so both orders exercise a trampoline on a different side.
    for order in [[LHS, RHS], [RHS, LHS]] {
        let names = if order[0] == LHS {
            ["lhs", "rhs"]
        } else {
            ["rhs", "lhs"]
        };
        let m = Manifest::new([
            named(order[0], names[0]),
            named(order[1], names[1]),
            Wasm::data(main_calling_lhs_and_rhs().into_bytes()),
        ]);
        let mut p = Plugin::new(m, [], false).unwrap();
        // n = 5: lhs: 5 * 2 + 1 = 11; rhs: (5 + 1) * 2 = 12.
        assert_eq!(
            p.call::<_, u64>("run", "12345").unwrap(),
            11_012,
            "{names:?}"
        );
        // n = 0: lhs: 1; rhs: 2. Calls through the trampoline keep working.
        assert_eq!(p.call::<_, u64>("run", "").unwrap(), 1_002, "{names:?}");
        // A second instance gets trampolines of its own, bound to its own modules.
        let mut q = p.compiled().instantiate().unwrap();
        assert_eq!(q.call::<_, u64>("run", "123").unwrap(), 7_008, "{names:?}");
    }
}

/// Module `me` in a cycle `a -> b -> c -> a`: `step(n)` is 0 for n = 0, else `weight` plus
/// the next module's `step(n - 1)`.
fn stepper(next: &str, weight: i64) -> String {
    format!(
        r#"(module
          (import "{next}" "step" (func $next (param i64) (result i64)))
          (func (export "step") (param i64) (result i64)
            (if (result i64) (i64.eqz (local.get 0))
              (then (i64.const 0))
              (else (i64.add (i64.const {weight})
                             (call $next (i64.sub (local.get 0) (i64.const 1))))))))"#
    )
}

fn main_calling_a_step() -> String {
    format!(
        r#"(module
          (import "a" "step" (func $step (param i64) (result i64)))
          {}
          (memory (export "memory") 1)
          (func (export "run") (result i32)
            (call $output_i64 (call $step (call $input_length))) (i32.const 0)))"#,
        common::PRELUDE
    )
}

#[test]
fn a_three_module_cycle_links_and_recurses_through_it() {
    let (a, b, c) = (stepper("b", 1), stepper("c", 10), stepper("a", 100));
    for modules in [
        [(&a, "a"), (&b, "b"), (&c, "c")],
        [(&c, "c"), (&a, "a"), (&b, "b")],
    ] {
        let m = Manifest::new([
            named(modules[0].0, modules[0].1),
            named(modules[1].0, modules[1].1),
            named(modules[2].0, modules[2].1),
            Wasm::data(main_calling_a_step().into_bytes()),
        ]);
        let mut p = Plugin::new(m, [], false).unwrap();
        // 7 steps from a: a b c a b c a.
        assert_eq!(p.call::<_, u64>("run", "1234567").unwrap(), 3 + 20 + 200);
        // 300 steps: 100 times round the cycle, a third of the calls through a trampoline.
        let input = vec![b'x'; 300];
        assert_eq!(p.call::<_, u64>("run", input).unwrap(), 11_100);
    }
}

#[test]
fn endless_recursion_through_a_cycle_traps_and_the_plugin_recovers() {
    // `lhs.ping` and `rhs.pong` call each other for ever, but stop when the input is short.
    let lhs = r#"(module
      (import "rhs" "pong" (func $pong (param i64) (result i64)))
      (func (export "ping") (param i64) (result i64)
        (if (result i64) (i64.lt_u (local.get 0) (i64.const 2))
          (then (local.get 0))
          (else (i64.add (i64.const 1) (call $pong (local.get 0)))))))"#;
    let rhs = r#"(module
      (import "lhs" "ping" (func $ping (param i64) (result i64)))
      (func (export "pong") (param i64) (result i64) (call $ping (local.get 0))))"#;
    let main = format!(
        r#"(module
          (import "lhs" "ping" (func $ping (param i64) (result i64)))
          {}
          (memory (export "memory") 1)
          (func (export "run") (result i32)
            (call $output_i64 (call $ping (call $input_length))) (i32.const 0)))"#,
        common::PRELUDE
    );
    let m = Manifest::new([
        named(lhs, "lhs"),
        named(rhs, "rhs"),
        Wasm::data(main.into_bytes()),
    ]);
    let mut p = Plugin::new(m, [], false).unwrap();
    let err = p.call::<_, u64>("run", "forever").unwrap_err();
    assert!(matches!(err, Error::Trap { .. }), "{err:?}");
    assert!(err.to_string().contains("call stack exhausted"), "{err}");
    // The broken instance is replaced.
    assert_eq!(p.call::<_, u64>("run", "1").unwrap(), 1);
}

#[test]
fn a_cycle_through_memory_and_global_imports_is_refused_naming_them() {
    let lhs = r#"(module
      (import "rhs" "memory" (memory 1))
      (global (export "base") i32 (i32.const 16)))"#;
    let rhs = r#"(module
      (import "lhs" "base" (global i32))
      (memory (export "memory") 1))"#;
    let m = Manifest::new([
        named(lhs, "lhs"),
        named(rhs, "rhs"),
        Wasm::data(wat("").into_bytes()),
    ]);
    let err = Plugin::new(m, [], false).unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    let text = err.to_string();
    for part in [
        "`lhs`, `rhs` import each other in a cycle",
        "only works for functions",
        "`lhs` imports memory `rhs::memory`",
        "`rhs` imports global `lhs::base`",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
}

#[test]
fn a_cycle_closed_by_one_function_import_may_also_share_memory() {
    // `lhs` needs `rhs`'s memory at instantiation, so `rhs` goes first although listed second,
    // and its import of `lhs.triple_into` is the late-bound one.
    let lhs = r#"(module
      (import "rhs" "memory" (memory 1))
      (func (export "triple_into") (param i64)
        (i64.store (i32.const 8) (i64.mul (local.get 0) (i64.const 3)))))"#;
    let rhs = r#"(module
      (import "lhs" "triple_into" (func $triple_into (param i64)))
      (memory (export "memory") 1)
      (func (export "double") (param i64) (result i64)
        (call $triple_into (local.get 0)) (i64.load (i32.const 8))))"#;
    let m = Manifest::new([
        named(lhs, "lhs"),
        named(rhs, "rhs"),
        Wasm::data(main_using("rhs").into_bytes()),
    ]);
    let mut p = Plugin::new(m, [], false).unwrap();
    assert_eq!(p.call::<_, u64>("run", "abcd").unwrap(), 12);
}

#[test]
fn a_cycle_with_mismatched_function_types_is_refused_at_load() {
    let lhs = r#"(module
      (import "rhs" "add_one" (func (param i32) (result i32)))
      (func (export "mul_two") (param i64) (result i64) (local.get 0)))"#;
    let m = Manifest::new([
        named(lhs, "lhs"),
        named(RHS, "rhs"),
        Wasm::data(wat("").into_bytes()),
    ]);
    let err = Plugin::new(m, [], false).unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(
        err.to_string().contains(
            "module `lhs` imports `rhs::add_one` as a function (i32) -> (i32), but module `rhs` exports it as (i64) -> (i64)"
        ),
        "{err}"
    );
}

#[test]
fn a_start_function_calling_into_a_module_not_yet_instantiated_fails_clearly() {
    // `lhs` calls `rhs.add_one` from its start function; listed first, it is instantiated
    // before `rhs` exists.
    let lhs = r#"(module
      (import "rhs" "add_one" (func $add_one (param i64) (result i64)))
      (global $seed (mut i64) (i64.const 0))
      (func $start (global.set $seed (call $add_one (i64.const 41))))
      (start $start)
      (func (export "mul_two") (param i64) (result i64) (i64.mul (local.get 0) (i64.const 2)))
      (func (export "double") (param i64) (result i64) (i64.add (global.get $seed) (local.get 0))))"#;
    let manifest = |first: (&str, &str), second: (&str, &str)| {
        Manifest::new([
            named(first.0, first.1),
            named(second.0, second.1),
            Wasm::data(main_using("lhs").into_bytes()),
        ])
    };
    let err = Plugin::new(manifest((lhs, "lhs"), (RHS, "rhs")), [], false).unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("module `lhs` called `rhs::add_one` before module `rhs` was instantiated"),
        "{err}"
    );
    assert!(err.to_string().contains("list `rhs` before `lhs`"), "{err}");

    // The host keeps serving: the advice works, and so does another cyclic plug-in.
    let mut p = Plugin::new(manifest((RHS, "rhs"), (lhs, "lhs")), [], false).unwrap();
    assert_eq!(p.call::<_, u64>("run", "abc").unwrap(), 42 + 3);
    let m = Manifest::new([
        named(LHS, "lhs"),
        named(RHS, "rhs"),
        Wasm::data(main_calling_lhs_and_rhs().into_bytes()),
    ]);
    let mut q = Plugin::new(m, [], false).unwrap();
    assert_eq!(q.call::<_, u64>("run", "12345").unwrap(), 11_012);
}

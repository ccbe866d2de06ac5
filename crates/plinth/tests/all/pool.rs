//! `PluginPool`: many threads, one plug-in, no instance management by the caller.

use crate::common;

use std::sync::{Arc, Barrier, OnceLock};

use plinth::{CompiledPlugin, Error, Function, PluginPool, UserData, PTR};

fn echo_pool(max: usize) -> PluginPool {
    let compiled = CompiledPlugin::new(common::echo_wat().as_bytes(), [], false).unwrap();
    PluginPool::new(compiled, max)
}

#[test]
fn threads_share_a_bounded_pool_and_get_their_own_output() {
    let pool = echo_pool(3);
    assert_eq!(pool.instances(), 0, "instances are made on demand");
    let threads = 6;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (pool, start) = (pool.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..300 {
                    let input = format!("thread {t} call {i} {}", "x".repeat(i % 97));
                    assert_eq!(pool.call("echo", input.as_str()).unwrap(), input.as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(
        pool.instances() >= 1 && pool.instances() <= 3,
        "{}",
        pool.instances()
    );
}

#[test]
fn one_caller_reuses_one_instance() {
    let pool = echo_pool(8);
    for _ in 0..50 {
        assert_eq!(pool.call("echo", "hi").unwrap(), b"hi");
    }
    assert_eq!(pool.instances(), 1);
    assert_eq!(pool.max_instances(), 8);
    assert_eq!(
        PluginPool::new(pool.compiled().clone(), 0).max_instances(),
        1
    );
}

#[test]
fn errors_come_back_and_the_instance_serves_again() {
    let pool = echo_pool(1);
    assert!(matches!(
        pool.call("nope", "x"),
        Err(Error::FunctionNotFound { .. })
    ));
    assert_eq!(pool.call("echo", "still here").unwrap(), b"still here");
    assert_eq!(pool.instances(), 1);
}

#[test]
fn a_failing_instantiation_does_not_use_up_the_pool() {
    // The start function traps: every instantiation fails.
    let wat = r#"(module (func $boom unreachable) (start $boom) (func (export "run")))"#;
    // Compiling does not instantiate, so this succeeds; each instance then fails.
    let compiled = CompiledPlugin::new(wat.as_bytes(), [], false).unwrap();
    let pool = PluginPool::new(compiled, 1);
    for _ in 0..3 {
        assert!(pool.call("run", "").is_err());
    }
    assert_eq!(pool.instances(), 0);
}

#[test]
fn a_host_function_calling_back_into_its_pool_is_refused() {
    let pool_slot: UserData<OnceLock<PluginPool>> = UserData::new(OnceLock::new());
    let reenter = Function::new(
        "reenter",
        [PTR],
        [PTR],
        pool_slot.clone(),
        |_, inputs, outputs, slot| {
            let pool = slot.lock().get().unwrap().clone();
            let err = pool.call("run", "again").unwrap_err();
            assert!(matches!(err, Error::Reentrant { .. }), "{err}");
            outputs[0] = inputs[0];
            Ok(())
        },
    );
    let wat = r#"(module
        (import "extism:host/user" "reenter" (func $reenter (param i64) (result i64)))
        (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
        (import "extism:host/env" "length" (func $length (param i64) (result i64)))
        (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
        (memory 1)
        (func (export "run") (result i32) (local $h i64)
          (local.set $h (call $reenter (call $input_offset)))
          (call $output_set (local.get $h) (call $length (local.get $h)))
          (i32.const 0)))"#;
    let compiled = CompiledPlugin::new(wat.as_bytes(), [reenter], false).unwrap();
    let pool = PluginPool::new(compiled, 4);
    pool_slot.lock().set(pool.clone()).ok().unwrap();
    assert_eq!(pool.call("run", "once").unwrap(), b"once");
    assert_eq!(pool.instances(), 1, "the refused call made no instance");
}

#[test]
fn an_instance_that_panicked_mid_use_is_replaced_not_reused() {
    let pool = echo_pool(1);
    pool.with(|p| p.var_set("marker", Some(b"set"))).unwrap();
    // A panic while the instance is lent (in the caller's closure here; the same holds for a
    // panic inside Plinth mid-call) poisons the slot.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.with(|_| -> plinth::Result<()> { panic!("mid-call") })
    }));
    assert!(panicked.is_err());
    // The next caller gets a fresh instance: the marker var is gone, and it serves.
    let marker = pool
        .with(|p| Ok(p.var_get("marker").map(<[u8]>::to_vec)))
        .unwrap();
    assert_eq!(marker, None, "the panicked instance was reused");
    assert_eq!(pool.call("echo", "after").unwrap(), b"after");
    assert_eq!(pool.instances(), 1);
}

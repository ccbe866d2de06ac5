//! Memory budget, timeouts, fuel and cancellation; the plug-in keeps working afterwards.

mod common;
use std::time::{Duration, Instant};

use common::{echo_wat, wat};
use plinth::{Error, Manifest, Plugin, Wasm};

fn module(body: &str) -> Wasm {
    Wasm::data(wat(body).into_bytes())
}

const LOOP_AND_ECHO: &str = r#"
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "echo") (result i32) (call $echo_input) (i32.const 0))"#;

const GROW_AND_ECHO: &str = r#"
  (func (export "grow") (result i32)
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)
  (func (export "grow_once") (result i32)
    (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable)) (i32.const 0))
  (func (export "echo") (result i32) (call $echo_input) (i32.const 0))"#;

#[test]
fn memory_growth_past_max_pages_is_out_of_memory() {
    let m = Manifest::new([module(GROW_AND_ECHO)]).with_memory_max(8);
    let mut p = Plugin::new(m, [], false).unwrap();
    let err = p.call::<_, &[u8]>("grow", "").unwrap_err();
    match &err {
        Error::OutOfMemory { limit_pages, .. } => assert_eq!(*limit_pages, 8),
        e => panic!("expected OutOfMemory, got {e:?}"),
    }
    assert!(err.to_string().contains("max_pages"), "{err}");
    // A fresh instance replaces the spent one and works.
    assert_eq!(
        p.call::<_, &str>("echo", "still here").unwrap(),
        "still here"
    );
    let err = p.call::<_, &[u8]>("grow_once", "").unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
}

#[test]
fn extism_memory_counts_against_the_budget() {
    // 4 pages = 256 KiB; linear memory uses 1 page, so 1 MiB of input cannot fit.
    let m = Manifest::new([module(GROW_AND_ECHO)]).with_memory_max(4);
    let mut p = Plugin::new(m, [], false).unwrap();
    let big = vec![7u8; 1 << 20];
    let err = p.call::<_, &[u8]>("echo", &big[..]).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
    let small = vec![7u8; 50_000];
    assert_eq!(p.call::<_, Vec<u8>>("echo", &small[..]).unwrap(), small);
}

#[test]
fn no_budget_allows_large_io() {
    let mut p = Plugin::new(echo_wat().as_bytes(), [], false).unwrap();
    let big: Vec<u8> = (0..(4 << 20)).map(|i| (i % 251) as u8).collect();
    assert_eq!(p.call::<_, &[u8]>("echo", &big[..]).unwrap(), &big[..]);
}

#[test]
fn timeout_stops_an_infinite_loop() {
    let m = Manifest::new([module(LOOP_AND_ECHO)]).with_timeout(Duration::from_millis(100));
    let mut p = Plugin::new(m, [], false).unwrap();
    let start = Instant::now();
    let err = p.call::<_, &[u8]>("spin", "").unwrap_err();
    let took = start.elapsed();
    match &err {
        Error::Timeout { limit, function } => {
            assert_eq!(*limit, Duration::from_millis(100));
            assert_eq!(function, "spin");
        }
        e => panic!("expected Timeout, got {e:?}"),
    }
    assert!(
        took >= Duration::from_millis(100),
        "stopped early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(p.call::<_, &str>("echo", "after").unwrap(), "after");
    // The timeout applies per call, again.
    assert!(matches!(
        p.call::<_, &[u8]>("spin", "").unwrap_err(),
        Error::Timeout { .. }
    ));
}

#[test]
fn fuel_limits_work_per_call() {
    let src = wat(r#"
      (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
      (func (export "count") (param) (result i32) (local $i i32)
        (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
        (i32.const 0))"#);
    let mut p = Plugin::builder(src.as_bytes())
        .with_fuel_limit(100_000)
        .build()
        .unwrap();
    let err = p.call::<_, &[u8]>("spin", "").unwrap_err();
    match &err {
        Error::OutOfFuel { limit, .. } => assert_eq!(*limit, 100_000),
        e => panic!("expected OutOfFuel, got {e:?}"),
    }
    // Fuel is refilled for every call: many small calls each fit.
    for _ in 0..20 {
        p.call::<_, &[u8]>("count", "").unwrap();
    }
    let mut tight = Plugin::builder(src.as_bytes())
        .with_fuel_limit(500)
        .build()
        .unwrap();
    assert!(matches!(
        tight.call::<_, &[u8]>("count", "").unwrap_err(),
        Error::OutOfFuel { .. }
    ));
}

#[test]
fn cancel_from_another_thread() {
    let mut p = Plugin::new(wat(LOOP_AND_ECHO).as_bytes(), [], false).unwrap();
    let handle = p.cancel_handle();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        handle.cancel();
    });
    let start = Instant::now();
    let err = p.call::<_, &[u8]>("spin", "").unwrap_err();
    canceller.join().unwrap();
    assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // A cancel applies to the running call only.
    assert_eq!(p.call::<_, &str>("echo", "next").unwrap(), "next");
}

#[test]
fn cancel_while_idle_does_not_affect_the_next_call() {
    let mut p = Plugin::new(wat(LOOP_AND_ECHO).as_bytes(), [], false).unwrap();
    p.cancel_handle().cancel();
    assert_eq!(p.call::<_, &str>("echo", "fine").unwrap(), "fine");
}

#[test]
fn one_plugin_failing_does_not_disturb_another() {
    let m = Manifest::new([module(LOOP_AND_ECHO)]).with_timeout(Duration::from_millis(50));
    let mut bad = Plugin::new(m, [], false).unwrap();
    let mut good = Plugin::new(echo_wat().as_bytes(), [], false).unwrap();
    let t = std::thread::spawn(move || bad.call::<_, &[u8]>("spin", "").map(|_| ()).unwrap_err());
    for i in 0..100 {
        let s = i.to_string();
        assert_eq!(good.call::<_, &str>("echo", s.as_str()).unwrap(), s);
    }
    assert!(matches!(t.join().unwrap(), Error::Timeout { .. }));
}

/// Regression (found by the wasm_smith fuzzer): a 64-bit memory asking for nearly 2^64 bytes
/// overflowed the budget arithmetic. It must simply fail to grow, with or without a budget.
#[test]
fn a_huge_grow_of_a_64_bit_memory_fails_cleanly() {
    let wat = r#"(module (memory i64 3)
      (func (export "huge") (result i32)
        (if (i64.ne (memory.grow (i64.const 0xffff_ffff_fffe)) (i64.const -1)) (then unreachable))
        (i32.const 0))
      (func (export "small") (result i32)
        (if (i64.eq (memory.grow (i64.const 1)) (i64.const -1)) (then unreachable))
        (i32.const 0)))"#;
    for max_pages in [Some(16), None] {
        let mut m = Manifest::new([Wasm::data(wat.as_bytes().to_vec())]);
        if let Some(n) = max_pages {
            m = m.with_memory_max(n);
        }
        let mut p = Plugin::new(m, [], false).unwrap();
        let _ = p.call::<_, &[u8]>("huge", "");
        p.call::<_, &[u8]>("small", "")
            .unwrap_or_else(|e| panic!("max_pages {max_pages:?}: {e}"));
    }
}

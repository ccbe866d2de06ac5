//! Memory budget, timeouts, fuel and cancellation; the plug-in keeps working afterwards.

use std::time::{Duration, Instant};

use crate::common::{echo_wat, wat, PRELUDE};
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
    // 4 pages = 256 KiB of growth; 1 MiB of input needs Extism memory to grow by 16 pages.
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
    // A library error names what every host has (the manifest), not one program's flags.
    assert_eq!(
        err.to_string(),
        "`spin` timed out after 100 ms; raise the limit with `timeout_ms` in the manifest"
    );
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

/// A module with `pages` of linear memory (a Rust plug-in declares 17) and `body`.
fn module_with_memory(pages: u32, body: &str) -> Wasm {
    Wasm::data(
        format!("(module {PRELUDE} (memory (export \"memory\") {pages}) {body})").into_bytes(),
    )
}

const HEAP_ECHO: &str = r#"
  ;; Grows linear memory by 3 pages, as a PDK's heap does, copies the input there and outputs it.
  (func (export "echo") (result i32) (local $len i64) (local $i i64)
    (local.set $len (call $input_length))
    (if (i32.eq (memory.grow (i32.const 3)) (i32.const -1)) (then unreachable))
    (block $d (loop $l
      (br_if $d (i64.ge_u (local.get $i) (local.get $len)))
      (i64.store (i32.wrap_i64 (local.get $i)) (call $input_load_u64 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 8)))
      (br $l)))
    (call $output_set (call $copy_in (i32.const 0) (i32.wrap_i64 (local.get $len))) (local.get $len))
    (i32.const 0))
  ;; Grows linear memory a page at a time until refused; outputs how many pages it got.
  (func (export "grow_all") (result i32) (local $n i64)
    (block $d (loop $l
      (br_if $d (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
      (local.set $n (i64.add (local.get $n) (i64.const 1)))
      (br $l)))
    (call $output_i64 (local.get $n)) (i32.const 0))"#;

/// Extism parity: `--memory-max 17` with a 128 KiB input works for a plug-in that declares 17
/// pages. As in Extism, what the main module declares (and Extism memory's first page) is
/// checked against `max_pages` but not charged; growth after instantiation is.
#[test]
fn max_pages_charges_growth_after_instantiation_not_the_declared_memory() {
    let m = Manifest::new([module_with_memory(17, HEAP_ECHO)]).with_memory_max(17);
    let mut p = Plugin::new(m.clone(), [], false).unwrap();
    let input: Vec<u8> = (0..128 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(p.call::<_, Vec<u8>>("echo", &input[..]).unwrap(), input);

    // The budget is for growth: exactly 17 pages of it on a fresh instance.
    let mut fresh = Plugin::new(m, [], false).unwrap();
    assert_eq!(fresh.call::<_, u64>("grow_all", "").unwrap(), 17);

    // What the module declares must still fit in the budget, as in Extism.
    let m = Manifest::new([module_with_memory(18, HEAP_ECHO)]).with_memory_max(17);
    let err = Plugin::new(m, [], false).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfMemory {
                limit_pages: 17,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Regression: a refused growth made any later failure of the call be reported as out of
/// memory. Only what a refusal leads to is: an abort, or a host function that could not place
/// its data, while nothing has grown since.
#[test]
fn only_what_a_refused_growth_leads_to_is_out_of_memory() {
    let body = r#"
      (func (export "refused_then_abort") (result i32)
        (drop (memory.grow (i32.const 1000))) unreachable)
      (func (export "refused_then_divide_by_zero") (result i32)
        (drop (memory.grow (i32.const 1000)))
        (drop (i32.div_u (i32.const 1) (i32.const 0))) (i32.const 0))
      (func (export "refused_then_grown_then_abort") (result i32)
        (drop (memory.grow (i32.const 1000)))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then (return (i32.const 1))))
        unreachable)
      (func (export "refused_then_var_over_its_cap") (result i32)
        (drop (memory.grow (i32.const 1000)))
        (call $var_set (call $copy_in (i32.const 0) (i32.const 1))
                       (call $copy_in (i32.const 0) (i32.const 100)))
        (i32.const 0))
      (func (export "input_over_budget") (result i32) (i32.const 0))"#;
    let m = Manifest::new([module(body)])
        .with_memory_max(4)
        .with_var_max(16);
    let mut p = Plugin::new(m, [], false).unwrap();
    let err = p.call::<_, &[u8]>("refused_then_abort", "").unwrap_err();
    assert!(
        matches!(err, Error::OutOfMemory { limit_pages: 4, .. }),
        "{err:?}"
    );
    let err = p
        .call::<_, &[u8]>("refused_then_divide_by_zero", "")
        .unwrap_err();
    match &err {
        Error::Trap { message, .. } => {
            assert!(message.contains("divide by zero"), "{message}");
            // The refusal is mentioned, not blamed.
            assert!(message.contains("refused"), "{message}");
        }
        e => panic!("expected a divide-by-zero trap, got {e:?}"),
    }
    let err = p
        .call::<_, &[u8]>("refused_then_grown_then_abort", "")
        .unwrap_err();
    assert!(matches!(err, Error::Trap { .. }), "{err:?}");
    let err = p
        .call::<_, &[u8]>("refused_then_var_over_its_cap", "")
        .unwrap_err();
    assert!(matches!(err, Error::VarStoreFull { .. }), "{err:?}");
    // An input over the budget is still out of memory, and the plug-in works afterwards.
    let big = vec![1u8; 1 << 20];
    let err = p
        .call::<_, &[u8]>("input_over_budget", &big[..])
        .unwrap_err();
    assert!(
        matches!(err, Error::OutOfMemory { limit_pages: 4, .. }),
        "{err:?}"
    );
    assert!(p.call::<_, &[u8]>("input_over_budget", "small").is_ok());
}

const GROW_TABLE: &str = r#"
  (table $t 0 funcref)
  ;; Grows linear memory by $pages, then the table 1024 elements at a time until refused;
  ;; outputs how many elements it got.
  (func (export "grow_table") (result i32) (local $pages i32) (local $n i64)
    (local.set $pages (i32.wrap_i64 (call $input_length)))
    (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1)) (then unreachable))
    (block $d (loop $l
      (br_if $d (i32.eq (table.grow $t (ref.null func) (i32.const 1024)) (i32.const -1)))
      (local.set $n (i64.add (local.get $n) (i64.const 1024)))
      (br $l)))
    (call $output_i64 (local.get $n)) (i32.const 0))"#;

/// Sandbox issue: tables took host memory outside the budget. Table growth is charged to
/// `max_pages` with memory growth, at 8 bytes an element; without a budget, all tables
/// together hold at most 2^20 elements.
#[test]
fn table_growth_is_charged_to_max_pages() {
    let budgeted = || {
        Plugin::new(
            Manifest::new([module(GROW_TABLE)]).with_memory_max(16),
            [],
            false,
        )
        .unwrap()
    };
    // 16 pages = 1 MiB = 131072 elements of 8 bytes.
    assert_eq!(
        budgeted().call::<_, u64>("grow_table", "").unwrap(),
        131_072
    );
    // Memory and tables share the budget: after 8 pages of memory, 8 pages of table are left.
    let eight_pages = [0u8; 8];
    assert_eq!(
        budgeted()
            .call::<_, u64>("grow_table", &eight_pages[..])
            .unwrap(),
        65_536
    );
    let mut unbudgeted = Plugin::new(Manifest::new([module(GROW_TABLE)]), [], false).unwrap();
    assert_eq!(
        unbudgeted.call::<_, u64>("grow_table", "").unwrap(),
        1 << 20
    );
}

/// `with_instance_memory_max` keeps Plinth's earlier, stricter accounting as an option: one
/// limit on everything the instance holds, from the first byte.
#[test]
fn the_instance_memory_limit_counts_everything_from_the_first_byte() {
    let load = |pages: u32, max: u32| {
        Plugin::builder(Manifest::new([module_with_memory(pages, HEAP_ECHO)]))
            .with_instance_memory_max(max)
            .build()
    };
    // 17 pages of linear memory and Extism memory's first page: 18 in all.
    let err = load(17, 17).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfMemory {
                limit_pages: 17,
                ..
            }
        ),
        "{err:?}"
    );
    let mut p = load(17, 21).unwrap();
    // The echo grows linear memory by 3 pages: 21, the limit.
    assert_eq!(p.call::<_, &str>("echo", "hi").unwrap(), "hi");
    // Then a 64 KiB input needs Extism memory to grow as well.
    let input = vec![3u8; 65536];
    let err = p.call::<_, &[u8]>("echo", &input[..]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfMemory {
                limit_pages: 21,
                ..
            }
        ),
        "{err:?}"
    );
    // Tables count too: 8192 elements are one page.
    let with_table = |max: u32| {
        Plugin::builder(Manifest::new([Wasm::data(
            &br#"(module (memory 1) (table 8192 funcref) (func (export "f")))"#[..],
        )]))
        .with_instance_memory_max(max)
        .build()
    };
    // 1 page of memory, 1 of Extism memory (made by the host: the module is not fused), 1 of table.
    assert!(matches!(
        with_table(2).unwrap_err(),
        Error::OutOfMemory { limit_pages: 2, .. }
    ));
    with_table(3).unwrap();
}

/// `_initialize` counts up to 2,000 (about 20,000 units of fuel); `count` too.
const SLOW_START: &str = r#"
  (func $count (local $i i32)
    (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (br_if $l (i32.lt_u (local.get $i) (i32.const 2000)))))
  (func (export "_initialize") (call $count))
  (func (export "count") (result i32) (call $count) (i32.const 0))"#;

/// Extism 1.41: making an instance ready has a fuel budget of its own, so the start-up
/// exports do not use up the first call's fuel, and a host can give them more (or less).
#[test]
fn initialization_has_its_own_fuel_budget() {
    let cost = {
        let mut p = Plugin::builder(wat(SLOW_START).as_bytes())
            .with_fuel_limit(1_000_000)
            .build()
            .unwrap();
        p.call::<_, &[u8]>("count", "").unwrap();
        p.fuel_consumed().unwrap()
    };
    // Enough for the call, not for the call and the start-up together.
    let limit = cost + cost / 2;
    let mut p = Plugin::builder(wat(SLOW_START).as_bytes())
        .with_fuel_limit(limit)
        .build()
        .unwrap();
    p.call::<_, &[u8]>("count", "").unwrap();
    assert_eq!(p.fuel_consumed(), Some(cost));

    // A smaller initialization budget stops `_initialize`, and says which limit it was.
    let mut p = Plugin::builder(wat(SLOW_START).as_bytes())
        .with_fuel_limit(limit)
        .with_initialization_fuel_limit(cost / 2)
        .build()
        .unwrap();
    match p.call::<_, &[u8]>("count", "").unwrap_err() {
        Error::OutOfFuel { limit: l, .. } => assert_eq!(l, cost / 2),
        e => panic!("expected OutOfFuel, got {e:?}"),
    }
    // A larger one lets a start function do more than a call may.
    let start = SLOW_START.replace("(export \"_initialize\")", "")
        + "(start $slow) (func $slow (call $count) (call $count) (call $count))";
    let tight = |init: Option<u64>| {
        let b = Plugin::builder(wat(&start).as_bytes()).with_fuel_limit(limit);
        match init {
            Some(f) => b.with_initialization_fuel_limit(f),
            None => b,
        }
        .build()
    };
    assert!(matches!(tight(None).unwrap_err(), Error::OutOfFuel { .. }));
    tight(Some(10 * cost))
        .unwrap()
        .call::<_, &[u8]>("count", "")
        .unwrap();

    // Without a call limit there is no metering, so an initialization limit is refused.
    let err = Plugin::builder(wat(SLOW_START).as_bytes())
        .with_initialization_fuel_limit(1000)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("with_fuel_limit"), "{err}");
}

//! The hostile plug-in suite: each case gets a clear error of the right kind, and then the
//! host serves a normal call on a shared echo plug-in in the same process
//! ([`host_still_serves`]). (It was two files, `hostile.rs` and `hostile_suite.rs`; their
//! cases are here once each.)
//!
//! Cases tested in other modules are not repeated here. Where each part of the list is
//! covered (module names are those of `tests/all` unless a path is given):
//! - Infinite loop: timeout, cancel from another thread, fuel: `limits`. Here: loops and
//!   recursion in a start function (timeout, fuel, cancel, vars kept), tail-call and
//!   import-calling loops, an atomic wait on a shared memory.
//! - Memory growth past `max_pages`: `limits`. Here: one huge alloc (`u64::MAX`, 4 GiB,
//!   1 GiB over a budget), a million 1-byte allocs under a budget, 1 GiB of output, initial
//!   memories and tables over the limits.
//! - Traps and deep recursion: here (the cause is reported, the instance replaced, the stack
//!   overflow is a trap with a trimmed backtrace).
//! - Bogus handles (0, past the end, inside a block, `u64::MAX`, the reserved bytes) to every
//!   import that takes one, for fused and unfused (legacy `env`) modules: here; negative and
//!   huge `output_set`, `error_set` with non-UTF-8 bytes or a handle that is no block: here.
//! - `var_set` beyond `max_var_bytes`: `abi` (`var_store_is_capped`). Here: thousands of
//!   vars, with and without a cap, and a key that is not UTF-8.
//! - HTTP to a host not allowed, with a glob, redirects to a host not allowed, a response over
//!   the cap, a slow server: `http`. Here: a server that never answers, a redirect loop,
//!   `file://` targets, hosts disguised in URLs, a response over the memory budget.
//! - WASI reading outside the preopens, `..` and symlink escapes, writing to a read-only
//!   mount: `wasi`. Here: sockets, stdin, environment and arguments, symlinks and hard
//!   links the plug-in makes, renaming a file out, deleting and creating on a read-only mount.
//! - A hash mismatch and an unknown top-level field: `manifest_load`; unknown fields and wrong
//!   types at parse level: `crates/manifest/tests/manifest.rs`. Here, all through
//!   `Plugin::new`: missing and mistyped imports, malformed, empty, truncated and mislabelled
//!   binaries, a module that only fusing would make valid, a fused ABI import with the wrong
//!   type, nested unknown fields and wrong types in JSON and TOML, exports that do not exist
//!   or cannot be called.
//! - Precompiled artifacts (native code from disk): altered bytes, another key, another
//!   module, another engine, key files open to others: `artifacts`; the CLI's tests.
//! - Direct input and output (`plinth_input_buffer`, `output_direct`): buffers and outputs
//!   outside memory, a buffer export that traps: `bulk_copy`.
//! - A full instance pool and modules a pool slot cannot hold: `crates/plinth/tests/instance_pooling.rs`.
//! - A re-entrant call and a panicking host function: `host_functions`. Here: a panic with
//!   a non-string payload while holding the user data's lock.
//! - Async calls: the async path's own cases are here (a looping plug-in under a timeout
//!   that yields to other tasks, a host future that never completes, one that panics, a
//!   WASI sleep past the deadline); timeouts and cancels while a host function awaits, and
//!   dropped calls: `async_calls`.
//! - Streams (`stream_read`/`stream_write`, `http_stream_*`): ranges, lengths, handles, a
//!   failing or endless reader, a writer that stops, the output limit, timeouts while blocked,
//!   too many open HTTP streams: `streaming` and `http_streams`. Here: random pointers,
//!   lengths and handles to every stream function in classic and streaming calls; a PDK
//!   stream export of another type; endless input to a plug-in that does not stream.
//! - The sandbox issue's defects, where each is proved (the rest are here):
//!   - compiling: a deep call chain, compile limits, splicing within its budget (here);
//!   - the disk cache: swapped entries, untrusted directories and keys, the size bound:
//!     `compile_cache` and the disk cache's unit tests;
//!   - deadlines: WASI sleeps, host functions and allocations past the deadline, cancel while
//!     asleep: `deadlines`;
//!   - tables and 64-bit memories against the budget: here; Extism's `max_pages` accounting
//!     and what a refused growth leads to: `limits`;
//!   - HTTP: one deadline per request, `Host` headers, `host:port` and `[::1]` entries,
//!     credentials and bodies across redirects, cancel during a request: `http`;
//!     manifest URLs that never answer, trickle or are too big: `crates/manifest/tests`;
//!   - plug-in text on the terminal and in logs: `crates/cli/tests/cli.rs` and
//!     `crates/plinth/tests/logging.rs`; libplinth's log buffer and argument checks:
//!     `crates/capi/tests`;
//!   - fused and host ABI agreeing: `abi` (`fused_and_host_functions_agree_on_random_programs`),
//!     `bulk_copy` and the `fused_vs_host` fuzz target; a pool slot poisoned by a panic:
//!     `pool`.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::common::{echo_wat, wat, within, HttpServer, PRELUDE};
use plinth::{Error, Function, Manifest, Plugin, SharedPlugin, UserData, ValType, Wasm};

/// One echo plug-in for the whole process: every case ends by calling it.
fn host_still_serves() {
    static ECHO: OnceLock<SharedPlugin> = OnceLock::new();
    static N: AtomicU64 = AtomicU64::new(0);
    let echo = ECHO
        .get_or_init(|| SharedPlugin::new(Plugin::new(echo_wat().as_bytes(), [], false).unwrap()));
    let msg = format!("still serving {}", N.fetch_add(1, Ordering::Relaxed));
    assert_eq!(echo.call("echo", msg.as_str()).unwrap(), msg.as_bytes());
}

fn module(body: &str) -> Wasm {
    Wasm::data(wat(body).into_bytes())
}

fn load(m: Manifest) -> Plugin {
    Plugin::new(m, [], false).expect("plug-in loads")
}

// ---------------------------------------------------------------------------------------
// Traps

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
    host_still_serves();
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
    host_still_serves();
}

// ---------------------------------------------------------------------------------------
// Infinite loops

const SPIN_AT_START: &str = r#"
  (func $spin (loop $l (br $l)))
  (start $spin)
  (func (export "echo") (result i32) (call $echo_input) (i32.const 0))"#;

#[test]
fn start_function_loop_times_out() {
    // Regression: the start function ran with no deadline, so Plugin::new hung for ever.
    let err = within(Duration::from_secs(10), || {
        let m = Manifest::new([module(SPIN_AT_START)]).with_timeout(Duration::from_millis(100));
        Plugin::new(m, [], false).unwrap_err()
    });
    match &err {
        Error::Timeout { function, limit } => {
            assert_eq!(function, "(instantiation)");
            assert_eq!(*limit, Duration::from_millis(100));
        }
        e => panic!("expected Timeout, got {e:?}"),
    }
    host_still_serves();
}

#[test]
fn start_function_loop_runs_out_of_fuel() {
    let err = within(Duration::from_secs(10), || {
        Plugin::builder(Manifest::new([module(SPIN_AT_START)]))
            .with_fuel_limit(50_000)
            .build()
            .unwrap_err()
    });
    assert!(
        matches!(&err, Error::OutOfFuel { limit: 50_000, function } if function == "(instantiation)"),
        "{err:?}"
    );
    host_still_serves();
}

#[test]
fn start_function_recursion_is_a_clean_error() {
    let err = within(Duration::from_secs(30), || {
        let m = Manifest::new([module(
            r#"(func $down (param i64) (result i64) (call $down (i64.add (local.get 0) (i64.const 1))))
               (func $start (drop (call $down (i64.const 0))))
               (start $start)"#,
        )]);
        Plugin::new(m, [], false).unwrap_err()
    });
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(err.to_string().contains("call stack exhausted"), "{err}");
    host_still_serves();
}

#[test]
fn loop_at_reinstantiation_can_be_cancelled_and_vars_survive() {
    // The start function spins in every instance after the first one, so the replacement
    // instance made after a trap hangs in instantiation until it is cancelled.
    let instances = UserData::new(0u32);
    let next = Function::new(
        "spin_next",
        [],
        [ValType::I32],
        instances,
        |_, _, out, n| {
            *n.lock() += 1;
            out[0] = plinth::Val::I32((*n.lock() > 1) as i32);
            Ok(())
        },
    );
    let src = format!(
        r#"(module (import "extism:host/user" "spin_next" (func $spin_next (result i32)))
             {PRELUDE} (memory (export "memory") 1)
             (func $start (if (call $spin_next) (then (loop $l (br $l)))))
             (start $start)
             (func (export "boom") (result i32) unreachable)
             (func (export "echo") (result i32) (call $echo_input) (i32.const 0)))"#
    );
    let mut p = Plugin::new(src.as_bytes(), [next], false).unwrap();
    p.var_set("kept", Some(b"yes")).unwrap();
    assert!(matches!(
        p.call::<_, &[u8]>("boom", "").unwrap_err(),
        Error::Trap { .. }
    ));
    let cancel = p.cancel_handle();
    let done = Arc::new(AtomicBool::new(false));
    let canceller = {
        let done = done.clone();
        std::thread::spawn(move || {
            // Keeps cancelling: a cancel that lands before the call starts is discarded.
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                cancel.cancel();
            }
        })
    };
    let err = within(Duration::from_secs(10), move || {
        let err = p.call::<_, &[u8]>("echo", "x").unwrap_err();
        (err, p)
    });
    done.store(true, Ordering::SeqCst);
    canceller.join().unwrap();
    let (err, p) = err;
    assert!(
        matches!(&err, Error::Cancelled { function } if function == "(instantiation)"),
        "{err:?}"
    );
    // Regression: a failed instantiation used to drop the plug-in's vars.
    assert_eq!(p.var_get("kept"), Some(&b"yes"[..]));
    host_still_serves();
}

#[test]
fn tail_call_and_import_calling_loops_time_out() {
    let m = Manifest::new([module(
        r#"(func $again (return_call $again))
           (func (export "tail") (result i32) (call $again) (i32.const 0))
           (func (export "churn") (result i32)
             (loop $l (call $free (call $alloc (i64.const 64))) (br $l)) (i32.const 0))"#,
    )])
    .with_timeout(Duration::from_millis(50));
    let mut p = load(m);
    for f in ["tail", "churn"] {
        let start = Instant::now();
        let err = p.call::<_, &[u8]>(f, "").unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{f}: {err:?}");
        assert!(start.elapsed() < Duration::from_secs(5), "{f}");
    }
    host_still_serves();
}

#[test]
fn waiting_on_a_shared_memory_is_impossible() {
    // An atomic wait blocks inside wasmtime where no deadline reaches it; shared memories
    // are not enabled, so such a module does not load.
    let err = Plugin::new(
        r#"(module (memory 1 1 shared)
             (func (export "f") (result i32)
               (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1))) (i32.const 0)))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Link(_) | Error::Compile { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("shared memory"), "{err}");
    host_still_serves();
}

// ---------------------------------------------------------------------------------------
// Memory

#[test]
fn one_huge_alloc_returns_the_null_handle() {
    let body = r#"
      (func (export "max") (result i32) (call $output_i64 (call $alloc (i64.const -1))) (i32.const 0))
      (func (export "four_gib") (result i32) (call $output_i64 (call $alloc (i64.const 4294967296))) (i32.const 0))
      (func (export "one_gib") (result i32) (call $output_i64 (call $alloc (i64.const 1073741824))) (i32.const 0))
      (func (export "size") (result i32) (call $output_i64 (call $memory_bytes)) (i32.const 0))
      (func (export "small") (result i32) (call $output_i64 (call $alloc (i64.const 16))) (i32.const 0))"#;
    let mut free = load(Manifest::new([module(body)]));
    assert_eq!(free.call::<_, u64>("max", "").unwrap(), 0);
    assert_eq!(free.call::<_, u64>("four_gib", "").unwrap(), 0);
    assert_ne!(free.call::<_, u64>("small", "").unwrap(), 0);

    let mut capped = load(Manifest::new([module(body)]).with_memory_max(256));
    assert_eq!(capped.call::<_, u64>("one_gib", "").unwrap(), 0);
    // The refused allocation grew nothing.
    assert!(capped.call::<_, u64>("size", "").unwrap() <= 64 * 1024);
    assert_ne!(capped.call::<_, u64>("small", "").unwrap(), 0);
    host_still_serves();
}

#[test]
fn a_million_small_allocs_stop_at_the_budget() {
    // 64 pages = 4 MiB of growth on top of Extism memory's first page; 1-byte blocks take 8
    // bytes each, so about half a million fit.
    let m = Manifest::new([module(
        r#"(func (export "many") (result i32) (local $i i32) (local $ok i64) (local $out i64)
             ;; The output's block first: nothing is left once the budget is used up.
             (local.set $out (call $alloc (i64.const 8)))
             (loop $l
               (if (i64.ne (call $alloc (i64.const 1)) (i64.const 0))
                 (then (local.set $ok (i64.add (local.get $ok) (i64.const 1)))))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))
             (call $store_u64 (local.get $out) (local.get $ok))
             (call $output_set (local.get $out) (i64.const 8)) (i32.const 0))
           (func (export "echo") (result i32) (call $echo_input) (i32.const 0))"#,
    )])
    .with_memory_max(64);
    let mut p = load(m);
    let ok = p.call::<_, u64>("many", "").unwrap();
    assert!(
        (400_000..=65 * 65536 / 8).contains(&ok),
        "{ok} allocations succeeded"
    );
    // Blocks are released at the start of each call, so the plug-in works again.
    assert_eq!(p.call::<_, &str>("echo", "again").unwrap(), "again");
    host_still_serves();
}

#[test]
fn output_of_one_gib_is_a_memory_error() {
    let body = r#"
      (func (export "claim") (result i32)
        (call $output_set (call $alloc (i64.const 16)) (i64.const 1073741824)) (i32.const 0))
      (func (export "really") (result i32) (local $h i64)
        (local.set $h (call $alloc (i64.const 1073741824)))
        (call $output_set (local.get $h) (i64.const 1073741824)) (i32.const 0))"#;
    let mut p = load(Manifest::new([module(body)]));
    let err = p.call::<_, &[u8]>("claim", "").unwrap_err();
    assert!(matches!(err, Error::Memory(_)), "{err:?}");
    let mut capped = load(Manifest::new([module(body)]).with_memory_max(256));
    for f in ["claim", "really"] {
        let err = capped.call::<_, &[u8]>(f, "").unwrap_err();
        assert!(matches!(err, Error::Memory(_)), "{f}: {err:?}");
        assert!(err.to_string().contains("outside its memory"), "{err}");
    }
    host_still_serves();
}

#[test]
fn initial_memory_and_tables_over_the_limits_fail_to_load() {
    let m = Manifest::new([Wasm::data(
        &br#"(module (memory 1000) (func (export "f")))"#[..],
    )])
    .with_memory_max(10);
    let err = Plugin::new(m, [], false).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfMemory {
                limit_pages: 10,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Plugin::new(
        r#"(module (table 10000000 funcref) (func (export "f")))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(err.to_string().contains("table"), "{err}");
    host_still_serves();
}

/// Sandbox issue: 100 tables of 2^20 entries under `--memory-max 16` took 840 MB. Tables count
/// against `max_pages` (8 bytes an element), and without a budget all tables of an instance
/// together hold at most 2^20 elements, however many there are.
#[test]
fn tables_cannot_take_memory_outside_the_budget() {
    let many = format!(
        "(module {} (func (export \"f\")))",
        "(table 1048576 funcref) ".repeat(100)
    );
    let m = Manifest::new([Wasm::data(many.clone().into_bytes())]).with_memory_max(16);
    let err = Plugin::new(m, [], false).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfMemory {
                limit_pages: 16,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Plugin::new(many.as_str(), [], false).unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(err.to_string().contains("1048576 elements"), "{err}");

    // Growth is summed over tables too: once one table holds 2^20, the other cannot grow.
    let mut p = load(Manifest::new([module(
        r#"(table $a 0 funcref) (table $b 0 funcref)
           (func (export "grow") (result i32)
             (if (i32.eq (table.grow $a (ref.null func) (i32.const 1048576)) (i32.const -1))
               (then unreachable))
             (call $output_i64 (i64.extend_i32_s (table.grow $b (ref.null func) (i32.const 1))))
             (i32.const 0))"#,
    )]));
    assert_eq!(p.call::<_, i64>("grow", "").unwrap(), -1);
    host_still_serves();
}

/// Resident memory of this process, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Sandbox issue: a 64-bit memory grew to 67 GiB without `max_pages`, and one `memory.grow`
/// past wasmtime's 4 GiB reservation copied the memory whole, committing 6.4 GB. Every memory,
/// 32- or 64-bit, holds at most 4 GiB, with or without a budget, and growing to that cap
/// commits nothing.
#[test]
fn a_64_bit_memory_is_capped_at_4_gib() {
    let err = Plugin::new(
        r#"(module (memory i64 65537) (func (export "f")))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(err.to_string().contains("4 GiB"), "{err}");

    // A 64-bit memory next to the prelude's; `grow` grows it by the input's pages.
    let body = r#"(memory $m i64 1)
      (func (export "grow") (result i32)
        (call $output_i64 (memory.grow $m (call $input_load_u64 (i64.const 0))))
        (i32.const 0))"#;
    for max_pages in [None, Some(100_000)] {
        let mut m = Manifest::new([module(body)]);
        if let Some(n) = max_pages {
            m = m.with_memory_max(n);
        }
        let mut p = load(m);
        let grow =
            |p: &mut Plugin, pages: u64| p.call::<_, i64>("grow", pages.to_le_bytes()).unwrap();
        assert_eq!(grow(&mut p, 65536), -1, "to 4 GiB + 64 KiB in one step");
        let before = rss_bytes();
        assert_eq!(grow(&mut p, 65535), 1, "to exactly 4 GiB");
        assert_eq!(grow(&mut p, 1), -1, "past 4 GiB");
        let grew = rss_bytes().saturating_sub(before);
        assert!(grew < 1 << 30, "growing committed {grew} bytes");
    }
    host_still_serves();
}

// ---------------------------------------------------------------------------------------
// Bogus handles

/// The prelude with the legacy `env` names, which are never fused: the host's versions of
/// the memory functions then serve every access.
fn legacy_prelude() -> String {
    PRELUDE.to_string().replace(
        "(import \"extism:host/env\" \"",
        "(import \"env\" \"extism_",
    )
}

/// Bogus handles as wasm expressions ($b is a 32-byte block): 0, just past the end of memory,
/// inside a block, u64::MAX, the reserved bytes, far past the end of memory.
const BOGUS: [&str; 6] = [
    "(i64.const 0)",
    "(i64.add (call $memory_bytes) (i64.const 64))",
    "(i64.add (local.get $b) (i64.const 4))",
    "(i64.const -1)",
    "(i64.const 8)",
    "(i64.const 999999999)",
];

/// The imports that read and write Extism memory, given each bogus handle: reads give
/// nothing, writes go nowhere, and the call goes on. The other imports that take a handle
/// are in [`bogus_handles_to_the_remaining_imports`].
#[test]
fn bogus_handles_to_every_import_are_harmless() {
    let mut body = String::new();
    for (i, h) in BOGUS.iter().enumerate() {
        body.push_str(&format!(
            r#"
          (func (export "memory{i}") (result i32) (local $b i64)
            (local.set $b (call $alloc (i64.const 32)))
            (drop (call $length {h}))
            (drop (call $length_unsafe {h}))
            (drop (call $load_u8 {h}))
            (drop (call $load_u64 {h}))
            (call $store_u8 {h} (i32.const 1))
            (call $store_u64 {h} (i64.const 1))
            (drop (call $input_load_u8 {h}))
            (drop (call $input_load_u64 {h}))
            (call $output_set (local.get $b) (i64.const 4))
            (i32.const 0))"#
        ));
    }
    body.push_str(r#"(func (export "echo") (result i32) (call $echo_input) (i32.const 0))"#);
    for (kind, prelude) in [("fused", PRELUDE.to_string()), ("legacy", legacy_prelude())] {
        let module = format!("(module {prelude} (memory (export \"memory\") 1) {body})");
        let mut p = load(Manifest::new([Wasm::data(module.into_bytes())]));
        for (i, bogus) in BOGUS.iter().enumerate() {
            let out = p.call::<_, Vec<u8>>(format!("memory{i}"), "input").unwrap();
            assert_eq!(out.len(), 4, "{kind} {bogus}");
        }
        assert_eq!(p.call::<_, &str>("echo", "fine").unwrap(), "fine", "{kind}");
    }
    host_still_serves();
}

fn bogus_module(prelude: &str) -> Vec<u8> {
    let mut body = String::new();
    for (i, h) in BOGUS.iter().enumerate() {
        body.push_str(&format!(
            r#"
          (func (export "imports{i}") (result i32) (local $b i64) (local $k i64)
            (local.set $b (call $alloc (i64.const 32)))
            (local.set $k (call $alloc (i64.const 1)))
            (call $store_u8 (local.get $k) (i32.const 107))
            (call $var_set {h} {h})
            (call $var_set (local.get $k) {h})
            (call $input_set {h} (i64.const 4))
            (call $input_set (local.get $b) {h})
            (drop (call $input_load_u64 (i64.const 0)))
            (call $free {h}) (call $free {h})
            (drop (call $config_get {h}))
            (drop (call $var_get {h}))
            (call $log_trace {h}) (call $log_debug {h}) (call $log_info {h})
            (call $log_warn {h}) (call $log_error {h})
            (drop (call $error_get))
            (call $output_set (local.get $b) (i64.const 4))
            (i32.const 0))
          (func (export "http{i}") (result i32) (local $b i64)
            (local.set $b (call $alloc (i64.const 32)))
            (drop (call $http_request {h} {h})) (i32.const 0))
          (func (export "output{i}") (result i32) (local $b i64)
            (local.set $b (call $alloc (i64.const 32)))
            (call $output_set {h} (i64.const 4)) (i32.const 0))
          (func (export "error{i}") (result i32) (local $b i64)
            (local.set $b (call $alloc (i64.const 32)))
            (call $error_set {h}) (i32.const 0))"#
        ));
    }
    format!("(module {prelude} (memory (export \"memory\") 1) {body})").into_bytes()
}

#[test]
fn bogus_handles_to_the_remaining_imports() {
    for (kind, prelude) in [("fused", PRELUDE.to_string()), ("legacy", legacy_prelude())] {
        let m = Manifest::new([Wasm::data(bogus_module(&prelude))]).with_allowed_host("*");
        let mut p = load(m);
        for (i, bogus) in BOGUS.iter().enumerate() {
            let what = format!("{kind} {bogus}");
            let out = p
                .call::<_, Vec<u8>>(format!("imports{i}"), "input")
                .unwrap();
            assert_eq!(out.len(), 4, "{what}");
            // The request block reads as empty: not JSON.
            let err = p.call::<_, &[u8]>(format!("http{i}"), "").unwrap_err();
            assert!(matches!(err, Error::Http(_)), "{what}: {err:?}");
            // Output may be any range inside memory (inside a block is one); others fail.
            let out = p.call::<_, Vec<u8>>(format!("output{i}"), "");
            if i == 2 {
                assert_eq!(out.unwrap().len(), 4, "{what}");
            } else {
                assert!(matches!(out, Err(Error::Memory(_))), "{what}: {out:?}");
            }
            // Any error handle but 0 fails the call, with whatever the block holds.
            let res = p.call::<_, &[u8]>(format!("error{i}"), "");
            if i == 0 {
                assert!(res.is_ok(), "{what}: {res:?}");
            } else {
                assert!(matches!(res, Err(Error::Guest { .. })), "{what}: {res:?}");
            }
        }
    }
    host_still_serves();
}

#[test]
fn bogus_output_ranges_are_errors_not_crashes() {
    // (`error_set` with a handle that is no block: `error_set_with_a_bogus_handle_says_so`.)
    let mut p = Plugin::new(
        wat(r#"
          (func (export "neg") (result i32) (call $output_set (i64.const 8) (i64.const -5)) (i32.const 0))
          (func (export "huge") (result i32) (call $output_set (i64.const -1) (i64.const 1073741824)) (i32.const 0))
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
    let err = p.call::<_, &[u8]>("err_utf8", "").unwrap_err();
    assert!(matches!(err, Error::Guest { code: 1, .. }), "{err:?}");
    host_still_serves();
}

// ---------------------------------------------------------------------------------------
// Vars

/// `fill` stores N vars (N = the input as a u64) named by 5 decimal digits, each holding
/// its number as 8 bytes; `bad_key` uses a key that is not UTF-8.
const VARS: &str = r#"
  (func $key (param $i i64) (result i64) (local $k i64) (local $d i64) (local $n i64)
    (local.set $k (call $alloc (i64.const 5)))
    (local.set $n (local.get $i))
    (local.set $d (i64.const 4))
    (loop $l
      (call $store_u8 (i64.add (local.get $k) (local.get $d))
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $n) (i64.const 10)))))
      (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
      (local.set $d (i64.sub (local.get $d) (i64.const 1)))
      (br_if $l (i64.ge_s (local.get $d) (i64.const 0))))
    (local.get $k))
  (func (export "fill") (result i32) (local $i i64) (local $n i64) (local $v i64)
    (local.set $n (call $input_load_u64 (i64.const 0)))
    (block $d (loop $l
      (br_if $d (i64.ge_u (local.get $i) (local.get $n)))
      (local.set $v (call $alloc (i64.const 8)))
      (call $store_u64 (local.get $v) (local.get $i))
      (call $var_set (call $key (local.get $i)) (local.get $v))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l)))
    (i32.const 0))
  (func (export "bad_key") (result i32) (local $k i64)
    (local.set $k (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $k) (i32.const 0xff))
    (call $var_set (local.get $k) (call $alloc (i64.const 1))) (i32.const 0))"#;

#[test]
fn thousands_of_vars() {
    let mut p = load(Manifest::new([module(VARS)]));
    p.call::<_, &[u8]>("fill", 5000u64.to_le_bytes().as_slice())
        .unwrap();
    for i in [0u64, 1234, 4999] {
        let key = format!("{i:05}");
        assert_eq!(p.var_get(&key), Some(&i.to_le_bytes()[..]), "{key}");
    }
    assert_eq!(p.var_get("05000"), None);

    // 13 bytes a var under a 20,000-byte cap: the 1539th does not fit.
    let mut capped = load(Manifest::new([module(VARS)]).with_var_max(20_000));
    let err = capped
        .call::<_, &[u8]>("fill", 5000u64.to_le_bytes().as_slice())
        .unwrap_err();
    assert!(
        matches!(err, Error::VarStoreFull { limit: 20_000, needed } if needed > 20_000),
        "{err:?}"
    );
    assert!(capped.var_get("01537").is_some());
    assert!(capped.var_get("01538").is_none());
    // The vars stored before the failure stay, and the plug-in works on.
    capped
        .call::<_, &[u8]>("fill", 10u64.to_le_bytes().as_slice())
        .unwrap();

    let err = p.call::<_, &[u8]>("bad_key", "").unwrap_err();
    assert!(
        err.to_string().contains("var key is not valid UTF-8"),
        "{err}"
    );
    host_still_serves();
}

// ---------------------------------------------------------------------------------------
// HTTP

const FETCH: &str = r#"
  (func (export "fetch") (result i32)
    (call $output_block (call $http_request (call $input_offset) (i64.const 0))) (i32.const 0))"#;

fn http_plugin(hosts: &[&str]) -> Manifest {
    Manifest::new([module(FETCH)]).with_allowed_hosts(hosts.iter().map(|h| h.to_string()))
}

fn req(url: &str) -> String {
    format!(r#"{{"url":"{url}"}}"#)
}

#[test]
fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts connections and keeps them open without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let m = http_plugin(&["127.0.0.1"]).with_timeout(Duration::from_millis(300));
    let err = within(Duration::from_secs(10), move || {
        let mut p = load(m);
        let start = Instant::now();
        let url = format!("http://127.0.0.1:{port}/");
        let err = p.call::<_, &[u8]>("fetch", req(&url).as_str()).unwrap_err();
        (err, start.elapsed())
    });
    let (err, took) = err;
    // The request ends at the call's deadline, so the call is a timeout (never a success or
    // a later HTTP error).
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    host_still_serves();
}

#[test]
fn redirect_loops_are_cut() {
    let s = HttpServer::start();
    // Each hop strips one `/redirect-to/`: 12 hops, more than the 10 allowed.
    let mut path = "/hello".to_string();
    for _ in 0..12 {
        path = format!("/redirect-to/{path}");
    }
    let mut p = load(http_plugin(&["127.0.0.1"]));
    let err = p
        .call::<_, &[u8]>("fetch", req(&s.url(&path)).as_str())
        .unwrap_err();
    assert!(matches!(err, Error::Http(_)), "{err:?}");
    assert!(err.to_string().contains("redirects"), "{err}");
    assert_eq!(s.seen.lock().unwrap().len(), 11);
    host_still_serves();
}

#[test]
fn file_urls_are_never_read() {
    let s = HttpServer::start();
    let mut p = load(http_plugin(&["*"]));
    for url in [
        "file:///etc/passwd".to_string(),
        s.url("/redirect-to/file:///etc/passwd"),
    ] {
        let err = p.call::<_, &[u8]>("fetch", req(&url).as_str()).unwrap_err();
        assert!(
            matches!(err, Error::HttpDenied { .. } | Error::Http(_)),
            "{url}: {err:?}"
        );
        assert!(!err.to_string().contains("root:"), "{err}");
    }
    host_still_serves();
}

#[test]
fn disguised_hosts_are_denied() {
    let s = HttpServer::start();
    let mut p = load(http_plugin(&["127.0.0.1"]));
    let port = s.port;
    for (url, host) in [
        (
            format!("http://127.0.0.1@localhost:{port}/hello"),
            "localhost",
        ),
        (format!("http://localhost:{port}/hello"), "localhost"),
        (format!("http://[::1]:{port}/hello"), "[::1]"),
        (
            "http://127.0.0.1.nip.io/hello".to_string(),
            "127.0.0.1.nip.io",
        ),
        (
            format!("http://localhost:{port}/127.0.0.1/hello"),
            "localhost",
        ),
    ] {
        let err = p.call::<_, &[u8]>("fetch", req(&url).as_str()).unwrap_err();
        match &err {
            Error::HttpDenied { host: h } => assert_eq!(h, host, "{url}"),
            e => panic!("{url}: {e:?}"),
        }
    }
    assert!(
        s.seen.lock().unwrap().is_empty(),
        "nothing reached the server"
    );
    host_still_serves();
}

#[test]
fn a_response_over_the_memory_budget_fails_the_call() {
    let s = HttpServer::start();
    // 8 pages (512 KiB) in all; the body is 1 MB, well under the HTTP cap.
    let mut p = load(http_plugin(&["127.0.0.1"]).with_memory_max(8));
    let err = p
        .call::<_, &[u8]>("fetch", req(&s.url("/big/1000000")).as_str())
        .unwrap_err();
    assert!(
        matches!(err, Error::OutOfMemory { limit_pages: 8, .. }),
        "{err:?}"
    );
    assert_eq!(
        p.call::<_, &str>("fetch", req(&s.url("/hello")).as_str())
            .unwrap(),
        "hello from the server"
    );
    host_still_serves();
}

// ---------------------------------------------------------------------------------------
// WASI

/// Socket calls on fds 0-3 and 99 (`sockets` outputs their 20 errnos), stdin, environment
/// and arguments (`ambient` outputs stdin bytes read, env count, arg count), and attempts
/// to leave the preopen at fd 3 through links and renames.
fn wasi_plugin() -> Wasm {
    let src = format!(
        r#"(module
      (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "sock_recv" (func $sock_recv (param i32 i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "sock_send" (func $sock_send (param i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "sock_shutdown" (func $sock_shutdown (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_link" (func $path_link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_rename" (func $path_rename (param i32 i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_unlink_file" (func $path_unlink_file (param i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_create_directory" (func $path_create_directory (param i32 i32 i32) (result i32)))
      {PRELUDE}
      (memory (export "memory") 1)
      (data (i32.const 100) "/etc/passwd")
      (data (i32.const 120) "../outside/secret.txt")
      (data (i32.const 150) "evil1")
      (data (i32.const 160) "evil2")
      (data (i32.const 170) "hello.txt")
      (data (i32.const 190) "hardlink")
      (data (i32.const 210) "../outside/moved.txt")
      (data (i32.const 240) "newdir")
      (func $open_read (param $path i32) (param $len i32) (result i32) (local $err i32) (local $fd i32)
        (local.set $err (call $path_open (i32.const 3) (i32.const 1) (local.get $path) (local.get $len)
                          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
        (if (local.get $err) (then (return (local.get $err))))
        (local.set $fd (i32.load (i32.const 16)))
        (i32.store (i32.const 0) (i32.const 4096))
        (i32.store (i32.const 4) (i32.const 4096))
        (local.set $err (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (if (local.get $err) (then (return (local.get $err))))
        (call $output_set (call $copy_in (i32.const 4096) (i32.load (i32.const 8)))
                          (i64.extend_i32_u (i32.load (i32.const 8))))
        (i32.const 0))
      (func (export "sockets") (result i32) (local $out i64) (local $i i32) (local $fd i32)
        (local.set $out (call $alloc (i64.const 20)))
        (loop $l
          (local.set $fd (select (i32.const 99) (local.get $i) (i32.eq (local.get $i) (i32.const 4))))
          (call $store_u8 (i64.add (local.get $out) (i64.extend_i32_u (i32.mul (local.get $i) (i32.const 4))))
            (call $sock_accept (local.get $fd) (i32.const 0) (i32.const 16)))
          (call $store_u8 (i64.add (local.get $out) (i64.extend_i32_u (i32.add (i32.mul (local.get $i) (i32.const 4)) (i32.const 1))))
            (call $sock_recv (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 16) (i32.const 20)))
          (call $store_u8 (i64.add (local.get $out) (i64.extend_i32_u (i32.add (i32.mul (local.get $i) (i32.const 4)) (i32.const 2))))
            (call $sock_send (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 16)))
          (call $store_u8 (i64.add (local.get $out) (i64.extend_i32_u (i32.add (i32.mul (local.get $i) (i32.const 4)) (i32.const 3))))
            (call $sock_shutdown (local.get $fd) (i32.const 2)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 5))))
        (call $output_set (local.get $out) (i64.const 20)) (i32.const 0))
      (func (export "ambient") (result i32) (local $out i64)
        (local.set $out (call $alloc (i64.const 24)))
        (i32.store (i32.const 0) (i32.const 4096))
        (i32.store (i32.const 4) (i32.const 64))
        (i32.store (i32.const 8) (i32.const 0))
        (call $store_u64 (local.get $out) (i64.extend_i32_u (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8))))
        (call $store_u64 (i64.add (local.get $out) (i64.const 8)) (i64.extend_i32_u (i32.load (i32.const 8))))
        (drop (call $environ_sizes_get (i32.const 16) (i32.const 20)))
        (drop (call $args_sizes_get (i32.const 24) (i32.const 28)))
        (call $store_u64 (i64.add (local.get $out) (i64.const 16))
          (i64.add (i64.extend_i32_u (i32.load (i32.const 16))) (i64.extend_i32_u (i32.load (i32.const 24)))))
        (call $output_set (local.get $out) (i64.const 24)) (i32.const 0))
      (func (export "symlink_abs") (result i32)
        (drop (call $path_symlink (i32.const 100) (i32.const 11) (i32.const 3) (i32.const 150) (i32.const 5)))
        (call $open_read (i32.const 150) (i32.const 5)))
      (func (export "symlink_up") (result i32)
        (drop (call $path_symlink (i32.const 120) (i32.const 21) (i32.const 3) (i32.const 160) (i32.const 5)))
        (call $open_read (i32.const 160) (i32.const 5)))
      (func (export "hardlink") (result i32) (local $err i32)
        (local.set $err (call $path_link (i32.const 3) (i32.const 1) (i32.const 120) (i32.const 21)
                                         (i32.const 3) (i32.const 190) (i32.const 8)))
        (if (local.get $err) (then (return (local.get $err))))
        (call $open_read (i32.const 190) (i32.const 8)))
      (func (export "rename_out") (result i32)
        (call $path_rename (i32.const 3) (i32.const 170) (i32.const 9) (i32.const 3) (i32.const 210) (i32.const 20)))
      (func (export "unlink") (result i32)
        (call $path_unlink_file (i32.const 3) (i32.const 170) (i32.const 9)))
      (func (export "mkdir") (result i32)
        (call $path_create_directory (i32.const 3) (i32.const 240) (i32.const 6))))"#
    );
    Wasm::data(src.into_bytes())
}

struct Dirs {
    _root: tempfile::TempDir,
    inside: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let inside = root.path().join("inside");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(inside.join("hello.txt"), "hello from inside").unwrap();
    std::fs::write(outside.join("secret.txt"), "top secret").unwrap();
    Dirs {
        _root: root,
        inside,
        outside,
    }
}

#[test]
fn sockets_cannot_be_used() {
    let d = dirs();
    let m = Manifest::new([wasi_plugin()]).with_allowed_path(d.inside.clone(), "/data");
    let mut p = Plugin::new(m, [], true).unwrap();
    let errnos = p.call::<_, Vec<u8>>("sockets", "").unwrap();
    assert_eq!(errnos.len(), 20);
    assert!(
        errnos.iter().all(|e| *e != 0),
        "a socket call succeeded: {errnos:?}"
    );
    // Calls that would create sockets are not there at all.
    for name in ["sock_open", "sock_connect", "sock_bind", "sock_listen"] {
        let src = format!(
            r#"(module (import "wasi_snapshot_preview1" "{name}" (func (param i32 i32 i32) (result i32))) (func (export "f")))"#
        );
        let err = Plugin::new(src.as_str(), [], true).unwrap_err();
        assert!(matches!(err, Error::Link(_)), "{name}: {err:?}");
        assert!(err.to_string().contains(name), "{err}");
    }
    host_still_serves();
}

#[test]
fn no_stdin_environment_or_arguments_leak_in() {
    let mut p = Plugin::new(Manifest::new([wasi_plugin()]), [], true).unwrap();
    let out = p.call::<_, Vec<u8>>("ambient", "").unwrap();
    let word = |i: usize| u64::from_le_bytes(out[i * 8..i * 8 + 8].try_into().unwrap());
    assert_eq!(word(0), 0, "reading stdin is not an error");
    assert_eq!(word(1), 0, "but stdin is empty");
    assert_eq!(word(2), 0, "no environment variables or arguments");
    host_still_serves();
}

#[test]
fn links_and_renames_do_not_leave_the_preopen() {
    let d = dirs();
    let m = Manifest::new([wasi_plugin()]).with_allowed_path(d.inside.clone(), "/data");
    let mut p = Plugin::new(m, [], true).unwrap();
    for f in ["symlink_abs", "symlink_up", "hardlink", "rename_out"] {
        let err = p.call::<_, &[u8]>(f, "").unwrap_err();
        assert!(matches!(err, Error::Guest { .. }), "{f}: {err:?}");
        assert!(!err.to_string().contains("top secret"), "{f}: {err}");
        assert!(!err.to_string().contains("root:"), "{f}: {err}");
    }
    assert!(d.inside.join("hello.txt").exists());
    // A symlink to an absolute path is refused. One to `../outside/secret.txt` is created
    // (wasmtime-wasi allows it) but the plug-in cannot follow it; SECURITY.md warns hosts
    // not to follow links in directories plug-ins can write.
    assert!(std::fs::symlink_metadata(d.inside.join("evil1")).is_err());
    assert!(!d.inside.join("hardlink").exists());
    assert!(!d.outside.join("moved.txt").exists());
    assert_eq!(
        std::fs::read_to_string(d.outside.join("secret.txt")).unwrap(),
        "top secret"
    );
    host_still_serves();
}

#[test]
fn read_only_mounts_refuse_deleting_and_creating() {
    let d = dirs();
    let ro = format!("ro:{}", d.inside.display());
    let m = Manifest::new([wasi_plugin()]).with_allowed_path(ro, "/data");
    let mut p = Plugin::new(m, [], true).unwrap();
    for f in ["unlink", "mkdir", "rename_out", "symlink_up"] {
        let err = p.call::<_, &[u8]>(f, "").unwrap_err();
        assert!(matches!(err, Error::Guest { .. }), "{f}: {err:?}");
    }
    assert!(d.inside.join("hello.txt").exists());
    assert!(!d.inside.join("newdir").exists());
    assert!(!d.inside.join("evil2").exists());
    host_still_serves();
}

// ---------------------------------------------------------------------------------------
// Modules and manifests

#[test]
fn empty_truncated_and_mislabelled_binaries() {
    let echo = wat::parse_str(echo_wat()).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        (
            "garbage after the header",
            b"\0asm\x01\0\0\0garbage".to_vec(),
        ),
        ("half a module", echo[..echo.len() / 2].to_vec()),
        ("one byte short", echo[..echo.len() - 1].to_vec()),
        ("trailing garbage", [&echo[..], b"\x00\x01garbage"].concat()),
        (
            "huge section size",
            b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\x0f".to_vec(),
        ),
        ("wrong version", b"\0asm\x02\0\0\0".to_vec()),
        ("a component", b"\0asm\x0d\0\x01\0".to_vec()),
    ];
    for (what, bytes) in cases {
        let err = Plugin::new(bytes, [], false).unwrap_err();
        assert!(matches!(err, Error::Compile { .. }), "{what}: {err:?}");
    }
    // A valid module with nothing in it loads, and calling into it is a clear error.
    let mut p = Plugin::new(&b"\0asm\x01\0\0\0"[..], [], false).unwrap();
    assert!(matches!(
        p.call::<_, &[u8]>("f", "").unwrap_err(),
        Error::FunctionNotFound { .. }
    ));
    host_still_serves();
}

#[test]
fn malformed_modules_and_bad_exports() {
    // (Malformed binaries: `empty_truncated_and_mislabelled_binaries`.)
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
    host_still_serves();
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

    // A known import with the wrong type is a link error too (`alloc` is not fused; a fused
    // one: `fusing_neither_validates_invalid_modules_nor_hides_mistyped_imports`).
    let err = Plugin::new(
        r#"(module (import "extism:host/env" "alloc" (func (param i32) (result i32))) (func (export "f")))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(err.to_string().contains("alloc"), "{err}");
    host_still_serves();
}

#[test]
fn fusing_neither_validates_invalid_modules_nor_hides_mistyped_imports() {
    // Regression: this module names memory 1, which it lacks. The memory that fusing appends
    // made it valid, so it loaded and wrote the input's length into Extism memory.
    let invalid = wat::parse_str(
        r#"(module
             (import "extism:host/env" "input_length" (func $len (result i64)))
             (memory 1)
             (func (export "f") (result i32)
               (i64.store 1 (i32.const 8) (i64.const 99999)) (drop (call $len)) (i32.const 0)))"#,
    )
    .unwrap();
    let err = Plugin::new(invalid, [], false).unwrap_err();
    assert!(matches!(err, Error::Compile { .. }), "{err:?}");
    assert!(err.to_string().contains("unknown memory"), "{err}");

    // Regression: a fused import with the wrong type gave an obscure compile error about
    // the rewritten code instead of a link error naming the import.
    let err = Plugin::new(
        r#"(module (import "extism:host/env" "load_u64" (func $l (param i32) (result i64)))
             (memory 1) (func (export "f") (result i32) (drop (call $l (i32.const 0))) (i32.const 0)))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err:?}");
    assert!(
        err.to_string().contains("extism:host/env::load_u64"),
        "{err}"
    );
    host_still_serves();
}

#[test]
fn manifests_with_unknown_fields_or_wrong_types() {
    let data = r#""data":[0,97,115,109,1,0,0,0]"#;
    let json = [
        format!(r#"{{"wasm":[{{{data}}}],"memory":{{"max_pagez":4}}}}"#),
        format!(r#"{{"wasm":[{{{data},"hashh":"00"}}]}}"#),
        format!(r#"{{"wasm":[{{{data}}}],"timeout_ms":"soon"}}"#),
        format!(r#"{{"wasm":[{{{data}}}],"timeout_ms":-5}}"#),
        format!(r#"{{"wasm":[{{{data}}}],"memory":{{"max_pages":4294967296}}}}"#),
        format!(r#"{{"wasm":[{{{data}}}],"config":{{"k":1}}}}"#),
        format!(r#"{{"wasm":[{{{data}}}],"allowed_hosts":"*"}}"#),
        format!(r#"{{"wasm":[{{{data}}}],"allowed_paths":["/"]}}"#),
        format!(r#"{{"wasm":{{{data}}}}}"#),
        format!(r#"{{"wasm":[{{{data}}}]}} trailing"#),
        r#"{"wasm":[{"data":[256]}]}"#.to_string(),
        r#"{"wasm":[{"data":"not base64!"}]}"#.to_string(),
    ];
    for text in &json {
        let err = Plugin::new(text.as_bytes(), [], false).unwrap_err();
        assert!(matches!(err, Error::Manifest(_)), "{text}: {err:?}");
    }
    let toml = [
        "wasm = [{ data = [0,97,115,109,1,0,0,0] }]\ntimeout_ms = \"soon\"",
        "wasm = [{ data = [0,97,115,109,1,0,0,0] }]\n[memory]\nmax_pagez = 4",
        "wasm = [{ data = [0,97,115,109,1,0,0,0], colour = \"red\" }]",
        "wasm = [{ data = [0,97,115,109,1,0,0,0] }]\nallowed_hosts = 7",
        "wasm = \"main.wasm\"",
    ];
    for text in toml {
        let err = Plugin::new(text.as_bytes(), [], false).unwrap_err();
        assert!(matches!(err, Error::Manifest(_)), "{text}: {err:?}");
    }
    host_still_serves();
}

// ---------------------------------------------------------------------------------------
// Host functions

#[test]
fn host_function_panicking_with_an_odd_payload_under_its_lock() {
    let calls = UserData::new(0u32);
    let f = Function::new("bump", [], [], calls.clone(), |_, _, _, calls| {
        let mut n = calls.lock();
        *n += 1;
        if *n == 1 {
            // Not a string, and the lock is held: it is poisoned by the unwind.
            std::panic::panic_any(42u32);
        }
        Ok(())
    });
    let src = format!(
        r#"(module (import "extism:host/user" "bump" (func $bump))
             {PRELUDE} (memory (export "memory") 1)
             (func (export "f") (result i32) (call $bump) (i32.const 0)))"#
    );
    let mut p = Plugin::new(src.as_bytes(), [f], false).unwrap();
    let err = p.call::<_, &[u8]>("f", "").unwrap_err();
    assert!(
        matches!(&err, Error::HostFunction { function, message } if function == "bump" && message.contains("panicked")),
        "{err:?}"
    );
    p.call::<_, &[u8]>("f", "").unwrap();
    assert_eq!(*calls.lock(), 2);
    host_still_serves();
}

// ---------------------------------------------------------------------------------------
// Compile-time shape, and what fusing makes of a module

/// A chain of `n` small functions, each calling the next twice: the call graph that made
/// Cranelift's inliner take gigabytes (2,000 took 10 s and 3.2 GB; 20,000 passed 23 GB).
fn call_chain(n: usize) -> String {
    let mut wat = String::from("(module\n");
    for i in 0..n {
        if i + 1 < n {
            wat.push_str(&format!(
                "(func $f{i} (param i32) (result i32) (i32.add (call $f{j} (local.get 0)) (call $f{j} (i32.const 1))))\n",
                j = i + 1
            ));
        } else {
            wat.push_str(&format!(
                "(func $f{i} (param i32) (result i32) (local.get 0))\n"
            ));
        }
    }
    wat.push_str(
        "(func (export \"run\") (result i32) (drop (call $f0 (i32.const 1))) (i32.const 0)))",
    );
    wat
}

/// Hot reload: a plug-in's file is plug-in-controlled input too. New code over the compile
/// limits, or whose start function never ends, is refused at the check, within bounded time,
/// and the code already loaded keeps serving.
#[test]
fn a_hot_reload_to_hostile_code_is_refused_and_the_old_code_serves() {
    use plinth::reload::{HotPlugin, Reload};
    use plinth::CompileLimits;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mod.wat");
    std::fs::write(&path, echo_wat()).unwrap();
    let hot = Arc::new(
        HotPlugin::open(&path, |b| {
            b.with_cache_dir(None::<&str>)
                .with_compile_limits(CompileLimits {
                    max_functions: 100,
                    ..CompileLimits::default()
                })
                .with_fuel_limit(50_000)
        })
        .unwrap()
        .with_check_interval(None),
    );
    for (what, hostile, expected) in [
        ("over the compile limits", call_chain(500), "501 functions"),
        ("a start function that spins", wat(SPIN_AT_START), "fuel"),
    ] {
        std::fs::write(&path, hostile).unwrap();
        let checking = Arc::clone(&hot);
        let reload = within(Duration::from_secs(30), move || checking.check().unwrap());
        match reload {
            Reload::Failed(e) => assert!(e.to_string().contains(expected), "{what}: {e}"),
            other => panic!("{what}: expected a refused reload, got {other:?}"),
        }
        assert_eq!(hot.generation(), 1, "{what}");
        let out: String = hot.call("echo", what).unwrap();
        assert_eq!(out, what);
    }
    host_still_serves();
}

#[test]
fn a_deep_call_chain_compiles_in_bounded_time() {
    // 20,000 links (about 300 KB of wasm). With inlining this exhausted the machine's memory;
    // without, it compiles in about a second.
    let plugin = within(Duration::from_secs(120), || {
        plinth::PluginBuilder::new(call_chain(20_000).into_bytes())
            .with_cache_dir(None::<&str>)
            .compile()
    });
    assert!(plugin.unwrap().function_exists("run"));
    host_still_serves();
}

#[test]
fn compile_limits_refuse_big_modules_many_functions_and_slow_compiles() {
    use plinth::CompileLimits;
    let wat = call_chain(500);
    let limited = |limits: CompileLimits| {
        plinth::PluginBuilder::new(wat.clone().into_bytes())
            .with_cache_dir(None::<&str>)
            .with_compile_limits(limits)
            .compile()
    };
    let err = limited(CompileLimits {
        max_module_bytes: 1000,
        ..CompileLimits::default()
    })
    .err()
    .expect("refused");
    assert!(
        matches!(&err, Error::CompileLimit { message, .. } if message.contains("over the limit of 1000 bytes")),
        "{err}"
    );
    let err = limited(CompileLimits {
        max_functions: 100,
        ..CompileLimits::default()
    })
    .err()
    .expect("refused");
    assert!(
        matches!(&err, Error::CompileLimit { message, .. } if message.contains("501 functions")),
        "{err}"
    );
    // A deadline no compile can meet. The module is new to this process (a unique export
    // name), so no cache answers first.
    let unique = call_chain(3000).replace("\"run\"", &format!("\"run{}\"", std::process::id()));
    let err = plinth::PluginBuilder::new(unique.into_bytes())
        .with_cache_dir(None::<&str>)
        .with_compile_limits(CompileLimits {
            deadline: Some(Duration::from_micros(1)),
            ..CompileLimits::default()
        })
        .compile()
        .err()
        .expect("refused");
    assert!(
        matches!(&err, Error::CompileLimit { message, .. } if message.contains("deadline")),
        "{err}"
    );
    // Within the limits, the same module loads.
    assert!(limited(CompileLimits::default()).is_ok());
    host_still_serves();
}

#[test]
fn splicing_the_abi_cannot_blow_up_a_module() {
    // One function of nothing but fused ABI calls: splicing stops at its budget, the rest
    // stay calls, and the module still runs.
    let calls = "(drop (call $load_u64 (i64.const 16)))\n".repeat(20_000);
    let text = wat(&format!(
        "(func (export \"run\") (result i32) {calls} (i32.const 0))"
    ));
    let mut p = within(Duration::from_secs(120), move || {
        Plugin::new(text.as_bytes(), [], false).expect("loads")
    });
    p.call::<_, &[u8]>("run", "").unwrap();
    host_still_serves();
}

#[test]
fn a_module_cannot_pass_its_own_memory_off_as_extism_memory() {
    // The module names its own memory like the rewrite's Extism memory export and fills it.
    // Whether or not it imports a fused function, Extism memory must be the host's (or the
    // rewrite's), so the output range reads zeros, not the module's bytes.
    for import in [
        "",
        r#"(import "extism:host/env" "load_u64" (func $l (param i64) (result i64)))"#,
    ] {
        let wat = format!(
            r#"(module
              (import "extism:host/env" "output_set" (func $out (param i64 i64)))
              {import}
              (memory (export "__plinth_extism_memory") 1)
              (data (i32.const 16) "XXXXXXXX")
              (func (export "run") (result i32) (call $out (i64.const 16) (i64.const 8)) (i32.const 0)))"#
        );
        let mut p = Plugin::new(wat.as_bytes(), [], false).expect("loads");
        let out: Vec<u8> = p.call("run", "").unwrap();
        assert_eq!(out, [0u8; 8], "import: {import:?}");
    }
    host_still_serves();
}

#[test]
fn a_start_function_reaches_extism_memory_fused_or_not() {
    // The start function stores a var through Extism memory: with the hot imports (fused) and
    // with the legacy `env` names (not fused), the var is there when the first call runs.
    for ns in ["extism:host/env", "env"] {
        let p = if ns == "env" { "extism_" } else { "" };
        let wat = format!(
            r#"(module
              (import "{ns}" "{p}alloc" (func $alloc (param i64) (result i64)))
              (import "{ns}" "{p}store_u8" (func $store_u8 (param i64 i32)))
              (import "{ns}" "{p}var_set" (func $var_set (param i64 i64)))
              (import "{ns}" "{p}var_get" (func $var_get (param i64) (result i64)))
              (import "{ns}" "{p}length" (func $length (param i64) (result i64)))
              (import "{ns}" "{p}output_set" (func $out (param i64 i64)))
              (memory 1)
              (func $byte (param $c i32) (result i64) (local $h i64)
                (local.set $h (call $alloc (i64.const 1)))
                (call $store_u8 (local.get $h) (local.get $c))
                (local.get $h))
              (func $init (call $var_set (call $byte (i32.const 107)) (call $byte (i32.const 118))))
              (start $init)
              (func (export "run") (result i32) (local $v i64)
                (local.set $v (call $var_get (call $byte (i32.const 107))))
                (call $out (local.get $v) (call $length (local.get $v)))
                (i32.const 0)))"#
        );
        let mut plugin = Plugin::new(wat.as_bytes(), [], false).expect("loads");
        assert_eq!(plugin.call::<_, String>("run", "").unwrap(), "v", "{ns}");
        assert_eq!(plugin.var_get("k"), Some(&b"v"[..]), "{ns}");
        assert!(
            !plugin.function_exists("__plinth_start"),
            "the deferred start function is not callable"
        );
    }
    host_still_serves();
}

#[test]
fn calling_a_global_export_says_it_is_not_a_function() {
    let mut p = Plugin::new(
        r#"(module (global (export "answer") i32 (i32.const 42)) (func (export "f")))"#.as_bytes(),
        [],
        false,
    )
    .unwrap();
    let err = p.call::<_, &[u8]>("answer", "").unwrap_err();
    assert!(
        matches!(&err, Error::NotCallable { name, signature } if name == "answer" && signature.contains("global")),
        "{err}"
    );
    host_still_serves();
}

#[test]
fn error_set_with_a_bogus_handle_says_so() {
    let mut p = Plugin::new(
        wat(r#"(func (export "fail") (result i32) (call $error_set (i64.const 12345)) (i32.const 1))"#)
            .as_bytes(),
        [],
        false,
    )
    .unwrap();
    let err = p.call::<_, &[u8]>("fail", "").unwrap_err();
    assert!(
        matches!(&err, Error::Guest { message, .. } if message.contains("12345") && message.contains("not a block")),
        "{err}"
    );
    host_still_serves();
}

/// A one-thread runtime, where a call that held the thread would stop every other task.
fn one_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn an_async_call_that_loops_yields_to_other_tasks_until_its_timeout() {
    let m = Manifest::new([Wasm::data(
        wat(r#"(func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))"#).into_bytes(),
    )])
    .with_timeout(Duration::from_millis(300));
    let compiled = Plugin::builder(m).with_async(true).compile().unwrap();
    let (err, ticks) = within(Duration::from_secs(20), move || {
        one_thread().block_on(async move {
            let ticks = Arc::new(AtomicU64::new(0));
            let counter = ticks.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
            let mut p = compiled.instantiate().unwrap();
            let err = p.call_async::<Vec<u8>>("spin", "").await.unwrap_err();
            ticker.abort();
            (err, ticks.load(Ordering::Relaxed))
        })
    });
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    // The other task on the same thread kept running while the plug-in spun.
    assert!(
        ticks > 10,
        "only {ticks} ticks: the plug-in held the thread"
    );
    host_still_serves();
}

/// A plug-in whose `run` calls the host function `wait(i64) -> i64` with its input's handle.
fn calls_wait() -> Wasm {
    Wasm::data(
        format!(
            r#"(module (import "extism:host/user" "wait" (func $wait (param i64) (result i64)))
             {PRELUDE} (memory (export "memory") 1)
             (func (export "run") (result i32)
               (call $output_block (call $wait (call $input_offset))) (i32.const 0)))"#
        )
        .into_bytes(),
    )
}

#[test]
fn a_host_future_that_never_completes_ends_at_the_timeout() {
    let never = Function::new_async(
        "wait",
        [ValType::I64],
        [ValType::I64],
        UserData::new(()),
        |_plugin, _params, _results, _| Box::pin(std::future::pending()),
    );
    let m = Manifest::new([calls_wait()]).with_timeout(Duration::from_millis(100));
    let compiled = Plugin::builder(m)
        .with_functions([never])
        .compile()
        .unwrap();
    let err = within(Duration::from_secs(10), move || {
        one_thread().block_on(async move {
            let mut p = compiled.instantiate().unwrap();
            p.call_async::<Vec<u8>>("run", "x").await.unwrap_err()
        })
    });
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    host_still_serves();
}

#[test]
fn a_host_future_that_panics_fails_the_call_only() {
    let panics = Function::new_async(
        "wait",
        [ValType::I64],
        [ValType::I64],
        UserData::new(()),
        |plugin, params, results, _| {
            Box::pin(async move {
                let text: String = plugin.memory_get_val(&params[0])?;
                tokio::task::yield_now().await;
                if text == "panic" {
                    panic!("the host future broke");
                }
                results[0] = params[0];
                Ok(())
            })
        },
    );
    let compiled = Plugin::builder(Manifest::new([calls_wait()]))
        .with_functions([panics])
        .compile()
        .unwrap();
    let (err, after) = one_thread().block_on(async move {
        let mut p = compiled.instantiate().unwrap();
        let err = p.call_async::<String>("run", "panic").await.unwrap_err();
        let after = p.call_async::<String>("run", "fine").await;
        (err, after)
    });
    assert!(matches!(err, Error::HostFunction { .. }), "{err:?}");
    assert!(err.to_string().contains("the host future broke"), "{err}");
    assert_eq!(after.unwrap(), "fine");
    host_still_serves();
}

// ---------------------------------------------------------------------------------------
// Streams

/// `chaos` takes a seed from the first 8 bytes of its input stream (the last of them is the
/// number of calls) and makes that many calls to the
/// stream and HTTP-stream functions with pseudo-random pointers, lengths and handles, many of
/// them out of range: each bad one must end the call with a clear error, never a crash.
const CHAOS: &str = r#"
  (import "plinth:host/env" "stream_read" (func $sread (param i32 i32) (result i32)))
  (import "plinth:host/env" "stream_write" (func $swrite (param i32 i32) (result i32)))
  (import "plinth:host/env" "http_stream_send" (func $hsend (param i64 i32 i32) (result i32)))
  (import "plinth:host/env" "http_stream_read" (func $hread (param i64 i32 i32) (result i32)))
  (import "plinth:host/env" "http_stream_close" (func $hclose (param i64)))
"#;

const CHAOS_BODY: &str = r#"
  (global $r (mut i64) (i64.const 0))
  (func $next (result i32)
    (global.set $r (i64.add (i64.mul (global.get $r) (i64.const 6364136223846793005))
                            (i64.const 1442695040888963407)))
    (i32.wrap_i64 (i64.shr_u (global.get $r) (i64.const 29))))
  ;; Mostly near the end of the 64 KiB memory, sometimes anywhere in 32 bits.
  (func $ptr (result i32)
    (if (result i32) (i32.and (call $next) (i32.const 1))
      (then (i32.sub (i32.const 65536) (i32.and (call $next) (i32.const 4095))))
      (else (call $next))))
  (func $len (result i32)
    (if (result i32) (i32.and (call $next) (i32.const 1))
      (then (i32.and (call $next) (i32.const 8191)))
      (else (call $next))))
  (func (export "chaos") (result i32) (local $i i32) (local $op i32)
    (drop (call $sread (i32.const 0) (i32.const 8)))
    (global.set $r (i64.load (i32.const 0)))
    (loop $l
      (local.set $op (i32.rem_u (call $next) (i32.const 5)))
      (if (i32.eqz (local.get $op)) (then (drop (call $sread (call $ptr) (call $len)))))
      (if (i32.eq (local.get $op) (i32.const 1)) (then (drop (call $swrite (call $ptr) (call $len)))))
      (if (i32.eq (local.get $op) (i32.const 2))
        (then (drop (call $hsend (i64.extend_i32_u (call $next)) (call $ptr) (call $len)))))
      (if (i32.eq (local.get $op) (i32.const 3))
        (then (drop (call $hread (i64.extend_i32_u (call $next)) (call $ptr) (call $len)))))
      (if (i32.eq (local.get $op) (i32.const 4)) (then (call $hclose (i64.extend_i32_u (call $next)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.load8_u (i32.const 7)))))
    (i32.const 0))
"#;

#[test]
fn random_pointers_lengths_and_handles_to_the_stream_functions_are_clear_errors() {
    let wat = format!("(module {CHAOS} {PRELUDE} (memory (export \"memory\") 1) {CHAOS_BODY})");
    let manifest = Manifest::new([Wasm::data(wat.into_bytes())]).with_memory_max(64);
    let mut plugin = Plugin::builder(manifest)
        .with_output_limit(1 << 20)
        .build()
        .unwrap();
    let (mut ok, mut failed) = (0, 0);
    within(Duration::from_secs(120), move || {
        for seed in 0u64..400 {
            let input = seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .to_le_bytes()
                .repeat(512);
            let result = if seed % 2 == 0 {
                plugin.call::<&[u8], Vec<u8>>("chaos", &input).map(|_| ())
            } else {
                plugin
                    .call_stream("chaos", &input[..], std::io::sink())
                    .map(|_| ())
            };
            match result {
                Ok(()) => ok += 1,
                Err(e) => {
                    failed += 1;
                    let msg = e.to_string();
                    assert!(
                        msg.contains("outside the plug-in's")
                            || msg.contains("no open HTTP stream")
                            || msg.contains("output limit")
                            || msg.contains("memory"),
                        "seed {seed}: {msg}"
                    );
                }
            }
        }
        // Both outcomes happen: the generator reaches valid and invalid calls.
        assert!(ok > 0 && failed > 0, "{ok} ok, {failed} failed");
    });
    host_still_serves();
}

#[test]
fn a_pdk_stream_export_of_another_type_is_not_linked_and_endless_streams_stay_bounded() {
    // `plinth_stream_read` of the wrong type stays the module's own function.
    let odd = r#"(module (memory (export "memory") 1)
        (func $r (export "plinth_stream_read") (param i64) (result i64) (i64.const 42))
        (func (export "run") (result i32) (i32.wrap_i64 (call $r (i64.const 0)))))"#;
    let mut plugin = Plugin::new(odd.as_bytes(), [], false).unwrap();
    let err = plugin.call::<&str, &[u8]>("run", "").unwrap_err();
    assert_eq!(err.code(), 42, "{err}");
    // An endless input to a plug-in that does not stream is cut at its memory limit, not
    // read forever; an endless output in a classic call stops at the memory limit too.
    let manifest = Manifest::new([module(
        r#"(func (export "echo") (result i32) (call $echo_input) (i32.const 0))"#,
    )])
    .with_memory_max(32);
    let mut plugin = load(manifest);
    let err = within(Duration::from_secs(60), move || {
        plugin
            .call_stream("echo", std::io::repeat(0), std::io::sink())
            .unwrap_err()
    });
    assert_eq!(err.kind(), plinth::ErrorKind::Stream, "{err}");
    host_still_serves();
}

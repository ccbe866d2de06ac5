//! A call's deadline and cancel reach the time it spends in host calls: WASI sleeps
//! (`poll_oneoff`), big allocations and user host functions. A call that ends past its
//! deadline is `Error::Timeout`, never a success.

use std::time::{Duration, Instant};

use crate::common::{wat, within, PRELUDE};
use plinth::{CurrentPlugin, Error, Function, Manifest, Plugin, UserData, Val, Wasm};

const SECOND: i64 = 1_000_000_000;

/// A WASI plug-in with `$poll(clock, ns, flags) -> errno`, which polls one clock subscription
/// (at 0; its event goes to 64, the event count to 128), `$now() -> ns` on the monotonic
/// clock, and `body`.
pub(crate) fn sleeper(body: &str) -> Wasm {
    let src = format!(
        r#"(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
      {PRELUDE}
      (memory (export "memory") 1)
      (func $clock_sub (param $at i32) (param $clock i32) (param $ns i64) (param $flags i32)
        (i64.store (local.get $at) (i64.const 7))
        (i32.store8 offset=8 (local.get $at) (i32.const 0))
        (i32.store offset=16 (local.get $at) (local.get $clock))
        (i64.store offset=24 (local.get $at) (local.get $ns))
        (i64.store offset=32 (local.get $at) (i64.const 0))
        (i32.store16 offset=40 (local.get $at) (local.get $flags)))
      (func $poll (param $clock i32) (param $ns i64) (param $flags i32) (result i32)
        (call $clock_sub (i32.const 0) (local.get $clock) (local.get $ns) (local.get $flags))
        (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
      (func $now (result i64)
        (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 256)))
        (i64.load (i32.const 256)))
      {body})"#
    );
    Wasm::data(src.into_bytes())
}

/// `sleep_20s`: a relative 20 s sleep on the monotonic clock; returns the errno.
const SLEEP_20S: &str = r#"
  (func (export "sleep_20s") (result i32)
    (call $poll (i32.const 1) (i64.const 20_000_000_000) (i32.const 0)))"#;

fn wasi_plugin(wasm: Wasm, timeout: Option<Duration>) -> Plugin {
    let mut m = Manifest::new([wasm]);
    if let Some(t) = timeout {
        m = m.with_timeout(t);
    }
    Plugin::builder(m)
        .with_wasi(true)
        .build()
        .expect("plug-in loads")
}

fn assert_timeout(result: Result<(), Error>, limit: Duration) {
    match result {
        Err(Error::Timeout { limit: l, .. }) => assert_eq!(l, limit),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn wasi_sleep_past_the_deadline_is_a_timeout() {
    // Regression: poll_oneoff slept all 20 s on the host thread and the call then succeeded.
    let limit = Duration::from_millis(500);
    let (result, elapsed) = within(Duration::from_secs(10), move || {
        let mut p = wasi_plugin(sleeper(SLEEP_20S), Some(limit));
        let start = Instant::now();
        let result = p.call::<_, &[u8]>("sleep_20s", "").map(|_| ());
        (result, start.elapsed())
    });
    assert_timeout(result, limit);
    // Cut at the deadline, not before it: the plug-in got all the time it was allowed.
    assert!(
        elapsed >= limit,
        "stopped after {elapsed:?}, before the {limit:?} limit"
    );
}

#[test]
fn wasi_absolute_sleep_past_the_deadline_is_a_timeout() {
    // An absolute monotonic time 20 s ahead of what the plug-in reads from the clock.
    let body = r#"
      (func (export "sleep_until") (result i32)
        (call $poll (i32.const 1) (i64.add (call $now) (i64.const 20_000_000_000)) (i32.const 1)))"#;
    let limit = Duration::from_millis(300);
    let result = within(Duration::from_secs(10), move || {
        let mut p = wasi_plugin(sleeper(body), Some(limit));
        p.call::<_, &[u8]>("sleep_until", "").map(|_| ())
    });
    assert_timeout(result, limit);
}

#[test]
fn wasi_sleep_is_woken_by_cancel() {
    // No time limit at all: only the cancel can end this sleep early.
    let body = format!(
        r#"{SLEEP_20S}
      (func (export "nap") (result i32) (call $poll (i32.const 1) (i64.const 0) (i32.const 0)))"#
    );
    let mut p = wasi_plugin(sleeper(&body), None);
    let cancel = p.cancel_handle();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        cancel.cancel();
    });
    let (result, mut p) = within(Duration::from_secs(10), move || {
        let r = p.call::<_, &[u8]>("sleep_20s", "").map(|_| ());
        (r, p)
    });
    canceller.join().unwrap();
    assert!(
        matches!(result, Err(Error::Cancelled { .. })),
        "expected a cancel, got {result:?}"
    );
    // The next call runs on a fresh instance, and the old cancel does not stop it.
    p.call::<_, &[u8]>("nap", "").unwrap();
}

#[test]
fn wasi_sleep_shorter_than_the_deadline_succeeds_and_really_sleeps() {
    // The plug-in reads the monotonic clock around a 200 ms sleep, relative then absolute,
    // and outputs how long each took by its own clock.
    let body = r#"
      (func (export "nap") (result i32) (local $t i64) (local $e i32) (local $h i64)
        (local.set $h (call $alloc (i64.const 16)))
        (local.set $t (call $now))
        (local.set $e (call $poll (i32.const 1) (i64.const 200_000_000) (i32.const 0)))
        (if (local.get $e) (then (return (local.get $e))))
        (call $store_u64 (local.get $h) (i64.sub (call $now) (local.get $t)))
        (local.set $t (call $now))
        (local.set $e (call $poll (i32.const 1) (i64.add (local.get $t) (i64.const 200_000_000)) (i32.const 1)))
        (if (local.get $e) (then (return (local.get $e))))
        (call $store_u64 (i64.add (local.get $h) (i64.const 8)) (i64.sub (call $now) (local.get $t)))
        (call $output_set (local.get $h) (i64.const 16))
        (i32.const 0))"#;
    let out = within(Duration::from_secs(20), move || {
        let mut p = wasi_plugin(sleeper(body), Some(Duration::from_secs(10)));
        p.call::<_, Vec<u8>>("nap", "")
            .expect("a sleep within the limit succeeds")
    });
    let relative = i64::from_le_bytes(out[..8].try_into().unwrap());
    let absolute = i64::from_le_bytes(out[8..].try_into().unwrap());
    assert!(relative >= SECOND / 5, "a 200 ms sleep took {relative} ns");
    assert!(absolute >= SECOND / 5, "a 200 ms sleep took {absolute} ns");
}

#[test]
fn wasi_poll_with_a_ready_fd_does_not_wait_for_its_clock() {
    // stdin (empty) is always ready, so a poll on it and a 20 s clock returns at once with the
    // fd's event only. The time limit is only there to catch a wait.
    let body = r#"
      (func (export "poll_stdin") (result i32) (local $e i32)
        (call $clock_sub (i32.const 0) (i32.const 1) (i64.const 20_000_000_000) (i32.const 0))
        (i64.store (i32.const 48) (i64.const 42))
        (i32.store8 (i32.const 56) (i32.const 1))
        (i32.store (i32.const 64) (i32.const 0))
        (local.set $e (call $poll_oneoff (i32.const 0) (i32.const 512) (i32.const 2) (i32.const 128)))
        (if (local.get $e) (then (return (local.get $e))))
        ;; The output: the first event (32 bytes), then the event count.
        (i32.store (i32.const 544) (i32.load (i32.const 128)))
        (call $output_set (call $copy_in (i32.const 512) (i32.const 36)) (i64.const 36))
        (i32.const 0))"#;
    let out = within(Duration::from_secs(20), move || {
        let mut p = wasi_plugin(sleeper(body), Some(Duration::from_secs(5)));
        p.call::<_, Vec<u8>>("poll_stdin", "")
            .expect("the poll returns without waiting for the clock")
    });
    // One event: the fd_read one, with its userdata, no error, type 1 (fd_read).
    assert_eq!(u32::from_le_bytes(out[32..36].try_into().unwrap()), 1);
    assert_eq!(u64::from_le_bytes(out[0..8].try_into().unwrap()), 42);
    assert_eq!(u16::from_le_bytes(out[8..10].try_into().unwrap()), 0);
    assert_eq!(out[10], 1);
}

#[test]
fn wasi_poll_with_no_subscriptions_is_einval() {
    let body = r#"
      (func (export "poll_none") (result i32)
        (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 0) (i32.const 128)))"#;
    let mut p = wasi_plugin(sleeper(body), Some(Duration::from_secs(5)));
    match p.call::<_, &[u8]>("poll_none", "") {
        Err(Error::Guest { code: 28, .. }) => {}
        other => panic!("expected errno 28 (inval), got {other:?}"),
    }
}

#[test]
fn wasi_poll_with_subscriptions_outside_memory_traps() {
    let body = r#"
      (func (export "poll_oob") (result i32)
        (call $poll_oneoff (i32.const 65520) (i32.const 64) (i32.const 1) (i32.const 128)))"#;
    let mut p = wasi_plugin(sleeper(body), Some(Duration::from_secs(5)));
    match p.call::<_, &[u8]>("poll_oob", "") {
        Err(Error::Trap { message, .. }) => {
            assert!(
                message.contains("outside the plug-in's memory"),
                "{message}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

/// A plug-in that calls host function `wait` once and succeeds.
fn calls_wait() -> Wasm {
    let src = format!(
        r#"(module
      (import "extism:host/user" "wait" (func $wait))
      {PRELUDE}
      (memory (export "memory") 1)
      (func (export "run") (result i32) (call $wait) (i32.const 0)))"#
    );
    Wasm::data(src.into_bytes())
}

fn wait_function<T: Send + 'static>(
    data: &UserData<T>,
    f: impl Fn(&mut CurrentPlugin<'_>, &UserData<T>) + Send + Sync + 'static,
) -> Function {
    Function::new(
        "wait",
        [],
        [],
        data.clone(),
        move |p: &mut CurrentPlugin<'_>, _: &[Val], _: &mut [Val], u: UserData<T>| {
            f(p, &u);
            Ok(())
        },
    )
}

#[test]
fn host_function_past_the_deadline_is_a_timeout() {
    // Regression: a host function that overran the deadline and then returned Ok made the
    // call a success.
    let limit = Duration::from_millis(200);
    let f = wait_function(&UserData::new(()), |_, _| {
        std::thread::sleep(Duration::from_millis(600))
    });
    let m = Manifest::new([calls_wait()]).with_timeout(limit);
    let mut p = Plugin::new(m, [f], false).unwrap();
    assert_timeout(p.call::<_, &[u8]>("run", "").map(|_| ()), limit);
}

#[test]
fn host_function_cancelled_while_it_runs_is_cancelled() {
    let f = wait_function(&UserData::new(()), |_, _| {
        std::thread::sleep(Duration::from_millis(600))
    });
    let mut p = Plugin::new(Manifest::new([calls_wait()]), [f], false).unwrap();
    let cancel = p.cancel_handle();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        cancel.cancel();
    });
    let result = p.call::<_, &[u8]>("run", "").map(|_| ());
    canceller.join().unwrap();
    assert!(
        matches!(result, Err(Error::Cancelled { .. })),
        "expected a cancel, got {result:?}"
    );
}

#[test]
fn time_remaining_is_visible_to_a_host_function_and_shrinks() {
    let seen = UserData::new(Vec::<Option<Duration>>::new());
    let f = wait_function(&seen, |p, seen| {
        let first = p.time_remaining();
        std::thread::sleep(Duration::from_millis(50));
        let second = p.time_remaining();
        seen.lock().extend([first, second]);
    });
    let limit = Duration::from_secs(5);
    let m = Manifest::new([calls_wait()]).with_timeout(limit);
    let mut p = Plugin::new(m, [f], false).unwrap();
    p.call::<_, &[u8]>("run", "").unwrap();
    let got = std::mem::take(&mut *seen.lock());
    let (first, second) = (got[0].expect("a limit"), got[1].expect("a limit"));
    assert!(first <= limit, "{first:?} left of a {limit:?} limit");
    assert!(
        second + Duration::from_millis(50) <= first,
        "{second:?} left 50 ms after {first:?}"
    );

    // Without a time limit there is nothing to report.
    let f = wait_function(&seen, |p, seen| seen.lock().push(p.time_remaining()));
    let mut p = Plugin::new(Manifest::new([calls_wait()]), [f], false).unwrap();
    p.call::<_, &[u8]>("run", "").unwrap();
    assert_eq!(*seen.lock(), vec![None]);
}

#[test]
fn large_alloc_past_the_deadline_is_a_timeout() {
    // Regression: zeroing a 256 MiB block takes far longer than 2 ms, yet the plug-in
    // returned straight after it, before wasm checked the deadline, and the call succeeded.
    let body = r#"
      (func (export "big") (result i32)
        (drop (call $alloc (i64.const 268435456)))
        (i32.const 0))"#;
    let limit = Duration::from_millis(2);
    let m = Manifest::new([Wasm::data(wat(body).into_bytes())]).with_timeout(limit);
    let mut p = Plugin::new(m, [], false).unwrap();
    assert_timeout(p.call::<_, &[u8]>("big", "").map(|_| ()), limit);
}

//! 8 threads x 10,000 calls on shared compiled plug-ins, good and hostile mixed: every good
//! output is right, every hostile call fails with its own kind of error, nothing deadlocks.
//! It runs beside the other topics' tests: none of its checks depends on timing (only `spin`
//! runs under a timeout, which it always reaches).

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::wat;
use plinth::{CompiledPlugin, Error, Manifest, Plugin, SharedPlugin, Wasm};

const THREADS: u64 = 8;
const CALLS: u64 = 10_000;

/// `echo` and `rev` (the input reversed).
const GOOD: &str = r#"
  (func (export "echo") (result i32) (call $echo_input) (i32.const 0))
  (func (export "rev") (result i32) (local $n i64) (local $out i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $out (call $alloc (local.get $n)))
    (block $d (loop $l
      (br_if $d (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.sub (i64.add (local.get $out) (local.get $n)) (i64.add (local.get $i) (i64.const 1)))
                      (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l)))
    (call $output_set (local.get $out) (local.get $n)) (i32.const 0))"#;

/// Each export fails its own way; `echo` shows that the instance (or its replacement) works.
const HOSTILE: &str = r#"
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "boom") (result i32) unreachable)
  (func (export "oom") (result i32)
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable)
  (func (export "bad_output") (result i32) (call $output_set (i64.const -1) (i64.const 64)) (i32.const 0))
  (func (export "fail") (result i32) (call $fail (i32.const 0) (i32.const 4)) (i32.const 3))
  (func (export "echo") (result i32) (call $echo_input) (i32.const 0))"#;

/// What a hostile call must fail with, by export name.
fn expected_kind(function: &str, err: &Error) -> bool {
    match function {
        "spin" => matches!(err, Error::Timeout { .. }),
        "fuel" => matches!(err, Error::OutOfFuel { .. }),
        "boom" => matches!(err, Error::Trap { .. }),
        "oom" => matches!(err, Error::OutOfMemory { .. }),
        "bad_output" => matches!(err, Error::Memory(_)),
        "fail" => matches!(err, Error::Guest { code: 3, .. }),
        _ => false,
    }
}

/// xorshift64*: a fixed, cheap sequence per thread.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

enum Good {
    Own(Box<Plugin>),
    Shared(SharedPlugin),
}

impl Good {
    fn call(&mut self, f: &str, input: &[u8]) -> Vec<u8> {
        match self {
            Good::Own(p) => p.call::<_, &[u8]>(f, input).unwrap().to_vec(),
            Good::Shared(p) => p.call(f, input).unwrap(),
        }
    }
}

#[test]
fn eight_threads_mixed_good_and_hostile() {
    let good = CompiledPlugin::new(wat(GOOD).as_bytes(), [], false).unwrap();
    let hostile = CompiledPlugin::new(
        Manifest::new([Wasm::data(wat(HOSTILE).into_bytes())]).with_memory_max(16),
        [],
        false,
    )
    .unwrap();
    // The timeout is wall-clock time and 8 threads share 2 cores here: a thread may wait
    // longer than 10 ms for a core, so only `spin` runs under the short timeout.
    let timed = CompiledPlugin::new(
        Manifest::new([Wasm::data(wat(HOSTILE).into_bytes())])
            .with_timeout(Duration::from_millis(10)),
        [],
        false,
    )
    .unwrap();
    let fueled = Plugin::builder(wat(HOSTILE).as_bytes())
        .with_fuel_limit(20_000)
        .compile()
        .unwrap();
    // Odd threads share one instance of the good plug-in; even threads have their own.
    let shared = SharedPlugin::new(good.instantiate().unwrap());

    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    for t in 0..THREADS {
        let (good, hostile, timed, fueled, shared, tx) = (
            good.clone(),
            hostile.clone(),
            timed.clone(),
            fueled.clone(),
            shared.clone(),
            tx.clone(),
        );
        std::thread::spawn(move || {
            let mut good = if t % 2 == 0 {
                Good::Own(Box::new(good.instantiate().unwrap()))
            } else {
                Good::Shared(shared)
            };
            let mut hostile = hostile.instantiate().unwrap();
            let mut timed = timed.instantiate().unwrap();
            let mut fueled = fueled.instantiate().unwrap();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
            let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
            for i in 0..CALLS {
                let r = rng.next() % 1000;
                // 10% hostile calls; timeouts are the rarest as each costs 10 ms.
                let hostile_fn = match r {
                    0..=9 => Some("spin"),
                    10..=29 => Some("boom"),
                    30..=49 => Some("oom"),
                    50..=59 => Some("fuel"),
                    60..=79 => Some("bad_output"),
                    80..=99 => Some("fail"),
                    _ => None,
                };
                if let Some(f) = hostile_fn {
                    let err = if f == "fuel" {
                        fueled.call::<_, &[u8]>("spin", "").unwrap_err()
                    } else if f == "spin" {
                        timed.call::<_, &[u8]>("spin", "").unwrap_err()
                    } else {
                        hostile.call::<_, &[u8]>(f, "").unwrap_err()
                    };
                    assert!(expected_kind(f, &err), "thread {t} call {i}: {f}: {err:?}");
                    *counts.entry(f).or_default() += 1;
                    continue;
                }
                let len = (rng.next() % 300) as usize;
                let input: Vec<u8> = (0..len).map(|k| (k as u64 ^ t ^ i) as u8).collect();
                if r < 150 {
                    // The hostile plug-in itself, after whatever failures came before.
                    let out = hostile.call::<_, &[u8]>("echo", &input[..]).unwrap();
                    assert_eq!(out, &input[..], "thread {t} call {i}: hostile echo");
                    *counts.entry("hostile echo").or_default() += 1;
                } else if r.is_multiple_of(2) {
                    assert_eq!(good.call("echo", &input), input, "thread {t} call {i}");
                    *counts.entry("echo").or_default() += 1;
                } else {
                    let mut rev = input.clone();
                    rev.reverse();
                    assert_eq!(good.call("rev", &input), rev, "thread {t} call {i}");
                    *counts.entry("rev").or_default() += 1;
                }
            }
            tx.send(counts).unwrap();
        });
    }
    drop(tx);
    let mut total: BTreeMap<&'static str, u64> = BTreeMap::new();
    for _ in 0..THREADS {
        // A thread that panics drops its sender; one that deadlocks never reports.
        let counts = rx
            .recv_timeout(Duration::from_secs(600))
            .expect("a thread failed or deadlocked");
        for (k, v) in counts {
            *total.entry(k).or_default() += v;
        }
    }
    let calls: u64 = total.values().sum();
    assert_eq!(calls, THREADS * CALLS);
    println!(
        "{calls} calls on {THREADS} threads in {:.1} s: {total:?}",
        start.elapsed().as_secs_f64()
    );
    for kind in ["spin", "boom", "oom", "fuel", "bad_output", "fail"] {
        assert!(
            total.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} calls ran"
        );
    }
}

//! Async calls (issue 16), Plinth beside the Extism runtime (1.30) on the same .wasm file
//! (`extism_echo`, whose `reflect` export passes its input through the host function
//! `reflect`).
//!
//! - **Many calls in flight**: N calls at once (1,000 and 10,000), each on an instance of its
//!   own, each calling a host function that waits 20 ms, on a tokio runtime with 2 worker
//!   threads. Plinth's host function awaits a tokio timer and the calls are
//!   `Plugin::call_async`; Extism's host function sleeps (it cannot await) and each call runs
//!   in `spawn_blocking`, the one way to keep Extism off the runtime's workers. Wall time, peak
//!   OS threads and peak RSS are measured once per runtime and N, each in a child process of
//!   its own, and written to `target/criterion/async_concurrency.json` for
//!   scripts/bench_report.py. Each child runs the N calls twice: cold (the instances are made
//!   for them) and warm (the same instances again: Plinth's `PluginPool`, a free list for
//!   Extism), a server's steady state.
//! - **What async costs on a warm instance** (criterion, group `async_overhead`): a 64-byte
//!   echo through `call` and through `call_async`, and a host-function round trip through a
//!   sync host function (`call`) and an async one (`call_async`), each driven by a
//!   current-thread runtime's `block_on`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use plinth_bench::wasm_plugin;

const ECHO: &str = "extism_echo";
const WAIT: Duration = Duration::from_millis(20);
const CHILD_ENV: &str = "PLINTH_BENCH_ASYNC_CHILD";

plinth::host_fn!(plinth_reflect(_user_data: (); input: Vec<u8>) -> Vec<u8> { Ok(input) });
plinth::host_fn!(async plinth_reflect_async(_user_data: (); input: Vec<u8>) -> Vec<u8> { Ok(input) });
plinth::host_fn!(async plinth_wait(_user_data: (); input: Vec<u8>) -> Vec<u8> {
    tokio::time::sleep(WAIT).await;
    Ok(input)
});
extism::host_fn!(extism_wait(_user_data: (); input: Vec<u8>) -> Vec<u8> {
    std::thread::sleep(WAIT);
    Ok(input)
});

fn plinth_compiled(function: plinth::Function) -> plinth::CompiledPlugin {
    plinth::Plugin::builder(wasm_plugin(ECHO).as_slice())
        .with_cache_dir(None::<PathBuf>)
        .with_function(function)
        .compile()
        .unwrap()
}

fn reflect(body: bool) -> plinth::Function {
    let (params, results, data) = ([plinth::PTR], [plinth::PTR], plinth::UserData::new(()));
    match body {
        false => plinth::Function::new("reflect", params, results, data, plinth_reflect),
        true => plinth::Function::new_async("reflect", params, results, data, plinth_reflect_async),
    }
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .unwrap()
}

// ---- many calls in flight, each in a child process ----

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("a {field} line in /proc/self/status"))
}

/// Samples the process's thread count every millisecond until `stop`, keeping the largest.
fn watch_threads(stop: Arc<AtomicBool>, most: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            most.fetch_max(status_kib("Threads:"), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

/// In a child: `calls` calls at once on `runtime`, twice: first on instances made for them
/// (cold), then again on the same instances, kept for reuse (warm, a server's steady state).
/// Prints one JSON line.
fn concurrency_child(spec: &str) {
    let (which, calls) = spec.split_once(':').expect("runtime:calls");
    let calls: usize = calls.parse().expect("a number of calls");
    let rt = runtime(2);
    let input = b"event".to_vec();
    // Compiled, and one call made, before the clock and the baselines: only the calls in
    // flight are measured.
    let run: Box<dyn Fn() -> Duration> = match which {
        "plinth" | "plinth_pool_1000" => {
            let compiled = plinth_compiled(plinth::Function::new_async(
                "reflect",
                [plinth::PTR],
                [plinth::PTR],
                plinth::UserData::new(()),
                plinth_wait,
            ));
            let once = |pool: plinth::PluginPool, input: Vec<u8>| async move {
                let out: Vec<u8> = pool.call_async("reflect", &input).await.unwrap();
                assert_eq!(out, input);
            };
            rt.block_on(once(
                plinth::PluginPool::new(compiled.clone(), 1),
                input.clone(),
            ));
            // An instance per call in flight, or at most as many as the instance pool's slots
            // (`plinth::POOLED_INSTANCES`), the calls past them awaiting a free instance.
            let bound = match which {
                "plinth" => calls,
                _ => plinth::POOLED_INSTANCES as usize,
            };
            let pool = plinth::PluginPool::new(compiled, bound);
            Box::new(move || {
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..calls)
                        .map(|_| tokio::spawn(once(pool.clone(), input.clone())))
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    start.elapsed()
                })
            })
        }
        "extism" => {
            let compiled = Arc::new(
                extism::PluginBuilder::new(wasm_plugin(ECHO))
                    .with_cache_disabled()
                    .with_function(
                        "reflect",
                        [extism::PTR],
                        [extism::PTR],
                        extism::UserData::new(()),
                        extism_wait,
                    )
                    .compile()
                    .unwrap(),
            );
            // Instances kept for reuse, as Plinth's pool keeps them.
            let free: Arc<Mutex<Vec<extism::Plugin>>> = Arc::default();
            let once = |c: Arc<extism::CompiledPlugin>,
                        free: Arc<Mutex<Vec<extism::Plugin>>>,
                        input: Vec<u8>| {
                let taken = free.lock().unwrap().pop();
                let mut p = taken.unwrap_or_else(|| extism::Plugin::new_from_compiled(&c).unwrap());
                let out: Vec<u8> = p.call("reflect", &input).unwrap();
                assert_eq!(out, input);
                free.lock().unwrap().push(p);
            };
            once(compiled.clone(), Arc::default(), input.clone());
            Box::new(move || {
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..calls)
                        .map(|_| {
                            let (c, free, input) = (compiled.clone(), free.clone(), input.clone());
                            tokio::task::spawn_blocking(move || once(c, free, input))
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    start.elapsed()
                })
            })
        }
        other => panic!("unknown runtime {other}"),
    };
    let (rss_before, threads_before) = (status_kib("VmRSS:"), status_kib("Threads:"));
    let (stop, most) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let watcher = watch_threads(stop.clone(), most.clone());
    let cold = run();
    let warm = run();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let peak_rss = status_kib("VmHWM:");
    // The watcher thread itself is not counted.
    let threads = most.load(Ordering::Relaxed).saturating_sub(1);
    let growth = peak_rss.saturating_sub(rss_before);
    println!(
        r#"{{"runtime":"{which}","calls":{calls},"cold_ms":{:.1},"warm_ms":{:.1},"peak_threads":{threads},"threads_before":{threads_before},"peak_rss_kib":{peak_rss},"rss_growth_kib":{growth},"kib_per_call":{:.1}}}"#,
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        growth as f64 / calls as f64,
    );
}

/// Every runtime and count in a child process of its own; the rows go to
/// `async_concurrency.json`.
fn concurrency() {
    let exe = std::env::current_exe().expect("the bench executable");
    let mut rows = Vec::new();
    for calls in [1, 1_000, 10_000] {
        for which in ["plinth", "plinth_pool_1000", "extism"] {
            let out = std::process::Command::new(&exe)
                .env(CHILD_ENV, format!("{which}:{calls}"))
                .output()
                .expect("run the child");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "child {which}:{calls} failed: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let row = stdout
                .lines()
                .find(|l| l.starts_with('{'))
                .expect("a JSON line")
                .to_string();
            println!("async_concurrency {row}");
            rows.push(row);
        }
    }
    let dir = plinth_bench::criterion_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("async_concurrency.json");
    std::fs::write(&path, format!("[\n{}\n]\n", rows.join(",\n"))).unwrap();
    println!("wrote {}", path.display());
}

// ---- what async costs on a warm instance ----

/// Awaits `iters` calls of `plugin.call_async(function, input)` one after another inside one
/// `block_on`, as a server's task would: the executor's own entry and exit are not part of a
/// call.
fn awaited(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    plugin: &mut plinth::Plugin,
    function: &str,
    input: &[u8],
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let out: Vec<u8> = plugin.call_async(function, black_box(input)).await.unwrap();
            black_box(out);
        }
        start.elapsed()
    })
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let input = [7u8; 64];
    let mut g = c.benchmark_group("async_overhead");

    let mut sync_echo = plinth_compiled(reflect(false)).instantiate().unwrap();
    g.bench_function("echo_64B/call", |b| {
        b.iter(|| {
            let out: &[u8] = sync_echo.call("echo", black_box(&input[..])).unwrap();
            out.len()
        })
    });
    let mut async_echo = plinth_compiled(reflect(false)).instantiate().unwrap();
    g.bench_function("echo_64B/call_async", |b| {
        b.iter_custom(|iters| awaited(&rt, iters, &mut async_echo, "echo", &input))
    });
    g.bench_function("host_function_64B/call", |b| {
        b.iter(|| {
            let out: &[u8] = sync_echo.call("reflect", black_box(&input[..])).unwrap();
            out.len()
        })
    });
    let mut awaiting = plinth_compiled(reflect(true)).instantiate().unwrap();
    g.bench_function("host_function_64B/call_async", |b| {
        b.iter_custom(|iters| awaited(&rt, iters, &mut awaiting, "reflect", &input))
    });
    g.finish();
}

criterion_group!(benches, overhead);

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        concurrency_child(&spec);
        return;
    }
    // `--list` (and `cargo test`'s `--test` runs) only want the benchmarks' names or a smoke
    // run, and `--profile-time` one benchmark under a profiler.
    let args: Vec<String> = std::env::args().collect();
    if !args
        .iter()
        .any(|a| a == "--list" || a == "--test" || a == "--profile-time")
    {
        concurrency();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

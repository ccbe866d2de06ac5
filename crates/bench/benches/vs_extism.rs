//! Plinth beside the Extism runtime (the `extism` crate 1.30, on wasmtime 43) on the same .wasm
//! files, built from source by scripts/build-plugins.sh:
//!
//! - `extism_echo` / `extism_count_vowels`: written with the published extism-pdk, the
//!   plug-ins an Extism user has today. Groups without a suffix use these.
//! - `echo` / `count_vowels`: the same sources on Plinth's PDK (groups `*_plinth_pdk`). They
//!   speak the same ABI, so Extism runs them too.
//! - `echo_bulk`: `echo` with the Plinth PDK's `bulk-copy` feature, for Plinth alone (it
//!   imports `plinth:host/env`, which Extism lacks): group `throughput_echo_bulk`.
//!
//! Both runtimes get the same host function `reflect`, written with each one's `host_fn!`.
//! Extism's wasmtime compilation cache (on by default, in ~/.cache/wasmtime) is turned off
//! everywhere except in `cold_cached/extism`, and Plinth's disk cache everywhere except in
//! `cold_cached/plinth`, so that "compile" means compile.
//!
//! `plinth` uses Plinth's defaults (pooled instances since the zero-cold-start issue),
//! `plinth_on_demand` is Plinth with `with_instance_pooling(false)`, `plinth_fresh_call` a
//! whole `CompiledPlugin::call_fresh` (instance, call, drop), `plinth_tiered` a load with
//! `with_tiering` (to its first call, on Winch's code), `plinth_artifact` a load from a
//! precompiled artifact, and
//! `concurrency_echo_64B/plinth_instance_per_thread` is Plinth without a pool (an instance per
//! thread), the ceiling for the pools.
//!
//! Besides the timings, the memory of 1,000 live instances (RSS growth, each instance after
//! its first call) is measured once per runtime in a child process and written to
//! `target/criterion/vs_extism_rss.json` for scripts/bench_report.py, and so are the time and
//! peak memory of one compile, for a normal plug-in and for a call chain (the shape that
//! made Cranelift's inliner take gigabytes), in `vs_extism_compile.json`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use plinth_bench::wasm_plugin;

/// The extism-pdk build of the echo plug-in (exports `echo`, `empty`, `reflect`).
const ECHO: &str = "extism_echo";
/// The Plinth-PDK build of the same source.
const ECHO_PLINTH_PDK: &str = "echo";
const VOWELS: &str = "extism_count_vowels";
const VOWELS_PLINTH_PDK: &str = "count_vowels";

/// `(group suffix, echo plug-in, count_vowels plug-in)`: every figure is taken on both builds.
const BUILDS: [(&str, &str, &str); 2] = [
    ("", ECHO, VOWELS),
    ("_plinth_pdk", ECHO_PLINTH_PDK, VOWELS_PLINTH_PDK),
];

const SENTENCE: &str = "The quick brown fox jumps over the lazy dog, again and again and again.";

// ---- the two runtimes, set up the same way ----

plinth::host_fn!(plinth_reflect(_user_data: (); input: Vec<u8>) -> Vec<u8> { Ok(input) });
extism::host_fn!(extism_reflect(_user_data: (); input: Vec<u8>) -> Vec<u8> { Ok(input) });

fn reflect_function() -> plinth::Function {
    plinth::Function::new(
        "reflect",
        [plinth::PTR],
        [plinth::PTR],
        plinth::UserData::new(()),
        plinth_reflect,
    )
}

fn plinth_builder(wasm: &[u8]) -> plinth::PluginBuilder {
    plinth::Plugin::builder(wasm)
        .with_cache_dir(None::<PathBuf>)
        .with_function(reflect_function())
}

fn extism_builder(wasm: &[u8]) -> extism::PluginBuilder<'_> {
    extism::PluginBuilder::new(wasm)
        .with_cache_disabled()
        .with_function(
            "reflect",
            [extism::PTR],
            [extism::PTR],
            extism::UserData::new(()),
            extism_reflect,
        )
}

fn plinth_plugin(name: &str) -> plinth::Plugin {
    plinth_builder(&wasm_plugin(name)).build().unwrap()
}

fn extism_plugin(name: &str) -> extism::Plugin {
    extism_builder(&wasm_plugin(name)).build().unwrap()
}

fn plinth_compiled(name: &str) -> plinth::CompiledPlugin {
    plinth_builder(&wasm_plugin(name)).compile().unwrap()
}

fn extism_compiled(name: &str) -> extism::CompiledPlugin {
    extism_builder(&wasm_plugin(name)).compile().unwrap()
}

fn group_name(figure: &str, suffix: &str) -> String {
    format!("vs_extism/{figure}{suffix}")
}

// ---- 1. calls on a warm plug-in ----

/// One call of `function` with `input` on both runtimes, checked first, then timed.
fn call_pair(c: &mut Criterion, group: &str, plugin: &str, function: &str, input: &[u8]) {
    let mut p = plinth_plugin(plugin);
    let mut e = extism_plugin(plugin);
    let expected = p.call::<&[u8], &[u8]>(function, input).unwrap().to_vec();
    let from_extism: &[u8] = e.call(function, input).unwrap();
    assert_eq!(from_extism, &expected[..], "{plugin}::{function} differs");
    if function != "count_vowels" {
        assert_eq!(expected, input, "{plugin}::{function} is not an echo");
    }

    let mut g = c.benchmark_group(group);
    g.bench_function("plinth", |b| {
        b.iter(|| {
            let out: &[u8] = p.call(function, black_box(input)).unwrap();
            out.len()
        })
    });
    g.bench_function("extism", |b| {
        b.iter(|| {
            let out: &[u8] = e.call(function, black_box(input)).unwrap();
            out.len()
        })
    });
    g.finish();
}

fn calls(c: &mut Criterion) {
    let input = [b'x'; 64];
    for (suffix, echo, vowels) in BUILDS {
        call_pair(
            c,
            &group_name("call_echo_64B", suffix),
            echo,
            "echo",
            &input,
        );
        call_pair(c, &group_name("call_empty", suffix), echo, "empty", b"");
        call_pair(
            c,
            &group_name("call_count_vowels", suffix),
            vowels,
            "count_vowels",
            SENTENCE.as_bytes(),
        );
    }

    // The floor (the same as `call/wasmtime_floor_empty` of benches/runtime.rs, repeated here
    // so that the ratio comes from one run): a typed call of an empty export in raw wasmtime.
    use wasmtime::{Engine, Instance, Module, Store, TypedFunc};
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (func (export "empty") (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let f: TypedFunc<(), i32> = instance.get_typed_func(&mut store, "empty").unwrap();
    let mut g = c.benchmark_group("vs_extism/call_empty");
    g.bench_function("wasmtime_floor", |b| {
        b.iter(|| f.call(&mut store, ()).unwrap())
    });
    g.finish();
}

// ---- 2. throughput, and 3. the host function round trip ----

/// `function` (an echo: output = input) at each size on both runtimes, as bytes per second.
fn sizes_pair(c: &mut Criterion, group: &str, plugin: &str, function: &str, sizes: &[usize]) {
    let mut p = plinth_plugin(plugin);
    let mut e = extism_plugin(plugin);
    let mut g = c.benchmark_group(group);
    for &size in sizes {
        let input: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let out: &[u8] = p.call(function, &input[..]).unwrap();
        assert!(
            out == &input[..],
            "plinth: {plugin}::{function} at {size} B"
        );
        let out: &[u8] = e.call(function, &input[..]).unwrap();
        assert!(
            out == &input[..],
            "extism: {plugin}::{function} at {size} B"
        );

        g.throughput(Throughput::Bytes(size as u64));
        g.sample_size(if size >= 16 << 20 { 10 } else { 100 });
        g.bench_with_input(BenchmarkId::new("plinth", size), &input, |b, input| {
            b.iter(|| {
                let out: &[u8] = p.call(function, &input[..]).unwrap();
                out.len()
            })
        });
        g.bench_with_input(BenchmarkId::new("extism", size), &input, |b, input| {
            b.iter(|| {
                let out: &[u8] = e.call(function, &input[..]).unwrap();
                out.len()
            })
        });
    }
    g.finish();
}

const SIZES: [usize; 3] = [64 << 10, 1 << 20, 16 << 20];

fn throughput(c: &mut Criterion) {
    for (suffix, echo, _) in BUILDS {
        sizes_pair(
            c,
            &group_name("throughput_echo", suffix),
            echo,
            "echo",
            &SIZES,
        );
    }

    // Plinth alone: the same echo source built with the Plinth PDK's `bulk-copy` feature
    // (plugins/bulk/echo_bulk), which moves the input and the output with one host copy each.
    // It imports `plinth:host/env`, which Extism does not offer.
    let mut p = plinth_plugin("echo_bulk");
    let mut g = c.benchmark_group("vs_extism/throughput_echo_bulk");
    for size in SIZES {
        let input: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        assert!(p.call::<&[u8], &[u8]>("echo", &input[..]).unwrap() == &input[..]);
        g.throughput(Throughput::Bytes(size as u64));
        g.sample_size(if size >= 16 << 20 { 10 } else { 100 });
        g.bench_with_input(BenchmarkId::new("plinth", size), &input, |b, input| {
            b.iter(|| {
                let out: &[u8] = p.call("echo", &input[..]).unwrap();
                out.len()
            })
        });
    }
    g.finish();
}

fn host_function(c: &mut Criterion) {
    for (suffix, echo, _) in BUILDS {
        let sizes = [64, 1 << 20];
        sizes_pair(c, &group_name("reflect", suffix), echo, "reflect", &sizes);
    }
}

// ---- 4. a new instance of a compiled plug-in ----

/// Times `iters` rounds of `make` (a new instance, to the end of its first call); each
/// instance is dropped before the next round, untimed, so that few are alive at once (pooled
/// Plinth instances have 1,000 slots per process).
fn time_new<P>(iters: u64, make: impl Fn() -> P) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        let p = make();
        total += t.elapsed();
        drop(p);
    }
    total
}

/// A new Plinth instance of `c`, after its first call.
fn plinth_first_call(c: &plinth::CompiledPlugin) -> plinth::Plugin {
    let mut p = c.instantiate().unwrap();
    let out: &[u8] = p.call("echo", "hi").unwrap();
    assert_eq!(out, b"hi");
    p
}

/// A new Extism instance of `c`, after its first call (Extism instantiates at the first call).
fn extism_first_call(c: &extism::CompiledPlugin) -> extism::Plugin {
    let mut p = extism::Plugin::new_from_compiled(c).unwrap();
    let out: &[u8] = p.call("echo", "hi").unwrap();
    assert_eq!(out, b"hi");
    p
}

/// Plinth with `with_instance_pooling(false)`: instances allocated on demand.
fn plinth_on_demand_compiled(name: &str) -> plinth::CompiledPlugin {
    plinth_builder(&wasm_plugin(name))
        .with_instance_pooling(false)
        .compile()
        .unwrap()
}

fn instances(c: &mut Criterion) {
    for (suffix, echo, _) in BUILDS {
        let pc = plinth_compiled(echo);
        let on_demand = plinth_on_demand_compiled(echo);
        let ec = extism_compiled(echo);
        let mut g = c.benchmark_group(group_name("new_instance_first_call", suffix));
        // Extism instantiates on the first call, Plinth at once: the first call's end is the
        // point where both have a usable instance.
        g.bench_function("plinth", |b| {
            b.iter_custom(|iters| time_new(iters, || plinth_first_call(&pc)))
        });
        g.bench_function("plinth_on_demand", |b| {
            b.iter_custom(|iters| time_new(iters, || plinth_first_call(&on_demand)))
        });
        // A fresh instance for every call, dropped after it: the whole cost, drop included.
        g.bench_function("plinth_fresh_call", |b| {
            b.iter(|| {
                let out: Vec<u8> = pc.call_fresh("echo", "hi").unwrap();
                assert_eq!(out, b"hi");
            })
        });
        g.bench_function("extism", |b| {
            b.iter_custom(|iters| time_new(iters, || extism_first_call(&ec)))
        });
        g.finish();
    }
}

/// RSS of this process in KiB (VmRSS of /proc/self/status).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line in /proc/self/status")
}

const LIVE_INSTANCES: usize = 1000;
const RSS_CHILD_ENV: &str = "PLINTH_BENCH_RSS_CHILD";

/// RSS growth in KiB while `LIVE_INSTANCES` instances made by `make` are alive. One instance
/// is made and dropped first, so that one-time set-up (threads, engine, slots) is not counted.
fn rss_growth<P>(make: impl Fn() -> P) -> u64 {
    drop(make());
    let before = rss_kib();
    let live: Vec<P> = (0..LIVE_INSTANCES).map(|_| make()).collect();
    let after = rss_kib();
    drop(live);
    after.saturating_sub(before)
}

/// In a child process: RSS growth for `LIVE_INSTANCES` live instances of `plugin` (each after
/// its first call) on `runtime`, printed as `rss_growth_kib N`.
fn rss_child(spec: &str) {
    let (runtime, plugin) = spec.split_once(':').expect("runtime:plugin");
    let growth = match runtime {
        "plinth" => {
            let c = plinth_compiled(plugin);
            rss_growth(|| plinth_first_call(&c))
        }
        "plinth_on_demand" => {
            let c = plinth_on_demand_compiled(plugin);
            rss_growth(|| plinth_first_call(&c))
        }
        "extism" => {
            let c = extism_compiled(plugin);
            rss_growth(|| extism_first_call(&c))
        }
        other => panic!("unknown runtime {other}"),
    };
    println!("rss_growth_kib {growth}");
}

/// The memory figure: not a timing, so measured once per runtime and plug-in, each in a fresh
/// process (so that neither reuses memory the other freed), and written as JSON.
fn rss_per_instance() {
    let exe = std::env::current_exe().expect("the bench executable");
    let mut rows = Vec::new();
    for plugin in [ECHO, ECHO_PLINTH_PDK] {
        for runtime in ["plinth", "plinth_on_demand", "extism"] {
            let out = std::process::Command::new(&exe)
                .env(RSS_CHILD_ENV, format!("{runtime}:{plugin}"))
                .output()
                .expect("run the RSS child");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "RSS child {runtime}:{plugin} failed: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let kib: u64 = stdout
                .lines()
                .find_map(|l| l.strip_prefix("rss_growth_kib "))
                .and_then(|v| v.trim().parse().ok())
                .expect("an rss_growth_kib line");
            let per = kib as f64 / LIVE_INSTANCES as f64;
            println!(
                "vs_extism/rss_per_instance/{runtime}/{plugin}: {kib} KiB for {LIVE_INSTANCES} \
                 live instances, {per:.1} KiB each"
            );
            rows.push(format!(
                r#"{{"runtime":"{runtime}","plugin":"{plugin}","instances":{LIVE_INSTANCES},"rss_growth_kib":{kib},"kib_per_instance":{per:.2}}}"#
            ));
        }
    }
    let dir = plinth_bench::criterion_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vs_extism_rss.json");
    std::fs::write(&path, format!("[\n{}\n]\n", rows.join(",\n"))).unwrap();
    println!("wrote {}", path.display());
}

// ---- 5b. what a compile costs: time and peak memory, per shape of module ----

const COMPILE_CHILD_ENV: &str = "PLINTH_BENCH_COMPILE_CHILD";
/// Links in the call-chain module: the shape that made Cranelift's inliner take gigabytes.
const CHAIN_LINKS: usize = 2000;

/// A chain of `n` small functions, each calling the next twice (about 14 bytes of wasm each).
fn call_chain(n: usize) -> Vec<u8> {
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
    wat::parse_str(wat).unwrap()
}

/// Peak RSS of this process in KiB (VmHWM).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line in /proc/self/status")
}

/// In a child process: compile `shape` on `runtime` once, caches off, and print the wall time
/// and the growth of peak RSS.
fn compile_child(spec: &str) {
    let (runtime, shape) = spec.split_once(':').expect("runtime:shape");
    let wasm = match shape {
        "call_chain" => call_chain(CHAIN_LINKS),
        plugin => wasm_plugin(plugin),
    };
    let before = peak_rss_kib();
    let start = Instant::now();
    match runtime {
        "plinth" => drop(plinth_builder(&wasm).compile().unwrap()),
        "extism" => drop(extism_builder(&wasm).compile().unwrap()),
        other => panic!("unknown runtime {other}"),
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    println!("compile_ms {ms:.2}");
    println!("peak_growth_kib {}", peak_rss_kib().saturating_sub(before));
}

/// Compile time and peak memory of a normal plug-in and of the call-chain shape, each
/// compile in a fresh process (3 runs each, the median kept), written as JSON.
fn compile_cost() {
    let exe = std::env::current_exe().expect("the bench executable");
    let mut rows = Vec::new();
    for shape in [VOWELS, "call_chain"] {
        for runtime in ["plinth", "extism"] {
            let mut runs: Vec<(f64, u64)> = (0..3)
                .map(|_| {
                    let out = std::process::Command::new(&exe)
                        .env(COMPILE_CHILD_ENV, format!("{runtime}:{shape}"))
                        .output()
                        .expect("run the compile child");
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        out.status.success(),
                        "compile child {runtime}:{shape} failed: {stdout}{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let field = |name: &str| {
                        stdout
                            .lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(|v| v.trim().to_string())
                            .expect("a figure line")
                    };
                    (
                        field("compile_ms ").parse().unwrap(),
                        field("peak_growth_kib ").parse().unwrap(),
                    )
                })
                .collect();
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (ms, kib) = runs[1];
            println!("vs_extism/compile_cost/{runtime}/{shape}: {ms:.1} ms, peak +{kib} KiB");
            rows.push(format!(
                r#"{{"runtime":"{runtime}","shape":"{shape}","compile_ms":{ms:.2},"peak_growth_kib":{kib}}}"#
            ));
        }
    }
    let dir = plinth_bench::criterion_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vs_extism_compile.json");
    std::fs::write(&path, format!("[\n{}\n]\n", rows.join(",\n"))).unwrap();
    println!("wrote {}", path.display());
}

// ---- 5. cold load ----

fn cold_load(c: &mut Criterion) {
    for (suffix, _, vowels) in BUILDS {
        let wasm = wasm_plugin(vowels);
        let input = SENTENCE.as_bytes();
        let mut g = c.benchmark_group(group_name("cold_compile", suffix));
        g.sample_size(10);
        // From bytes to the end of the first call, compiling: Plinth with its in-memory
        // and disk caches off, Extism with wasmtime's cache off (it also compiles its kernel
        // module and makes a new wasmtime Engine per plug-in, which is part of its cost).
        g.bench_function("plinth", |b| {
            b.iter(|| {
                plinth::clear_compile_cache();
                let mut p = plinth_builder(&wasm).build().unwrap();
                p.call::<&[u8], &[u8]>("count_vowels", input).unwrap().len()
            })
        });
        // With tiering: to the end of the first call, on Winch's code. The background
        // compile is waited for after the clock stops, so that it never overlaps the next
        // round.
        g.bench_function("plinth_tiered", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    plinth::clear_compile_cache();
                    let t = Instant::now();
                    let compiled = plinth_builder(&wasm).with_tiering(true).compile().unwrap();
                    let mut p = compiled.instantiate().unwrap();
                    black_box(p.call::<&[u8], &[u8]>("count_vowels", input).unwrap().len());
                    total += t.elapsed();
                    compiled.wait_for_optimized();
                }
                total
            })
        });
        // From a precompiled artifact (`plinth compile`): verify, load the native code,
        // instantiate, call.
        let key = plinth::ArtifactKey::generate().unwrap();
        let artifact = plinth_builder(&wasm).compile_artifact(&key).unwrap();
        g.bench_function("plinth_artifact", |b| {
            b.iter(|| {
                plinth::clear_compile_cache();
                let compiled = plinth::PluginBuilder::from_artifact(artifact.clone(), &key)
                    .with_cache_dir(None::<PathBuf>)
                    .with_function(reflect_function())
                    .compile()
                    .unwrap();
                assert!(compiled.is_precompiled());
                let mut p = compiled.instantiate().unwrap();
                p.call::<&[u8], &[u8]>("count_vowels", input).unwrap().len()
            })
        });
        g.bench_function("extism", |b| {
            b.iter(|| {
                let mut p = extism_builder(&wasm).build().unwrap();
                p.call::<&[u8], &[u8]>("count_vowels", input).unwrap().len()
            })
        });
        g.finish();

        // The same from a cache on disk that an earlier process filled: Plinth's own
        // (HMAC-checked) compiled-module cache, and wasmtime's cache as Extism configures it
        // (its default when no EXTISM_CACHE_CONFIG is set is ~/.cache/wasmtime; here a
        // temporary directory through `with_cache_config`).
        let dir = tempfile::tempdir().unwrap();
        let plinth_cache = dir.path().join("plinth");
        let wasmtime_cache = dir.path().join("wasmtime");
        let config = dir.path().join("wasmtime-cache.toml");
        std::fs::write(
            &config,
            format!(
                "[cache]\ndirectory = {:?}\n",
                wasmtime_cache.display().to_string()
            ),
        )
        .unwrap();
        let plinth_cached = || {
            plinth::clear_compile_cache();
            plinth_builder(&wasm)
                .with_cache_dir(Some(&plinth_cache))
                .build()
                .unwrap()
        };
        let extism_cached = || {
            extism_builder(&wasm)
                .with_cache_config(&config)
                .build()
                .unwrap()
        };
        plinth_cached();
        extism_cached()
            .call::<&[u8], &[u8]>("count_vowels", input)
            .unwrap();
        assert!(
            std::fs::read_dir(&wasmtime_cache).is_ok_and(|mut d| d.next().is_some()),
            "wasmtime's cache stayed empty"
        );
        let mut g = c.benchmark_group(group_name("cold_cached", suffix));
        g.sample_size(20);
        g.bench_function("plinth", |b| {
            b.iter(|| {
                let mut p = plinth_cached();
                p.call::<&[u8], &[u8]>("count_vowels", input).unwrap().len()
            })
        });
        g.bench_function("extism", |b| {
            b.iter(|| {
                let mut p = extism_cached();
                p.call::<&[u8], &[u8]>("count_vowels", input).unwrap().len()
            })
        });
        g.finish();
    }
}

// ---- 6. calls from 2 threads against 1 ----

/// Runs `call` `iters` times on each of `threads` threads, started together; the time until
/// all are done. Each iteration is one call per thread.
fn on_threads(threads: usize, iters: u64, call: impl Fn() + Clone + Send + 'static) -> Duration {
    let start = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (call, start) = (call.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..iters {
                    call();
                }
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    for w in workers {
        w.join().unwrap();
    }
    t.elapsed()
}

fn concurrency(c: &mut Criterion) {
    let input = [b'x'; 64];
    let plinth_pool = plinth::PluginPool::new(plinth_compiled(ECHO), 2);
    let compiled = extism_compiled(ECHO);
    let extism_pool = extism::PoolBuilder::new()
        .with_max_instances(2)
        .build(move || extism::Plugin::new_from_compiled(&compiled));
    let mut g = c.benchmark_group("vs_extism/concurrency_echo_64B");
    for threads in [1usize, 2] {
        // Throughput in calls: criterion reports calls per second.
        g.throughput(Throughput::Elements(threads as u64));
        let pool = plinth_pool.clone();
        g.bench_with_input(BenchmarkId::new("plinth", threads), &threads, |b, &n| {
            b.iter_custom(|iters| {
                let pool = pool.clone();
                on_threads(n, iters, move || {
                    let len = pool
                        .with(|p| p.call::<&[u8], &[u8]>("echo", &input).map(<[u8]>::len))
                        .unwrap();
                    assert_eq!(len, 64);
                })
            })
        });
        let pool = extism_pool.clone();
        g.bench_with_input(BenchmarkId::new("extism", threads), &threads, |b, &n| {
            b.iter_custom(|iters| {
                let pool = pool.clone();
                on_threads(n, iters, move || {
                    let len = pool
                        .with_plugin(Duration::from_secs(60), |p| {
                            p.call::<&[u8], &[u8]>("echo", &input).map(<[u8]>::len)
                        })
                        .unwrap()
                        .expect("a pooled instance within 60 s");
                    assert_eq!(len, 64);
                })
            })
        });
        // The ceiling for the pools: Plinth with an instance of its own on each thread, no
        // pool and nothing shared but the compiled plug-in and the engine.
        let compiled = plinth_compiled(ECHO);
        g.bench_with_input(
            BenchmarkId::new("plinth_instance_per_thread", threads),
            &threads,
            |b, &n| {
                b.iter_custom(|iters| {
                    let start = Arc::new(Barrier::new(n + 1));
                    let workers: Vec<_> = (0..n)
                        .map(|_| {
                            let mut p = compiled.instantiate().unwrap();
                            let start = start.clone();
                            std::thread::spawn(move || {
                                start.wait();
                                for _ in 0..iters {
                                    let out: &[u8] = p.call("echo", &input[..]).unwrap();
                                    assert_eq!(out.len(), 64);
                                }
                            })
                        })
                        .collect();
                    start.wait();
                    let t = Instant::now();
                    for w in workers {
                        w.join().unwrap();
                    }
                    t.elapsed()
                })
            },
        );
    }
    g.finish();
}

criterion_group!(
    benches,
    calls,
    throughput,
    host_function,
    instances,
    cold_load,
    concurrency
);

fn main() {
    if let Ok(spec) = std::env::var(RSS_CHILD_ENV) {
        rss_child(&spec);
        return;
    }
    if let Ok(spec) = std::env::var(COMPILE_CHILD_ENV) {
        compile_child(&spec);
        return;
    }
    // `--list` (and `cargo test`'s `--test` runs) only want the benchmarks' names or a smoke run.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--list" || a == "--test") {
        rss_per_instance();
        compile_cost();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

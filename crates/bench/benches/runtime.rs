//! Plinth's per-call and per-instance costs, beside raw wasmtime's floor.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use plinth::{CompiledPlugin, Plugin};
use plinth_bench::echo_plugin;
use wasmtime::{Engine, Instance, Module, Store, TypedFunc};

fn calls(c: &mut Criterion) {
    let mut plugin = Plugin::new(echo_plugin().as_bytes(), [], false).unwrap();
    let input = [b'x'; 64];
    let mut g = c.benchmark_group("call");
    g.bench_function("echo_64B", |b| {
        b.iter(|| {
            let out: &[u8] = plugin.call("echo", &input[..]).unwrap();
            assert_eq!(out.len(), 64);
        })
    });
    g.bench_function("empty", |b| {
        b.iter(|| {
            let out: &[u8] = plugin.call("empty", "").unwrap();
            assert!(out.is_empty());
        })
    });

    // The floor: a typed call of an empty export in raw wasmtime.
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (func (export "empty") (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let f: TypedFunc<(), i32> = instance.get_typed_func(&mut store, "empty").unwrap();
    g.bench_function("wasmtime_floor_empty", |b| {
        b.iter(|| f.call(&mut store, ()).unwrap())
    });
    g.finish();
}

fn throughput(c: &mut Criterion) {
    let mut plugin = Plugin::new(echo_plugin().as_bytes(), [], false).unwrap();
    let mut g = c.benchmark_group("throughput/echo");
    for size in [64 << 10, 1 << 20] {
        let input = vec![7u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &input, |b, input| {
            b.iter(|| {
                let out: &[u8] = plugin.call("echo", &input[..]).unwrap();
                assert_eq!(out.len(), input.len());
            })
        });
    }
    g.finish();
}

fn instances(c: &mut Criterion) {
    let compiled = CompiledPlugin::new(echo_plugin().as_bytes(), [], false).unwrap();
    let mut g = c.benchmark_group("instance");
    g.bench_function("new_from_compiled_plus_first_call", |b| {
        b.iter(|| {
            let mut p = compiled.instantiate().unwrap();
            let out: &[u8] = p.call("echo", "hi").unwrap();
            assert_eq!(out, b"hi");
        })
    });
    let pooled = Plugin::builder(echo_plugin().as_bytes())
        .with_instance_pooling(true)
        .compile()
        .unwrap();
    g.bench_function("new_from_compiled_pooled_plus_first_call", |b| {
        b.iter(|| {
            let mut p = pooled.instantiate().unwrap();
            let out: &[u8] = p.call("echo", "hi").unwrap();
            assert_eq!(out, b"hi");
        })
    });
    let wat = echo_plugin();
    g.sample_size(20);
    // Both caches off: what a plug-in costs the first time it is seen.
    g.bench_function("compile_and_instantiate", |b| {
        b.iter(|| {
            plinth::clear_compile_cache();
            Plugin::builder(wat.as_bytes())
                .with_cache_dir(None::<&str>)
                .build()
                .unwrap()
        })
    });
    // A new process loading a plug-in it compiled before: the on-disk cache, not memory's.
    let dir = tempfile::tempdir().unwrap();
    Plugin::builder(wat.as_bytes())
        .with_cache_dir(Some(dir.path()))
        .build()
        .unwrap();
    g.bench_function("load_from_disk_cache_and_instantiate", |b| {
        b.iter(|| {
            plinth::clear_compile_cache();
            Plugin::builder(wat.as_bytes())
                .with_cache_dir(Some(dir.path()))
                .build()
                .unwrap()
        })
    });
    // The same process loading the same bytes again: the in-memory cache.
    g.bench_function("load_from_memory_cache_and_instantiate", |b| {
        b.iter(|| Plugin::new(wat.as_bytes(), [], false).unwrap())
    });
    g.finish();
}

/// Calls per second on one loaded plug-in from 1 and 2 threads, through `PluginPool`:
/// each iteration is one call per thread, so the time per iteration falling short of double
/// from 1 to 2 threads is the parallel speed-up.
fn concurrency(c: &mut Criterion) {
    let compiled = CompiledPlugin::new(echo_plugin().as_bytes(), [], false).unwrap();
    let pool = plinth::PluginPool::new(compiled, 2);
    let input = [b'x'; 64];
    let mut g = c.benchmark_group("concurrency");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_with_input(
            BenchmarkId::new("pool_echo_64B_threads", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    let start = std::sync::Arc::new(std::sync::Barrier::new(threads + 1));
                    let workers: Vec<_> = (0..threads)
                        .map(|_| {
                            let (pool, start) = (pool.clone(), start.clone());
                            std::thread::spawn(move || {
                                start.wait();
                                for _ in 0..iters {
                                    let out = pool.call("echo", &input[..]).unwrap();
                                    assert_eq!(out.len(), 64);
                                }
                            })
                        })
                        .collect();
                    start.wait();
                    let t = std::time::Instant::now();
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

criterion_group!(benches, calls, throughput, instances, concurrency);
criterion_main!(benches);

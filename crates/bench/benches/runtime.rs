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
    let wat = echo_plugin();
    g.sample_size(20);
    g.bench_function("compile_and_instantiate", |b| {
        b.iter(|| Plugin::new(wat.as_bytes(), [], false).unwrap())
    });
    g.finish();
}

criterion_group!(benches, calls, throughput, instances);
criterion_main!(benches);

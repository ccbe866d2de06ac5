//! Where should the per-8-byte Extism ABI calls land? The same 1 MiB echo loop against three
//! designs, in raw wasmtime: native host functions over a host buffer, a separate wasm kernel
//! instance, and the kernel fused into the plug-in (with and without Cranelift inlining).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use plinth_bench::{echo_importing, fused_echo, kernel_module};
use wasmtime::{Caller, Config, Engine, Inlining, Instance, Linker, Module, Store, TypedFunc};

const SIZES: [usize; 2] = [64, 1 << 20];
const PAGES: u32 = 40;

struct Arena {
    data: Vec<u8>,
    input: (u64, u64),
    output: (u64, u64),
}

fn host_functions(c: &mut Criterion) {
    let engine = Engine::default();
    let module = Module::new(&engine, echo_importing("env")).unwrap();
    let mut linker: Linker<Arena> = Linker::new(&engine);
    type C<'a> = Caller<'a, Arena>;
    linker
        .func_wrap("env", "input_length", |c: C| c.data().input.1 as i64)
        .unwrap();
    linker
        .func_wrap("env", "input_load_u64", |c: C, off: i64| {
            let d = c.data();
            let (base, len) = d.input;
            let off = off as u64;
            if off + 8 <= len {
                let s = (base + off) as usize;
                i64::from_le_bytes(d.data[s..s + 8].try_into().unwrap())
            } else {
                0
            }
        })
        .unwrap();
    linker
        .func_wrap("env", "input_load_u8", |c: C, off: i64| {
            let d = c.data();
            if (off as u64) < d.input.1 {
                d.data[(d.input.0 + off as u64) as usize] as i32
            } else {
                0
            }
        })
        .unwrap();
    linker
        .func_wrap("env", "alloc", |mut c: C, n: i64| {
            let d = c.data_mut();
            let h = (d.data.len() + 7) & !7;
            d.data.resize(h + n as usize, 0);
            h as i64
        })
        .unwrap();
    linker
        .func_wrap("env", "store_u64", |mut c: C, a: i64, v: i64| {
            if let Some(b) = c.data_mut().data.get_mut(a as usize..a as usize + 8) {
                b.copy_from_slice(&v.to_le_bytes());
            }
        })
        .unwrap();
    linker
        .func_wrap("env", "store_u8", |mut c: C, a: i64, v: i32| {
            if let Some(b) = c.data_mut().data.get_mut(a as usize) {
                *b = v as u8;
            }
        })
        .unwrap();
    linker
        .func_wrap("env", "output_set", |mut c: C, h: i64, n: i64| {
            c.data_mut().output = (h as u64, n as u64);
        })
        .unwrap();
    let mut store = Store::new(
        &engine,
        Arena {
            data: Vec::new(),
            input: (0, 0),
            output: (0, 0),
        },
    );
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let echo: TypedFunc<(), i32> = instance.get_typed_func(&mut store, "echo").unwrap();

    let mut g = c.benchmark_group("abi_design/host_functions");
    for size in SIZES {
        let input = vec![7u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &input, |b, input| {
            b.iter(|| {
                let d = store.data_mut();
                d.data.clear();
                d.data.resize(8, 0);
                d.data.extend_from_slice(input);
                d.input = (8, input.len() as u64);
                echo.call(&mut store, ()).unwrap();
                let (h, n) = store.data().output;
                assert_eq!(n as usize, input.len());
                assert_eq!(store.data().data[h as usize], 7);
            })
        });
    }
    g.finish();
}

/// Runs `echo` with the kernel's memory and `begin` taken from `kernel`.
fn bench_kernel_like(
    c: &mut Criterion,
    group: &str,
    mut store: Store<()>,
    kernel: Instance,
    plugin: Instance,
) {
    let mem = kernel.get_memory(&mut store, "mem").unwrap();
    let begin: TypedFunc<i64, ()> = kernel.get_typed_func(&mut store, "begin").unwrap();
    let out_len = kernel.get_global(&mut store, "out_len").unwrap();
    let echo: TypedFunc<(), i32> = plugin.get_typed_func(&mut store, "echo").unwrap();
    let mut g = c.benchmark_group(group);
    for size in SIZES {
        let input = vec![7u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &input, |b, input| {
            b.iter(|| {
                mem.data_mut(&mut store)[8..8 + input.len()].copy_from_slice(input);
                begin.call(&mut store, input.len() as i64).unwrap();
                echo.call(&mut store, ()).unwrap();
                assert_eq!(out_len.get(&mut store).unwrap_i64() as usize, input.len());
            })
        });
    }
    g.finish();
}

fn wasm_kernel(c: &mut Criterion) {
    let engine = Engine::default();
    let kernel = Module::new(&engine, kernel_module(PAGES)).unwrap();
    let plugin = Module::new(&engine, echo_importing("kernel")).unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker: Linker<()> = Linker::new(&engine);
    let k = linker.instantiate(&mut store, &kernel).unwrap();
    linker.instance(&mut store, "kernel", k).unwrap();
    let p = linker.instantiate(&mut store, &plugin).unwrap();
    bench_kernel_like(c, "abi_design/wasm_kernel", store, k, p);
}

fn fused(c: &mut Criterion) {
    // The last variant adds epoch interruption, which Plinth uses for timeouts and cancel.
    for (name, inlining, epoch) in [
        ("fused_no_inlining", Inlining::No, false),
        ("fused_inlined", Inlining::Yes, false),
        ("fused_inlined_epoch", Inlining::Yes, true),
    ] {
        let mut config = Config::new();
        config.compiler_inlining(inlining);
        config.epoch_interruption(epoch);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, fused_echo(PAGES)).unwrap();
        let mut store = Store::new(&engine, ());
        store.set_epoch_deadline(u64::MAX / 2);
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        bench_kernel_like(c, &format!("abi_design/{name}"), store, i, i);
    }
}

criterion_group!(benches, host_functions, wasm_kernel, fused);
criterion_main!(benches);

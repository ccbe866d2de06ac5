//! Loops for a profiler (`perf record`, `valgrind --tool=callgrind`), each printing its time
//! per round. Build with `cargo build --release -p plinth-bench --example profile`, then:
//! - `profile fresh [on-demand]`: a new instance of `extism_echo` and a 64 B call, dropped
//!   (pooled instances unless `on-demand`);
//! - `profile echo [PLUGIN [MIB [on-demand]]]`: a warm echo of MIB MiB (default `echo_bulk`,
//!   1 MiB, pooled instances).
//!
//! `N` sets the number of rounds.

use std::time::Instant;

plinth::host_fn!(reflect(_user_data: (); input: Vec<u8>) -> Vec<u8> { Ok(input) });

fn builder(name: &str) -> plinth::PluginBuilder {
    let reflect = plinth::Function::new(
        "reflect",
        [plinth::PTR],
        [plinth::PTR],
        plinth::UserData::new(()),
        reflect,
    );
    plinth::Plugin::builder(plinth_bench::wasm_plugin(name))
        .with_function(reflect)
        .with_cache_dir(None::<std::path::PathBuf>)
}

fn rounds(default: u32) -> u32 {
    std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fresh") => {
            let pooled = args.get(1).map(String::as_str) != Some("on-demand");
            let compiled = builder("extism_echo")
                .with_instance_pooling(pooled)
                .compile()
                .unwrap();
            let n = rounds(200_000);
            let input = [7u8; 64];
            let t = Instant::now();
            for _ in 0..n {
                let out: Vec<u8> = compiled.call_fresh("echo", &input[..]).unwrap();
                assert_eq!(out.len(), 64);
            }
            println!("{:?} per fresh instance and call", t.elapsed() / n);
        }
        Some("echo") => {
            let name = args.get(1).map_or("echo_bulk", String::as_str);
            let mib: usize = args.get(2).and_then(|m| m.parse().ok()).unwrap_or(1);
            let pooled = args.get(3).map(String::as_str) != Some("on-demand");
            let mut p = builder(name).with_instance_pooling(pooled).build().unwrap();
            let input = vec![7u8; mib << 20];
            let n = rounds(3000 / mib as u32 + 1);
            let t = Instant::now();
            for _ in 0..n {
                let out: &[u8] = p.call("echo", &input[..]).unwrap();
                assert_eq!(out.len(), mib << 20);
            }
            let per = t.elapsed() / n;
            let rate = mib as f64 / 1024.0 / per.as_secs_f64();
            println!("{per:?} per {mib} MiB echo ({rate:.2} GiB/s)");
        }
        _ => {
            eprintln!("usage: profile fresh [on-demand] | profile echo [PLUGIN [MIB [on-demand]]]")
        }
    }
}

//! 100,000 plug-in instances created and freed: the process's RSS after equals RSS before
//! within a small bound. `PLINTH_CHURN_INSTANCES` changes the count.
//!
//! A separate test binary, not a module of `tests/all`: it reads the RSS of its whole process,
//! which tests running beside it on other threads would change.

#[path = "all/common.rs"]
mod common;
use std::time::{Duration, Instant};

use common::{echo_wat, wat};
use plinth::{CompiledPlugin, Error, Manifest, Plugin, Wasm};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn creating_and_freeing_instances_returns_the_memory() {
    let n: u64 = std::env::var("PLINTH_CHURN_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let echo = Wasm::data(
        wat(
            r#"(func (export "echo") (result i32) (call $echo_input) (i32.const 0))
               (func (export "boom") (result i32) unreachable)"#,
        )
        .into_bytes(),
    );
    // Three kinds of instance: plain, with WASI and a preopen, with limits.
    let kinds = [
        CompiledPlugin::new(echo_wat().as_bytes(), [], false).unwrap(),
        CompiledPlugin::new(
            Manifest::new([echo.clone()]).with_allowed_path(dir.path(), "/data"),
            [],
            true,
        )
        .unwrap(),
        CompiledPlugin::new(
            Manifest::new([echo])
                .with_memory_max(16)
                .with_timeout(Duration::from_secs(5)),
            [],
            false,
        )
        .unwrap(),
    ];
    let round = |count: u64| {
        for i in 0..count {
            let mut p: Plugin = kinds[(i % 3) as usize].instantiate().unwrap();
            // Every 10th instance is called; about every 100th traps and is replaced (the
            // plain kind has no `boom`).
            if i % 10 == 0 {
                let msg = i.to_string();
                assert_eq!(p.call::<_, &str>("echo", msg.as_str()).unwrap(), msg);
            }
            if i % 100 == 1 && i % 3 != 0 {
                let err = p.call::<_, &[u8]>("boom", "").unwrap_err();
                assert!(matches!(err, Error::Trap { .. }), "{err:?}");
                assert_eq!(p.call::<_, &str>("echo", "again").unwrap(), "again");
            }
        }
    };
    // Warm-up: allocator pools, lazily made engine state, the epoch ticker.
    round(3_000);
    let before = rss_kib();
    let start = Instant::now();
    round(n);
    let took = start.elapsed();
    let after = rss_kib();
    println!(
        "{n} instances in {:.1} s; RSS before {before} KiB, after {after} KiB ({:+} KiB)",
        took.as_secs_f64(),
        after as i64 - before as i64
    );
    // Even 64 bytes kept per instance would be 6 MiB over 100,000.
    assert!(
        after < before + 4096,
        "RSS grew from {before} KiB to {after} KiB over {n} instances"
    );
}

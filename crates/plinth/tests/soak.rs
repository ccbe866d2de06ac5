//! Memory stays flat over many calls and many instances.
//!
//! A separate test binary, not a module of `tests/all`: it reads the RSS of its whole process,
//! which tests running beside it on other threads would change.

#[path = "all/common.rs"]
mod common;
use common::echo_wat;
use plinth::{CompiledPlugin, Plugin};

#[test]
fn many_calls_and_many_instances_do_not_grow_memory() {
    let compiled = CompiledPlugin::new(echo_wat().as_bytes(), [], false).unwrap();
    let mut p = compiled.instantiate().unwrap();
    let input = vec![1u8; 1000];
    let warm = |p: &mut Plugin| {
        for _ in 0..1000 {
            assert_eq!(p.call::<_, &[u8]>("echo", &input[..]).unwrap().len(), 1000);
        }
    };
    warm(&mut p);
    let before = rss_kib();
    for _ in 0..10_000 {
        p.call::<_, &[u8]>("echo", &input[..]).unwrap();
    }
    let after_calls = rss_kib();
    for _ in 0..1_000 {
        drop(compiled.instantiate().unwrap());
    }
    let mid = rss_kib();
    for _ in 0..10_000 {
        let mut q = compiled.instantiate().unwrap();
        q.call::<_, &[u8]>("echo", "x").unwrap();
    }
    let after_instances = rss_kib();
    // Allow allocator noise, but not per-call or per-instance growth (10,000 x even 1 KiB
    // would be 10 MiB).
    assert!(
        after_calls < before + 4096,
        "calls grew RSS from {before} to {after_calls} KiB"
    );
    assert!(
        after_instances < mid + 4096,
        "instances grew RSS from {mid} to {after_instances} KiB"
    );
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

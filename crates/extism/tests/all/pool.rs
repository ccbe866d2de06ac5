//! `Pool` and `PoolBuilder` as Extism hosts use them: many threads, a bounded number of
//! instances, timeouts when all are lent.

use std::time::Duration;

use extism::convert::Json;
use extism::*;

use crate::plugin;

fn count_vowels_pool(max: usize) -> Pool {
    let manifest = Manifest::new([Wasm::file(plugin("extism_count_vowels"))]);
    PoolBuilder::new()
        .with_max_instances(max)
        .build(move || Plugin::new(&manifest, [], true))
}

#[derive(serde::Deserialize)]
struct VowelCount {
    count: usize,
    total: usize,
}

#[test]
fn threads_share_a_bounded_pool() {
    let pool = count_vowels_pool(2);
    assert_eq!(pool.count(), 0);
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for _ in 0..5 {
                    let mut plugin = pool
                        .get(Duration::from_secs(30))
                        .unwrap()
                        .expect("an instance within the timeout");
                    let Json(res) = plugin
                        .call::<&str, Json<VowelCount>>("count_vowels", "aeiou")
                        .unwrap();
                    assert_eq!(res.count, 5);
                    seen.push((plugin.id(), res.total));
                }
                seen
            })
        })
        .collect();
    // Never more than two instances, each with its own running total (its vars): the last
    // totals of the instances add up to every vowel counted.
    let mut last_total = std::collections::HashMap::new();
    for (id, total) in threads.into_iter().flat_map(|t| t.join().unwrap()) {
        let last = last_total.entry(id).or_insert(0);
        *last = total.max(*last);
    }
    assert!(last_total.len() <= 2, "{last_total:?}");
    assert_eq!(pool.count(), last_total.len());
    assert_eq!(last_total.values().sum::<usize>(), 6 * 5 * 5);
}

#[test]
fn get_times_out_when_every_instance_is_lent() {
    let pool = count_vowels_pool(1);
    let first = pool.get(Duration::from_secs(1)).unwrap().unwrap();
    let id = first.id();
    assert!(pool.get(Duration::from_millis(50)).unwrap().is_none());
    assert_eq!(
        pool.with_plugin(Duration::from_millis(50), |p| p
            .call::<&str, String>("count_vowels", "a"))
            .unwrap(),
        None
    );
    drop(first);
    // Given back on drop, then lent again: the same instance, vars and all.
    let mut again = pool.get(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!(again.id(), id);
    let out: String = again.call("count_vowels", "ee").unwrap();
    assert!(out.contains(r#""total":2"#), "{out}");
    drop(again);
    let total = pool
        .with_plugin(Duration::from_secs(1), |p| {
            let Json(res) = p.call::<&str, Json<VowelCount>>("count_vowels", "o")?;
            Ok(res.total)
        })
        .unwrap();
    assert_eq!(total, Some(3));
    assert_eq!(pool.count(), 1);
}

#[test]
fn function_exists_and_failing_sources() {
    let pool = count_vowels_pool(1);
    assert!(pool
        .function_exists("count_vowels", Duration::from_secs(1))
        .unwrap());
    assert!(!pool
        .function_exists("nope", Duration::from_secs(1))
        .unwrap());

    let broken = Pool::new(|| Plugin::new(b"not wasm".as_slice(), [], false));
    let err = broken.get(Duration::from_secs(1)).unwrap_err();
    assert!(format!("{err:#}").contains("compile"), "{err:#}");
    // A failed creation does not use up the pool's room.
    assert_eq!(broken.count(), 0);
}

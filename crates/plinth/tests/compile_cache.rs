//! The compiled-module caches seen through the public API: a plug-in loads the same with the
//! disk cache on, off, cold, warm, or with a damaged entry.

use std::fs;
use std::path::{Path, PathBuf};

use plinth::Plugin;

const WAT: &str = r#"
(module
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (memory 1)
  (func (export "answer") (result i32) (local $h i64)
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (i32.const 42))
    (call $output_set (local.get $h) (i64.const 1))
    (i32.const 0)))
"#;

fn entries(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn load(dir: Option<&Path>, wat: &str) -> Plugin {
    // Start from an empty in-memory cache so that the disk cache is what answers.
    plinth::module_cache::clear();
    Plugin::builder(wat.as_bytes())
        .with_cache_dir(dir)
        .build()
        .unwrap()
}

fn answer(p: &mut Plugin) -> Vec<u8> {
    p.call::<&str, &[u8]>("answer", "").unwrap().to_vec()
}

#[test]
fn disk_cache_is_written_reused_and_survives_damage() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // A module of its own, so that other tests' use of the shared caches cannot interfere.
    let wat = format!("{WAT}\n;; compile_cache test {}", std::process::id());

    assert_eq!(answer(&mut load(Some(&cache), &wat)), [42]);
    let written = entries(&cache);
    assert_eq!(written.len(), 1, "one entry for one module");
    let first = fs::read(&written[0]).unwrap();

    // Warm: the entry is used as it is (not rewritten).
    assert_eq!(answer(&mut load(Some(&cache), &wat)), [42]);
    assert_eq!(fs::read(&written[0]).unwrap(), first);

    // A damaged entry is ignored: the plug-in is compiled again and the entry rewritten.
    let mut damaged = first.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0xff;
    fs::write(&written[0], &damaged).unwrap();
    assert_eq!(answer(&mut load(Some(&cache), &wat)), [42]);
    assert_ne!(
        fs::read(&written[0]).unwrap(),
        damaged,
        "the entry was rewritten"
    );

    // Garbage and an empty file in place of the entry: the same.
    for junk in [&b""[..], &b"not a module"[..]] {
        fs::write(&written[0], junk).unwrap();
        assert_eq!(answer(&mut load(Some(&cache), &wat)), [42]);
    }
}

#[test]
fn no_cache_dir_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wat = format!("{WAT}\n;; no-cache test {}", std::process::id());
    assert_eq!(answer(&mut load(None, &wat)), [42]);
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn an_unwritable_cache_dir_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "in the way").unwrap();
    let wat = format!("{WAT}\n;; unwritable test {}", std::process::id());
    // The cache "directory" is a file: nothing can be cached, but the plug-in loads.
    assert_eq!(answer(&mut load(Some(&file.join("cache")), &wat)), [42]);
}

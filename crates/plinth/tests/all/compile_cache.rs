//! The compiled-module caches seen through the public API: a plug-in loads the same with the
//! disk cache on, off, cold, warm, or with a damaged entry.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::warnings_of;
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
    plinth::clear_compile_cache();
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

// Hostile caches: an entry under another entry's name, a directory or key that someone else
// controls, and the size bound.

/// A plug-in whose `answer` is `value`; `salt` makes its bytes (and so its entry) its own.
fn answering(value: u8, salt: &str) -> String {
    WAT.replace("(i32.const 42)", &format!("(i32.const {value})"))
        .replace(
            "(memory 1)",
            &format!("(memory 1) (data (i32.const 512) \"{salt}\")"),
        )
}

/// Loads `wat` and returns the entry that this load added to `cache`.
fn load_new_entry(cache: &Path, wat: &str, max_bytes: u64) -> (Plugin, PathBuf) {
    let before = entries(cache);
    plinth::clear_compile_cache();
    let plugin = Plugin::builder(wat.as_bytes())
        .with_cache_dir(Some(cache))
        .with_cache_max_bytes(max_bytes)
        .build()
        .unwrap();
    let mut added: Vec<PathBuf> = entries(cache)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(added.len(), 1, "one new entry");
    (plugin, added.pop().unwrap())
}

#[test]
fn swapped_cache_entry_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let a = answering(1, "swap test a");
    let b = answering(2, "swap test b");
    let (mut plugin, entry_a) = load_new_entry(&cache, &a, u64::MAX);
    assert_eq!(answer(&mut plugin), [1]);
    let (mut plugin, entry_b) = load_new_entry(&cache, &b, u64::MAX);
    assert_eq!(answer(&mut plugin), [2]);

    // A's entry, with its valid tag, under B's name.
    fs::copy(&entry_a, &entry_b).unwrap();
    assert_eq!(
        answer(&mut load(Some(&cache), &b)),
        [2],
        "loading B ran A's code"
    );
    assert_ne!(
        fs::read(&entry_b).unwrap(),
        fs::read(&entry_a).unwrap(),
        "B's entry was compiled and written again"
    );
}

/// Loads a new plug-in from a cache that must be refused: it still loads (compiled), nothing
/// is written there, and the warning and `check_cache_dir` say `why`.
fn assert_refused(cache: &Path, salt: &str, why: &str) {
    let before = entries(cache);
    let (mut plugin, warnings) = warnings_of(|| load(Some(cache), &answering(7, salt)));
    assert_eq!(answer(&mut plugin), [7], "the plug-in loads by compiling");
    assert_eq!(
        entries(cache),
        before,
        "nothing is written to a refused cache"
    );
    let line = warnings
        .lines()
        .find(|l| l.contains("not using the compiled-module cache"))
        .unwrap_or_else(|| panic!("no warning about the refused cache in {warnings:?}"));
    assert!(line.contains(&cache.display().to_string()), "{line}");
    assert!(line.contains(why), "{line}");
    let err = plinth::check_cache_dir(cache).unwrap_err().to_string();
    assert!(err.contains(why), "{err}");
}

#[cfg(unix)]
#[test]
fn cache_dir_writable_by_group_is_refused_and_the_plugin_still_compiles() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cached = answering(3, "group-writable cached");
    let (mut plugin, _) = load_new_entry(&cache, &cached, u64::MAX);
    assert_eq!(answer(&mut plugin), [3]);
    plinth::check_cache_dir(&cache).unwrap();

    fs::set_permissions(&cache, fs::Permissions::from_mode(0o770)).unwrap();
    assert_refused(
        &cache,
        "group-writable new",
        "writable by its group or others (mode 770)",
    );
    // The plug-in that has an entry there loads too, compiled.
    assert_eq!(answer(&mut load(Some(&cache), &cached)), [3]);
}

#[cfg(unix)]
#[test]
fn cache_dir_owned_by_another_user_is_refused_and_the_plugin_still_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (mut plugin, _) = load_new_entry(&cache, &answering(4, "other owner cached"), u64::MAX);
    assert_eq!(answer(&mut plugin), [4]);

    // Tests run as root here; uid 65534 is nobody.
    std::os::unix::fs::chown(&cache, Some(65534), None).unwrap();
    assert_refused(&cache, "other owner new", "owned by uid 65534");
}

#[cfg(unix)]
#[test]
fn symlinked_cache_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (mut plugin, _) = load_new_entry(&cache, &answering(5, "symlinked key cached"), u64::MAX);
    assert_eq!(answer(&mut plugin), [5]);

    // The key moved elsewhere (a place someone else can read, say) and linked back.
    let elsewhere = dir.path().join("shared-key");
    fs::rename(cache.join("key"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, cache.join("key")).unwrap();
    assert_refused(&cache, "symlinked key new", "the key is a symbolic link");
}

#[test]
fn size_bound_evicts_the_least_recently_used_entries() {
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let [a, b, c, d] = ["lru a", "lru b", "lru c", "lru d"].map(|s| answering(6, s));
    let (_, entry_a) = load_new_entry(&cache, &a, u64::MAX);
    let (_, entry_b) = load_new_entry(&cache, &b, u64::MAX);
    let (_, entry_c) = load_new_entry(&cache, &c, u64::MAX);

    // Written in the order A, B, C; then a hit on A makes B the least recently used.
    let now = SystemTime::now();
    for (entry, age) in [(&entry_a, 300), (&entry_b, 200), (&entry_c, 100)] {
        fs::File::options()
            .write(true)
            .open(entry)
            .unwrap()
            .set_modified(now - Duration::from_secs(age))
            .unwrap();
    }
    assert_eq!(answer(&mut load(Some(&cache), &a)), [6]);
    let mtime = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
    assert!(
        mtime(&entry_a) > mtime(&entry_c),
        "a hit marks the entry as recently used"
    );

    // Room for three entries and a half: adding D must evict exactly one, B.
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    let bound = size(&entry_a) + size(&entry_b) + size(&entry_c) + size(&entry_a) / 2;
    let (mut plugin, entry_d) = load_new_entry(&cache, &d, bound);
    assert_eq!(answer(&mut plugin), [6]);
    assert!(
        !entry_b.exists(),
        "the least recently used entry is evicted"
    );
    for kept in [&entry_a, &entry_c, &entry_d] {
        assert!(kept.exists(), "{} was evicted", kept.display());
    }
    let total: u64 = entries(&cache).iter().map(|p| size(p)).sum();
    assert!(
        total <= bound,
        "{total} bytes cached, over the bound of {bound}"
    );
}

//! Tests of the disk cache: refusals, tampering, eviction.

use super::*;
use sha2::Digest;

fn compiled(engine: &Engine, export: &str) -> (Module, [u8; 32]) {
    let wasm = wat::parse_str(format!(
        r#"(module (func (export "{export}") (result i32) (i32.const 7)))"#
    ))
    .unwrap();
    let module = Module::new(engine, &wasm).unwrap();
    (module, sha2::Sha256::digest(&wasm).into())
}

fn cache(dir: &Path) -> DiskCache<'_> {
    DiskCache {
        dir,
        max_bytes: DEFAULT_MAX_BYTES,
    }
}

fn exports(module: &Module) -> Vec<String> {
    module.exports().map(|e| e.name().to_string()).collect()
}

fn entry(dir: &Path) -> PathBuf {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("an entry was written")
}

#[test]
fn entries_round_trip_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("nested/cache");
    let cache = cache(&cache_dir);
    let engine = Engine::default();
    let (module, sha) = compiled(&engine, "f");
    assert!(load(cache, &engine, &sha).is_none(), "nothing cached yet");

    store(cache, &engine, &sha, &module);
    let loaded = load(cache, &engine, &sha).expect("a fresh entry loads");
    assert_eq!(exports(&loaded), ["f"]);
    assert!(
        load(cache, &engine, &[0; 32]).is_none(),
        "other content, other entry"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cache_dir), 0o700);
        assert_eq!(mode(&cache_dir.join("key")), 0o600);
        assert_eq!(mode(&entry(&cache_dir)), 0o600);
    }

    // A tampered byte anywhere, a truncated file, or a different key: refused.
    let path = entry(&cache_dir);
    let good = fs::read(&path).unwrap();
    for i in [0, TAG_LEN, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        fs::write(&path, &bad).unwrap();
        assert!(load(cache, &engine, &sha).is_none(), "byte {i} flipped");
    }
    fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert!(load(cache, &engine, &sha).is_none(), "truncated");
    fs::write(&path, &good[..10]).unwrap();
    assert!(load(cache, &engine, &sha).is_none(), "shorter than a tag");
    fs::write(&path, &good).unwrap();
    assert!(load(cache, &engine, &sha).is_some(), "restored");
    fs::write(cache_dir.join("key"), [1u8; 32]).unwrap();
    assert!(
        load(cache, &engine, &sha).is_none(),
        "signed with another key"
    );
}

#[test]
fn engines_with_other_settings_use_other_entries() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Engine::default();
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    let fueled = Engine::new(&config).unwrap();
    let (module, sha) = compiled(&plain, "f");
    store(cache(dir.path()), &plain, &sha, &module);
    assert!(load(cache(dir.path()), &fueled, &sha).is_none());
    assert_ne!(
        entry_name(fingerprint(&plain), &sha),
        entry_name(fingerprint(&fueled), &sha)
    );
}

#[test]
fn an_entry_copied_to_another_name_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::default();
    let (a, sha_a) = compiled(&engine, "a");
    let (_, sha_b) = compiled(&engine, "b");
    store(cache(dir.path()), &engine, &sha_a, &a);
    let fp = fingerprint(&engine);
    fs::copy(
        dir.path().join(entry_name(fp, &sha_a)),
        dir.path().join(entry_name(fp, &sha_b)),
    )
    .unwrap();
    assert!(load(cache(dir.path()), &engine, &sha_b).is_none());
    // Nor does one signed for another engine fingerprint.
    let payload = a.serialize().unwrap();
    let key = fs::read(dir.path().join("key")).unwrap();
    let mut bytes = tag(&key, &sha_a, fp ^ 1, &payload)
        .finalize()
        .into_bytes()
        .to_vec();
    bytes.extend_from_slice(&payload);
    fs::write(dir.path().join(entry_name(fp, &sha_a)), &bytes).unwrap();
    assert!(load(cache(dir.path()), &engine, &sha_a).is_none());
}

/// Whoever controls the directory or the key can sign anything. Here a correctly signed
/// entry runs module `a` for `b`'s content: each untrusted setting must stop it.
#[cfg(unix)]
#[test]
fn validly_signed_entries_in_an_untrusted_cache_are_not_loaded() {
    use std::os::unix::fs::{chown, symlink, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let engine = Engine::default();
    let (a, sha_a) = compiled(&engine, "a");
    let (_, sha_b) = compiled(&engine, "b");
    store(cache(&cache_dir), &engine, &sha_a, &a);
    let key_path = cache_dir.join("key");
    let key = fs::read(&key_path).unwrap();
    let fp = fingerprint(&engine);
    let payload = a.serialize().unwrap();
    let mut forged = tag(&key, &sha_b, fp, &payload)
        .finalize()
        .into_bytes()
        .to_vec();
    forged.extend_from_slice(&payload);
    fs::write(cache_dir.join(entry_name(fp, &sha_b)), &forged).unwrap();
    let loaded = load(cache(&cache_dir), &engine, &sha_b).expect("the forgery is valid");
    assert_eq!(exports(&loaded), ["a"]);

    let chmod = |p: &Path, mode| fs::set_permissions(p, fs::Permissions::from_mode(mode));
    let outside = dir.path().join("outside-key");
    type Setting<'a> = (&'a str, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>);
    let settings: Vec<Setting> = vec![
        (
            "owned by uid 65534",
            Box::new(|| chown(&cache_dir, Some(65534), None).unwrap()),
            Box::new(|| chown(&cache_dir, Some(current_uid()), None).unwrap()),
        ),
        (
            "writable by its group or others (mode 770)",
            Box::new(|| chmod(&cache_dir, 0o770).unwrap()),
            Box::new(|| chmod(&cache_dir, 0o700).unwrap()),
        ),
        (
            "writable by its group or others (mode 702)",
            Box::new(|| chmod(&cache_dir, 0o702).unwrap()),
            Box::new(|| chmod(&cache_dir, 0o700).unwrap()),
        ),
        (
            "the key is owned by uid 65534",
            Box::new(|| chown(&key_path, Some(65534), None).unwrap()),
            Box::new(|| chown(&key_path, Some(current_uid()), None).unwrap()),
        ),
        (
            "the key is open to its group or others (mode 640)",
            Box::new(|| chmod(&key_path, 0o640).unwrap()),
            Box::new(|| chmod(&key_path, 0o600).unwrap()),
        ),
        (
            "the key is a symbolic link",
            Box::new(|| {
                fs::rename(&key_path, &outside).unwrap();
                symlink(&outside, &key_path).unwrap();
            }),
            Box::new(|| fs::rename(&outside, &key_path).unwrap()),
        ),
    ];
    for (reason, spoil, restore) in settings {
        spoil();
        assert!(
            load(cache(&cache_dir), &engine, &sha_b).is_none(),
            "loaded with {reason}"
        );
        let err = check_dir(&cache_dir).expect_err(reason).to_string();
        assert!(err.contains(reason), "{err}");
        restore();
        check_dir(&cache_dir).unwrap();
    }
}

#[test]
fn sizes_parse_with_units() {
    assert_eq!(parse_size("1024"), Some(1024));
    assert_eq!(parse_size("512M"), Some(512 << 20));
    assert_eq!(parse_size(" 2 GiB "), Some(2 << 30));
    assert_eq!(parse_size("64k"), Some(64 << 10));
    assert_eq!(parse_size("lots"), None);
    assert_eq!(parse_size("-1"), None);
    assert_eq!(parse_size("99999999999999999999G"), None);
}

#[test]
fn eviction_removes_stale_temporary_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join(".tmp-1");
    let fresh = dir.path().join(".tmp-2");
    for p in [&stale, &fresh] {
        fs::write(p, b"partial").unwrap();
    }
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - 2 * STALE_TEMP)
        .unwrap();
    evict(dir.path(), DEFAULT_MAX_BYTES, "none").unwrap();
    assert!(!stale.exists() && fresh.exists());
}

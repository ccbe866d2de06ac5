//! Compiled modules on disk, by content, so that a new process skips Cranelift for plug-ins it
//! has compiled before.
//!
//! An entry is `<dir>/<sha256 of the wasm>-<engine fingerprint>.cwasm`: a 32-byte HMAC-SHA256
//! tag, then wasmtime's serialized module. The tag's key lives in `<dir>/key` (mode 0600), made
//! on first use. Loading native code trusts the bytes, so an entry is used only when its tag
//! verifies; a stale, truncated or tampered entry is ignored, recompiled and rewritten. The
//! engine fingerprint (wasmtime's own compatibility hash: version, target, settings) keeps
//! entries of other wasmtime versions or engine settings apart.
//!
//! The cache is on by default, in `$PLINTH_CACHE_DIR`, else `$XDG_CACHE_HOME/plinth`, else
//! `~/.cache/plinth`. `PLINTH_CACHE=off` turns it off, as does
//! `PluginBuilder::with_cache_dir(None)`.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::{Engine, Module};

type Tag = Hmac<Sha256>;
const TAG_LEN: usize = 32;

/// Where the cache lives when the host does not choose: `None` when it is turned off or no
/// home directory is known.
pub fn default_dir() -> Option<PathBuf> {
    if std::env::var("PLINTH_CACHE").is_ok_and(|v| matches!(v.as_str(), "off" | "0" | "false")) {
        return None;
    }
    if let Some(dir) = std::env::var_os("PLINTH_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("plinth"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("plinth"))
}

/// The file name of the entry for `wasm_sha256` on `engine`.
fn entry_name(engine: &Engine, wasm_sha256: &[u8; 32]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let hex: String = wasm_sha256.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{:016x}.cwasm", h.finish())
}

/// The cache's HMAC key, made on first use.
fn key(dir: &Path) -> std::io::Result<Vec<u8>> {
    let path = dir.join("key");
    match fs::read(&path) {
        Ok(k) if k.len() == 32 => return Ok(k),
        Ok(_) | Err(_) => {}
    }
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|e| std::io::Error::other(e.to_string()))?;
    write_private(dir, &path, &k, false)?;
    // Another process may have made its key first: use whichever is there.
    let k = fs::read(&path)?;
    if k.len() != 32 {
        return Err(std::io::Error::other("the cache key file is damaged"));
    }
    Ok(k)
}

/// Writes `bytes` to `path` through a temporary file, so that readers see the whole file or
/// none; files are readable by the owner only. With `replace` false an existing file stays.
fn write_private(dir: &Path, path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<()> {
    create_dir_private(dir)?;
    let tmp = tempfile_in(dir)?;
    let written = (|| {
        let mut f = open_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if replace {
            fs::rename(&tmp, path)
        } else {
            match fs::hard_link(&tmp, path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        }
    })();
    let _ = fs::remove_file(&tmp);
    written
}

fn tempfile_in(dir: &Path) -> std::io::Result<PathBuf> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(dir.join(format!(".tmp-{}", u64::from_le_bytes(r))))
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

fn tag(key: &[u8], payload: &[u8]) -> Tag {
    let mut mac = Tag::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(payload);
    mac
}

/// The module cached for `wasm_sha256`, if its entry exists and verifies.
pub(crate) fn load(dir: &Path, engine: &Engine, wasm_sha256: &[u8; 32]) -> Option<Module> {
    let path = dir.join(entry_name(engine, wasm_sha256));
    let bytes = fs::read(&path).ok()?;
    let key = key(dir).ok()?;
    if bytes.len() < TAG_LEN
        || tag(&key, &bytes[TAG_LEN..])
            .verify_slice(&bytes[..TAG_LEN])
            .is_err()
    {
        tracing::warn!(path = %path.display(), "ignoring a compiled-module cache entry that does not verify; recompiling");
        return None;
    }
    // SAFETY: the bytes are what `store` wrote from `Module::serialize` on an engine with the
    // same compatibility hash: the HMAC under the cache's private key proves it. wasmtime checks
    // the engine settings again while deserializing.
    match unsafe { Module::deserialize(engine, &bytes[TAG_LEN..]) } {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot use a compiled-module cache entry ({e:#}); recompiling");
            None
        }
    }
}

/// Stores `module` for `wasm_sha256`. Failures only cost a later compile, so they are logged
/// and otherwise ignored.
pub(crate) fn store(dir: &Path, engine: &Engine, wasm_sha256: &[u8; 32], module: &Module) {
    let result = (|| -> wasmtime::Result<()> {
        let payload = module.serialize()?;
        let key = key(dir)?;
        let mut bytes = tag(&key, &payload).finalize().into_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        write_private(
            dir,
            &dir.join(entry_name(engine, wasm_sha256)),
            &bytes,
            true,
        )?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::debug!(dir = %dir.display(), "cannot write the compiled-module cache: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn compiled(engine: &Engine) -> (Module, [u8; 32]) {
        let wasm =
            wat::parse_str(r#"(module (func (export "f") (result i32) (i32.const 7)))"#).unwrap();
        let module = Module::new(engine, &wasm).unwrap();
        (module, sha2::Sha256::digest(&wasm).into())
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
        let cache = dir.path().join("nested/cache");
        let engine = Engine::default();
        let (module, sha) = compiled(&engine);
        assert!(load(&cache, &engine, &sha).is_none(), "nothing cached yet");

        store(&cache, &engine, &sha, &module);
        let loaded = load(&cache, &engine, &sha).expect("a fresh entry loads");
        assert_eq!(
            loaded
                .exports()
                .map(|e| e.name().to_string())
                .collect::<Vec<_>>(),
            ["f"]
        );
        assert!(
            load(&cache, &engine, &[0; 32]).is_none(),
            "other content, other entry"
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&cache), 0o700);
            assert_eq!(mode(&cache.join("key")), 0o600);
            assert_eq!(mode(&entry(&cache)), 0o600);
        }

        // A tampered byte anywhere, a truncated file, or a different key: refused.
        let path = entry(&cache);
        let good = fs::read(&path).unwrap();
        for i in [0, TAG_LEN, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            assert!(load(&cache, &engine, &sha).is_none(), "byte {i} flipped");
        }
        fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(load(&cache, &engine, &sha).is_none(), "truncated");
        fs::write(&path, &good[..10]).unwrap();
        assert!(load(&cache, &engine, &sha).is_none(), "shorter than a tag");
        fs::write(&path, &good).unwrap();
        assert!(load(&cache, &engine, &sha).is_some(), "restored");
        fs::write(cache.join("key"), [1u8; 32]).unwrap();
        assert!(
            load(&cache, &engine, &sha).is_none(),
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
        let (module, sha) = compiled(&plain);
        store(dir.path(), &plain, &sha, &module);
        assert!(load(dir.path(), &fueled, &sha).is_none());
        assert_ne!(entry_name(&plain, &sha), entry_name(&fueled, &sha));
    }
}

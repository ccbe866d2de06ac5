//! Compiled modules on disk, by content, so that a new process skips Cranelift for plug-ins it
//! has compiled before.
//!
//! An entry is `<dir>/<sha256 of the wasm>-<engine fingerprint>.cwasm`: a 32-byte HMAC-SHA256
//! tag, then wasmtime's serialized module. The tag covers the wasm's hash, the engine
//! fingerprint and the payload, so an entry verifies only under its own name. Its key lives in
//! `<dir>/key` (mode 0600), made on first use. Loading native code trusts the bytes, so:
//! - the directory must be owned by this process's user and not writable by its group or
//!   others, and the key must be a regular file (opened without following links) owned by that
//!   user and private to it. Otherwise the cache is refused: a `tracing` warning says why (so
//!   does [`check_dir`]), and modules are compiled;
//! - an entry is used only when its tag verifies; a stale, truncated or tampered entry is
//!   ignored, recompiled and rewritten.
//!
//! The engine fingerprint (wasmtime's own compatibility hash: version, target, settings) keeps
//! entries of other wasmtime versions or engine settings apart.
//!
//! The entries take at most `max_bytes` (`$PLINTH_CACHE_MAX_BYTES`, default 512 MiB, or
//! `PluginBuilder::with_cache_max_bytes`): after each write the least recently used entries
//! go, by mtime, which a hit refreshes (atime is often not kept).
//!
//! The cache is on by default, in `$PLINTH_CACHE_DIR`, else `$XDG_CACHE_HOME/plinth`, else
//! `~/.cache/plinth`. `PLINTH_CACHE=off` turns it off, as does
//! `PluginBuilder::with_cache_dir(None)`.

use std::collections::BTreeSet;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::{Engine, Module};

type Tag = Hmac<Sha256>;
const TAG_LEN: usize = 32;
const KEY_LEN: usize = 32;
/// Versions the tagged message, so that tags of another layout never verify.
const TAG_DOMAIN: &[u8] = b"plinth compiled-module cache entry v2\0";
/// Temporary files older than this were left by a process that died while writing.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// How many bytes of entries the cache keeps unless told otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;

/// The disk cache of one load: where it is and how many bytes of entries it may keep.
#[derive(Clone, Copy)]
pub(crate) struct DiskCache<'a> {
    pub dir: &'a Path,
    pub max_bytes: u64,
}

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

/// The size bound when the host does not choose: `$PLINTH_CACHE_MAX_BYTES` (bytes, or with a
/// `K`, `M` or `G` suffix), else [`DEFAULT_MAX_BYTES`].
pub(crate) fn default_max_bytes() -> u64 {
    let Ok(value) = std::env::var("PLINTH_CACHE_MAX_BYTES") else {
        return DEFAULT_MAX_BYTES;
    };
    parse_size(&value).unwrap_or_else(|| {
        warn_once(format!(
            "PLINTH_CACHE_MAX_BYTES={value:?} is not a size (write bytes, or a number with K, M \
             or G); using {DEFAULT_MAX_BYTES} bytes"
        ));
        DEFAULT_MAX_BYTES
    })
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Problems with the cache are the same on every load: warn once per process, then only debug.
fn warn_once(message: String) {
    static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = WARNED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(message.clone());
    if first {
        tracing::warn!("{message}");
    } else {
        tracing::debug!("{message}");
    }
}

fn report(dir: &Path, problem: impl std::fmt::Display) {
    warn_once(format!(
        "not using the compiled-module cache in {}: {problem:#}; compiling instead",
        dir.display()
    ));
}

/// A reason not to trust the cache, with what to do about it.
fn refused(reason: String, fix: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{reason}. Plinth runs the native code cached there, so only you may be able to \
             write it: {fix}, point PLINTH_CACHE_DIR at a private directory, or set \
             PLINTH_CACHE=off"
        ),
    )
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Checks that `dir` is a directory that only this user can write: `false` when it does not
/// exist.
fn check_dir_is_private(dir: &Path) -> io::Result<bool> {
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(with_path(e, dir)),
    };
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = current_uid();
        if meta.uid() != me {
            return Err(refused(
                format!(
                    "the directory is owned by uid {}, not by this process's user (uid {me})",
                    meta.uid()
                ),
                "use a directory of your own",
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refused(
                format!(
                    "the directory is writable by its group or others (mode {:03o})",
                    meta.mode() & 0o777
                ),
                &format!("run `chmod go-w {}`", dir.display()),
            ));
        }
    }
    Ok(true)
}

/// Opens `path` for reading unless it is a symbolic link.
#[cfg(unix)]
fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: a FIFO in the key's place must not hang the load.
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a symbolic link",
        ));
    }
    fs::File::open(path)
}

/// The cache's key after checking it: `None` when there is none yet.
fn read_key(dir: &Path) -> io::Result<Option<Vec<u8>>> {
    let path = dir.join("key");
    let delete = format!("delete {} (a new key is made)", path.display());
    let file = match open_no_follow(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(refused("the key is a symbolic link".into(), &delete));
            }
            return Err(with_path(e, &path));
        }
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused("the key is not a regular file".into(), &delete));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = current_uid();
        if meta.uid() != me {
            return Err(refused(
                format!(
                    "the key is owned by uid {}, not by this process's user (uid {me})",
                    meta.uid()
                ),
                &delete,
            ));
        }
        // Readable is as bad as writable: whoever reads the key can sign entries.
        if meta.mode() & 0o077 != 0 {
            return Err(refused(
                format!(
                    "the key is open to its group or others (mode {:03o}), who could use it to \
                     sign entries",
                    meta.mode() & 0o777
                ),
                &delete,
            ));
        }
    }
    let mut key = Vec::with_capacity(KEY_LEN + 1);
    file.take(KEY_LEN as u64 + 1).read_to_end(&mut key)?;
    if key.len() != KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the key {} is damaged ({} bytes, not {KEY_LEN}): {delete}",
                path.display(),
                key.len()
            ),
        ));
    }
    Ok(Some(key))
}

/// The key of the cache in `dir`, after checking the directory and the key: `None` when
/// either does not exist yet.
fn trusted_key(dir: &Path) -> io::Result<Option<Vec<u8>>> {
    if !check_dir_is_private(dir)? {
        return Ok(None);
    }
    read_key(dir)
}

/// Like [`trusted_key`], but makes the directory and the key when they are missing.
fn trusted_key_or_make(dir: &Path) -> io::Result<Vec<u8>> {
    if !check_dir_is_private(dir)? {
        create_dir_private(dir)?;
        // Checked again: someone else may have made it first.
        check_dir_is_private(dir)?;
    }
    if let Some(key) = read_key(dir)? {
        return Ok(key);
    }
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| io::Error::other(e.to_string()))?;
    write_private(dir, &dir.join("key"), &key, false)?;
    // Another process may have made its key first: use whichever is there.
    read_key(dir)?.ok_or_else(|| io::Error::other("the cache key vanished as it was made"))
}

/// Whether `dir` can hold the compiled-module cache: the error says why not (its owner or mode,
/// or a key that is a link, not private, or damaged) and what to do. A directory or key that
/// does not exist yet is fine: Plinth makes both private to the current user. When this fails,
/// plug-ins still load, but every module is compiled.
pub fn check_dir(dir: &Path) -> io::Result<()> {
    trusted_key(dir).map(drop)
}

/// wasmtime's compatibility hash of `engine`, as a number.
pub(crate) fn fingerprint(engine: &Engine) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

/// The file name of the entry for `wasm_sha256` on an engine with `fingerprint`.
fn entry_name(fingerprint: u64, wasm_sha256: &[u8; 32]) -> String {
    let hex: String = wasm_sha256.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{fingerprint:016x}.cwasm")
}

/// The tag of an entry: over everything its name stands for, and its payload.
fn tag(key: &[u8], wasm_sha256: &[u8; 32], fingerprint: u64, payload: &[u8]) -> Tag {
    let mut mac = Tag::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(TAG_DOMAIN);
    mac.update(wasm_sha256);
    mac.update(&fingerprint.to_le_bytes());
    mac.update(payload);
    mac
}

/// Writes `bytes` to `path` in `dir` through a temporary file, so that readers see the whole
/// file or none; files are readable by the owner only. With `replace` false an existing file
/// stays.
fn write_private(dir: &Path, path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
    let tmp = tempfile_in(dir)?;
    let written = (|| {
        let mut f = open_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if replace {
            fs::rename(&tmp, path)
        } else {
            match fs::hard_link(&tmp, path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        }
    })();
    let _ = fs::remove_file(&tmp);
    written
}

fn tempfile_in(dir: &Path) -> io::Result<PathBuf> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(dir.join(format!(".tmp-{}", u64::from_le_bytes(r))))
}

#[cfg(unix)]
fn open_private(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_dir_private(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| with_path(e, dir))
}

#[cfg(not(unix))]
fn create_dir_private(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir).map_err(|e| with_path(e, dir))
}

/// The module cached for `wasm_sha256`, if the cache is trusted and its entry verifies.
pub(crate) fn load(
    cache: DiskCache<'_>,
    engine: &Engine,
    wasm_sha256: &[u8; 32],
) -> Option<Module> {
    let key = match trusted_key(cache.dir) {
        Ok(Some(key)) => key,
        Ok(None) => return None,
        Err(e) => {
            report(cache.dir, e);
            return None;
        }
    };
    let fingerprint = fingerprint(engine);
    let path = cache.dir.join(entry_name(fingerprint, wasm_sha256));
    let mut file = open_no_follow(&path).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    if bytes.len() < TAG_LEN
        || tag(&key, wasm_sha256, fingerprint, &bytes[TAG_LEN..])
            .verify_slice(&bytes[..TAG_LEN])
            .is_err()
    {
        tracing::warn!(path = %path.display(), "ignoring a compiled-module cache entry that does not verify; recompiling");
        return None;
    }
    // SAFETY: the bytes are what `store` wrote from `Module::serialize` of this very wasm on an
    // engine with the same compatibility hash: the HMAC under the cache's private key, over the
    // wasm's hash, the fingerprint and the payload, proves it. wasmtime checks the engine
    // settings again while deserializing.
    match unsafe { Module::deserialize(engine, &bytes[TAG_LEN..]) } {
        Ok(module) => {
            // Eviction goes by mtime: mark the entry as just used.
            let _ = file.set_modified(SystemTime::now());
            Some(module)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot use a compiled-module cache entry ({e:#}); recompiling");
            None
        }
    }
}

/// Stores `module` for `wasm_sha256`, then evicts the least recently used entries past the
/// cache's bound. Failures only cost a later compile, so they are logged and otherwise
/// ignored.
pub(crate) fn store(
    cache: DiskCache<'_>,
    engine: &Engine,
    wasm_sha256: &[u8; 32],
    module: &Module,
) {
    let dir = cache.dir;
    let result = (|| -> wasmtime::Result<()> {
        let key = trusted_key_or_make(dir)?;
        let payload = module.serialize()?;
        let fingerprint = fingerprint(engine);
        let mut bytes = tag(&key, wasm_sha256, fingerprint, &payload)
            .finalize()
            .into_bytes()
            .to_vec();
        bytes.extend_from_slice(&payload);
        if bytes.len() as u64 > cache.max_bytes {
            tracing::debug!(dir = %dir.display(), "a compiled module of {} bytes is over the cache's bound of {} bytes; not cached", bytes.len(), cache.max_bytes);
            return Ok(());
        }
        let name = entry_name(fingerprint, wasm_sha256);
        write_private(dir, &dir.join(&name), &bytes, true)?;
        evict(dir, cache.max_bytes, &name)?;
        Ok(())
    })();
    if let Err(e) = result {
        report(dir, e);
    }
}

/// Deletes the least recently used entries (oldest mtime first, `newest` last) until the
/// entries take at most `max_bytes`, and temporary files that writers left behind.
fn evict(dir: &Path, max_bytes: u64, newest: &str) -> io::Result<()> {
    let now = SystemTime::now();
    let mut entries = Vec::new();
    let mut total = 0u64;
    for found in fs::read_dir(dir)? {
        let found = found?;
        // Not following links: only the directory's own files count.
        let Ok(meta) = found.metadata() else { continue };
        let name = found.file_name();
        let name = name.to_string_lossy();
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if name.starts_with(".tmp-") {
            if now
                .duration_since(modified)
                .is_ok_and(|age| age > STALE_TEMP)
            {
                let _ = fs::remove_file(found.path());
            }
        } else if name.ends_with(".cwasm") && meta.is_file() {
            total += meta.len();
            entries.push((name == newest, modified, meta.len(), found.path()));
        }
    }
    if total <= max_bytes {
        return Ok(());
    }
    entries.sort();
    let mut evicted = 0;
    for (_, _, len, path) in entries {
        if total <= max_bytes {
            break;
        }
        match fs::remove_file(&path) {
            // Gone already: another process evicted it.
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(with_path(e, &path)),
            _ => {}
        }
        total -= len;
        evicted += 1;
    }
    tracing::debug!(dir = %dir.display(), "evicted {evicted} compiled-module cache entries to stay within {max_bytes} bytes");
    Ok(())
}

#[cfg(test)]
mod tests;

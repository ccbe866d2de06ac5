//! Recently compiled modules, by content. Compiling with inlining takes hundreds of
//! milliseconds and leaves allocator debris behind, and hosts often load the same plug-in
//! again (one `Plugin::new` per request, per tenant, per reload), so a repeat load reuses the
//! compiled module instead of running Cranelift again. Behind this in-process cache is the
//! on-disk one (`disk_cache`), for new processes.

use std::collections::VecDeque;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wasmtime::Module;

use crate::engine::EngineHandle;

/// How many modules stay cached. Each holds its compiled code (typically tens to hundreds of
/// KiB) until it is evicted, even after every plug-in using it has been dropped.
pub const CAPACITY: usize = 16;

/// The content hash and the kind of shared engine (a module belongs to one engine).
type Key = ([u8; 32], u8);

static CACHE: Mutex<VecDeque<(Key, Module)>> = Mutex::new(VecDeque::new());

/// Changes whenever the load-time rewrites (`plinth_abi::prepare`: `stream_link`, then `fuse`)
/// change what they make of the same bytes, so that modules rewritten the old way are not used.
const FUSE_REVISION: u8 = 6;

/// The module compiled from `binary` on `engine`, fused first (see `plinth_abi::prepare`) when `fuse` is set: from memory when it was
/// compiled recently, else from the disk cache in `disk` when there is one, else compiled
/// now (and stored in both). The key is the original bytes, so that a hit skips fusing, which
/// validates and rewrites the whole module.
pub(crate) fn get_or_compile(
    handle: &EngineHandle,
    binary: &[u8],
    fuse: bool,
    disk: Option<super::disk_cache::DiskCache<'_>>,
) -> wasmtime::Result<Module> {
    let key = key(handle, binary, fuse);
    let engine = &handle.engine;
    if let Some(module) = lookup(&key) {
        return Ok(module);
    }
    // Compiled outside the lock: two threads may both compile a new module, and the first
    // to finish is cached.
    let module = match disk.and_then(|cache| super::disk_cache::load(cache, engine, &key.0)) {
        Some(module) => module,
        None => {
            let module = if fuse {
                match plinth_abi::prepare(binary) {
                    Ok(prepared) => Module::new(engine, &prepared.wasm)?,
                    // Invalid: wasmtime reports what is wrong, in its words.
                    Err(_) => Module::new(engine, binary)?,
                }
            } else {
                Module::new(engine, binary)?
            };
            if let Some(cache) = disk {
                super::disk_cache::store(cache, engine, &key.0, &module);
            }
            module
        }
    };
    insert(key, module.clone());
    Ok(module)
}

/// Whether the module compiled from `binary` on `handle` is in memory or on disk (a disk hit is
/// loaded into memory, for the build that follows).
pub(crate) fn is_cached(
    handle: &EngineHandle,
    binary: &[u8],
    fuse: bool,
    disk: Option<super::disk_cache::DiskCache<'_>>,
) -> bool {
    let key = key(handle, binary, fuse);
    if lookup(&key).is_some() {
        return true;
    }
    match disk.and_then(|cache| super::disk_cache::load(cache, &handle.engine, &key.0)) {
        Some(module) => {
            insert(key, module);
            true
        }
        None => false,
    }
}

fn key(handle: &EngineHandle, binary: &[u8], fuse: bool) -> Key {
    let mut hash = Sha256::new();
    hash.update([if fuse { FUSE_REVISION } else { 0 }]);
    hash.update(binary);
    (hash.finalize().into(), handle.kind)
}

fn insert(key: Key, module: Module) {
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if !cache.iter().any(|(k, _)| *k == key) {
        if cache.len() == CAPACITY {
            cache.pop_back();
        }
        cache.push_front((key, module));
    }
}

fn lookup(key: &Key) -> Option<Module> {
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let i = cache.iter().position(|(k, _)| k == key)?;
    // Most recently used first, so that eviction drops the least recently used.
    let entry = cache.remove(i)?;
    let module = entry.1.clone();
    cache.push_front(entry);
    Some(module)
}

/// Drops every cached module (their code is freed once no plug-in uses it).
pub fn clear() {
    CACHE.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(n: usize) -> Vec<u8> {
        wat::parse_str(format!("(module (func (export \"f{n}\")))")).unwrap()
    }

    #[test]
    fn same_bytes_same_module_and_lru_eviction() {
        let engine = EngineHandle::shared(false, false);
        let a = get_or_compile(&engine, &module(0), false, None).unwrap();
        let again = get_or_compile(&engine, &module(0), false, None).unwrap();
        assert!(
            Module::same(&a, &again),
            "a repeat load reuses the compiled module"
        );
        let fueled =
            get_or_compile(&EngineHandle::shared(true, false), &module(0), false, None).unwrap();
        assert!(
            !Module::same(&a, &fueled),
            "the engine kind is part of the key"
        );
        // Other tests may use the cache at the same time, so fill it well past capacity.
        for n in 1..=CAPACITY * 2 {
            get_or_compile(&engine, &module(n), false, None).unwrap();
        }
        let after = get_or_compile(&engine, &module(0), false, None).unwrap();
        assert!(!Module::same(&a, &after), "old entries are evicted");
    }
}

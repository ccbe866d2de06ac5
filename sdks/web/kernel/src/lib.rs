//! Plinth's web kernel: [`plinth_abi`] built for `wasm32-unknown-unknown` as a module with no
//! imports, so that the web SDK rewrites plug-ins with the same code as the native runtime
//! and keeps Extism memory's blocks with the same [`Arena`]. The exported ABI is stated in
//! this crate's README.md.
//!
//! Every export takes and returns plain integers; pointers are offsets into this module's
//! `memory`. State lives in one `Kernel` behind a mutex (the module is single-threaded, so
//! it never waits). Nothing may panic: on this target a panic aborts as a trap, so every
//! handle, pointer and size from the host is checked, and wrong ones give 0 or an error code.

use std::alloc::{self, Layout};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use plinth_abi::limit::{limit_memory_flagged, LimitError};
use plinth_abi::memory::{Arena, Placement, INPUT_LENGTH_AT, INPUT_OFFSET_AT, MAX_BYTES, RESERVED};
use plinth_abi::Prepared;

/// `plinth_arena_place`: the arena's memory budget would be exceeded.
pub const PLACE_OVER_BUDGET: i64 = -1;
/// `plinth_arena_place`: larger than Extism memory can ever hold (or negative).
pub const PLACE_TOO_LARGE: i64 = -2;
/// `plinth_arena_place`: no arena has that id.
pub const PLACE_NO_ARENA: i64 = -3;

/// A result the host reads through its handle.
struct Outcome {
    ok: bool,
    bytes: Vec<u8>,
    /// For a successful `plinth_prepare`: what the host must wire, as JSON.
    info: Option<String>,
}

/// One arena and the bump placement it handed out last, which only `plinth_arena_commit`
/// may take (and only as placed, so the arena's blocks stay sorted).
struct ArenaSlot {
    arena: Arena,
    pending: Option<(u64, u64)>,
    budget: u64,
}

#[derive(Default)]
struct Kernel {
    /// Live scratch buffers: start address → length.
    buffers: BTreeMap<usize, usize>,
    results: BTreeMap<i32, Outcome>,
    arenas: BTreeMap<i32, ArenaSlot>,
    next_id: i32,
}

static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

fn kernel() -> MutexGuard<'static, Option<Kernel>> {
    KERNEL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on the kernel, made on first use.
fn with<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    let mut guard = kernel();
    f(guard.get_or_insert_with(Kernel::default))
}

impl Kernel {
    /// A fresh id > 0 not used by `taken`: ids wrap after 2^31 - 1 rather than fail.
    fn id(&mut self, taken: impl Fn(&Kernel, i32) -> bool) -> i32 {
        loop {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !taken(self, self.next_id) {
                return self.next_id;
            }
        }
    }

    fn add_result(&mut self, outcome: Outcome) -> i32 {
        let h = self.id(|k, id| k.results.contains_key(&id));
        self.results.insert(h, outcome);
        h
    }

    /// The bytes at `ptr..ptr+len`, if they lie inside one live scratch buffer.
    fn input(&self, ptr: i32, len: i32) -> Option<&[u8]> {
        let (ptr, len) = (unsigned(ptr), usize::try_from(len).ok()?);
        let (&start, &size) = self.buffers.range(..=ptr).next_back()?;
        if ptr.checked_add(len)? > start.checked_add(size)? {
            return None;
        }
        // SAFETY: the range lies inside a live allocation made by `plinth_bytes_alloc`.
        Some(unsafe { std::slice::from_raw_parts(ptr as *const u8, len) })
    }
}

/// A buffer's layout: zero-length buffers take one byte so that each has its own address.
fn layout(len: usize) -> Option<Layout> {
    Layout::from_size_align(len.max(1), 8).ok()
}

/// An address of this module's memory as the host sees it (memory is 32-bit on this target;
/// addresses past 2 GiB read as negative i32s, which the host takes as `>>> 0`).
fn addr(p: *const u8) -> i32 {
    p as usize as u32 as i32
}

/// An address from the host: the i32's bits as an unsigned offset.
fn unsigned(p: i32) -> usize {
    p as u32 as usize
}

/// A scratch buffer of `len` bytes for the host to fill; 0 when `len` is negative or memory
/// is exhausted.
#[no_mangle]
pub extern "C" fn plinth_bytes_alloc(len: i32) -> i32 {
    let Some(layout) = usize::try_from(len).ok().and_then(layout) else {
        return 0;
    };
    // SAFETY: the layout's size is at least 1.
    let p = unsafe { alloc::alloc(layout) };
    if p.is_null() {
        return 0;
    }
    with(|k| k.buffers.insert(p as usize, layout.size()));
    addr(p)
}

/// Frees a scratch buffer; a pointer or length that does not name a live buffer is ignored.
#[no_mangle]
pub extern "C" fn plinth_bytes_free(ptr: i32, len: i32) {
    let ptr = unsigned(ptr);
    let Ok(len) = usize::try_from(len) else {
        return;
    };
    let Some(layout) = layout(len) else { return };
    let live = with(|k| match k.buffers.get(&ptr) {
        Some(&size) if size == layout.size() => k.buffers.remove(&ptr).is_some(),
        _ => false,
    });
    if live {
        // SAFETY: allocated by `plinth_bytes_alloc` with this layout, and freed once.
        unsafe { alloc::dealloc(ptr as *mut u8, layout) }
    }
}

/// Rewrites a plug-in's wasm bytes (inside a scratch buffer) as the native runtime does before
/// compiling ([`plinth_abi::prepare`]); a result handle with the bytes or an error message.
#[no_mangle]
pub extern "C" fn plinth_prepare(ptr: i32, len: i32) -> i32 {
    on_input(
        "plinth_prepare",
        "the module",
        ptr,
        len,
        |wasm| match plinth_abi::prepare(wasm) {
            Ok(prepared) => Outcome {
                info: Some(info_json(&prepared)),
                ..success(prepared.wasm.into_owned())
            },
            Err(e) => error(e.to_string()),
        },
    )
}

/// A result handle holding [`plinth_abi::fuse::memory_functions_module`]: the fused memory
/// functions as a module that imports Extism memory as `env.memory`, for engines that cannot
/// run a fused plug-in (no multi-memory), whose hot imports then link to it.
#[no_mangle]
pub extern "C" fn plinth_memory_functions() -> i32 {
    with(|k| k.add_result(success(plinth_abi::fuse::memory_functions_module())))
}

/// The prefix of a `plinth_limit_memory` error that is the budget's, not the module's.
pub const OUT_OF_MEMORY_PREFIX: &str = "out_of_memory: ";

/// Caps the maximum of every memory the module in `ptr..ptr+len` defines at `max_pages`, and
/// routes its `memory.grow` on memory 0 through a function that sets the exported global
/// `__plinth_grow_refused` to whether the growth was refused
/// ([`plinth_abi::limit::limit_memory_flagged`]); with `fused` = 1 (the module is
/// `plinth_prepare`'s fused output) that growth also keeps memory 0 and Extism memory within
/// the budget together. A result handle with the bytes (the input's own when nothing changed)
/// or an error message, which starts with [`OUT_OF_MEMORY_PREFIX`] when a memory's minimum is
/// over `max_pages`.
#[no_mangle]
pub extern "C" fn plinth_limit_memory(ptr: i32, len: i32, max_pages: i64, fused: i32) -> i32 {
    on_input("plinth_limit_memory", "the module", ptr, len, |wasm| {
        limited(wasm, max_pages, fused == 1)
    })
}

/// Turns WAT text in `ptr..ptr+len` into a wasm binary as the native runtime does before
/// compiling (`wat::parse_bytes`; a binary comes back unchanged). A result handle with the
/// bytes, or the parser's message, which names the line and column.
#[no_mangle]
pub extern "C" fn plinth_wat(ptr: i32, len: i32) -> i32 {
    on_input(
        "plinth_wat",
        "the text",
        ptr,
        len,
        |text| match wat::parse_bytes(text) {
            Ok(wasm) => success(wasm.into_owned()),
            Err(e) => error(e.to_string()),
        },
    )
}

/// Parses the JSON or TOML manifest in `ptr..ptr+len` with the native rules
/// ([`plinth_manifest::Manifest::parse`]). A result handle with the manifest as the native
/// runtime writes it (`Manifest::to_json`: `data` as base64), or the native error message.
#[no_mangle]
pub extern "C" fn plinth_manifest(ptr: i32, len: i32) -> i32 {
    on_input("plinth_manifest", "the manifest", ptr, len, |bytes| {
        match plinth_manifest::Manifest::parse(bytes) {
            Ok(manifest) => success(manifest.to_json().into_bytes()),
            Err(e) => error(e.to_string()),
        }
    })
}

/// 1 when the bytes in `ptr..ptr+len` look like a manifest (JSON, or TOML with a `wasm`
/// key) rather than a module, as the native runtime tells them apart
/// ([`plinth_manifest::Manifest::looks_like_manifest`]); 0 otherwise, and for a pointer
/// outside the scratch buffers.
#[no_mangle]
pub extern "C" fn plinth_looks_like_manifest(ptr: i32, len: i32) -> i32 {
    with(|k| {
        k.input(ptr, len).map_or(0, |bytes| {
            i32::from(plinth_manifest::Manifest::looks_like_manifest(bytes))
        })
    })
}

/// A result handle with `f`'s outcome for the bytes at `ptr..ptr+len`, or, when they are not
/// inside one scratch buffer, an error that says so (`export` names the caller, `what` the
/// bytes it takes).
fn on_input(export: &str, what: &str, ptr: i32, len: i32, f: impl FnOnce(&[u8]) -> Outcome) -> i32 {
    with(|k| {
        let outcome = match k.input(ptr, len) {
            None => error(format!(
                "{export}: {len} bytes at {ptr} are not inside a buffer from \
                 plinth_bytes_alloc; copy {what} into one first"
            )),
            Some(bytes) => f(bytes),
        };
        k.add_result(outcome)
    })
}

fn success(bytes: Vec<u8>) -> Outcome {
    Outcome {
        ok: true,
        bytes,
        info: None,
    }
}

fn error(message: String) -> Outcome {
    Outcome {
        ok: false,
        bytes: message.into_bytes(),
        info: None,
    }
}

/// `plinth_limit_memory`'s result for bytes already checked to be a scratch buffer's.
fn limited(wasm: &[u8], max_pages: i64, fused: bool) -> Outcome {
    let Ok(max_pages) = u64::try_from(max_pages) else {
        return error(format!(
            "plinth_limit_memory: max_pages is {max_pages}; it must be 0 or more"
        ));
    };
    match limit_memory_flagged(wasm, max_pages, fused) {
        Ok(bytes) => Outcome {
            ok: true,
            bytes: bytes.into_owned(),
            info: None,
        },
        Err(e @ LimitError::OverBudget { .. }) => error(format!("{OUT_OF_MEMORY_PREFIX}{e}")),
        Err(e) => error(e.to_string()),
    }
}

/// A new result handle holding [`info_json`] of a successful `plinth_prepare` result; 0 when
/// `h` is not one.
#[no_mangle]
pub extern "C" fn plinth_prepare_info(h: i32) -> i32 {
    with(|k| {
        let Some(info) = k.results.get(&h).and_then(|r| r.info.clone()) else {
            return 0;
        };
        k.add_result(Outcome {
            ok: true,
            bytes: info.into_bytes(),
            info: None,
        })
    })
}

/// 1 when the result holds its value, 0 when it holds an error message (or `h` is unknown).
#[no_mangle]
pub extern "C" fn plinth_result_ok(h: i32) -> i32 {
    with(|k| k.results.get(&h).map_or(0, |r| i32::from(r.ok)))
}

/// Where the result's bytes start; 0 for an unknown handle.
#[no_mangle]
pub extern "C" fn plinth_result_ptr(h: i32) -> i32 {
    with(|k| k.results.get(&h).map_or(0, |r| addr(r.bytes.as_ptr())))
}

/// How many bytes the result holds; 0 for an unknown handle.
#[no_mangle]
pub extern "C" fn plinth_result_len(h: i32) -> i32 {
    with(|k| {
        k.results
            .get(&h)
            .map_or(0, |r| i32::try_from(r.bytes.len()).unwrap_or(0))
    })
}

/// Frees a result; unknown handles are ignored.
#[no_mangle]
pub extern "C" fn plinth_result_free(h: i32) {
    with(|k| k.results.remove(&h));
}

/// What the host must wire for a prepared module, as JSON (see README.md).
pub fn info_json(prepared: &Prepared<'_>) -> String {
    let fused = prepared.fused.as_ref();
    let globals: Vec<String> = fused
        .map(|f| f.global_exports.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|(index, name)| format!("{{\"index\":{index},\"name\":{}}}", json_string(name)))
        .collect();
    format!(
        "{{\"fused\":{},\"memory_export\":{},\"start_export\":{},\"global_exports\":[{}],\"stream_linked\":{}}}",
        fused.is_some(),
        fused.map_or("null".into(), |f| json_string(&f.memory_export)),
        fused
            .and_then(|f| f.start_export.as_deref())
            .map_or("null".into(), json_string),
        globals.join(","),
        prepared.stream_linked,
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A new, empty arena (one per plug-in instance): its id, > 0.
#[no_mangle]
pub extern "C" fn plinth_arena_new() -> i32 {
    with(|k| {
        let id = k.id(|k, id| k.arenas.contains_key(&id));
        k.arenas.insert(
            id,
            ArenaSlot {
                arena: Arena::new(),
                pending: None,
                budget: MAX_BYTES,
            },
        );
        id
    })
}

/// Drops an arena; unknown ids are ignored.
#[no_mangle]
pub extern "C" fn plinth_arena_drop(id: i32) {
    with(|k| k.arenas.remove(&id));
}

/// Runs `f` on arena `id`, or gives `missing`.
fn arena<R>(id: i32, missing: R, f: impl FnOnce(&mut ArenaSlot) -> R) -> R {
    with(|k| k.arenas.get_mut(&id).map_or(missing, f))
}

/// Limits how far the arena's blocks may reach (bytes of Extism memory, like the native
/// `memory.max_pages` budget); placements past it give [`PLACE_OVER_BUDGET`]. 1 when set.
#[no_mangle]
pub extern "C" fn plinth_arena_set_budget(id: i32, bytes: i64) -> i32 {
    let Ok(bytes) = u64::try_from(bytes) else {
        return 0;
    };
    arena(id, 0, |slot| {
        slot.budget = bytes.min(MAX_BYTES);
        1
    })
}

/// Releases every block (before each call).
#[no_mangle]
pub extern "C" fn plinth_arena_reset(id: i32) {
    arena(id, (), |slot| {
        slot.arena.reset();
        slot.pending = None;
    })
}

/// Where a new block of `n` bytes goes: its offset (the handle), 0 for `n == 0` (Extism's
/// null block), or [`PLACE_OVER_BUDGET`], [`PLACE_TOO_LARGE`], [`PLACE_NO_ARENA`]. When
/// `plinth_arena_end` is then non-zero the block is not taken yet: grow the memory to that
/// many bytes and call `plinth_arena_commit`.
#[no_mangle]
pub extern "C" fn plinth_arena_place(id: i32, n: i64) -> i64 {
    let Ok(n) = u64::try_from(n) else {
        return PLACE_TOO_LARGE;
    };
    arena(id, PLACE_NO_ARENA, |slot| {
        slot.pending = None;
        if n == 0 {
            return 0;
        }
        if n > MAX_BYTES {
            return PLACE_TOO_LARGE;
        }
        match slot.arena.place(n) {
            Ok(Placement::Reused(offset)) => offset as i64,
            Ok(Placement::Bump { end, .. }) if end > slot.budget => PLACE_OVER_BUDGET,
            Ok(Placement::Bump { offset, end }) => {
                slot.pending = Some((offset, end));
                offset as i64
            }
            Err(plinth_abi::memory::AllocError::Budget) => PLACE_OVER_BUDGET,
            Err(plinth_abi::memory::AllocError::TooLarge) => PLACE_TOO_LARGE,
        }
    })
}

/// `plinth_arena_alloc` and `plinth_arena_begin`: no block for `n == 0` (Extism's null block).
pub const ALLOC_NULL: i32 = 0;
/// `plinth_arena_alloc`: the arena's memory budget would be exceeded.
pub const ALLOC_OVER_BUDGET: i32 = 1;
/// `plinth_arena_alloc`: larger than Extism memory can ever hold.
pub const ALLOC_TOO_LARGE: i32 = 2;
/// `plinth_arena_alloc`: no arena has that id.
pub const ALLOC_NO_ARENA: i32 = 3;
/// `plinth_arena_alloc`: placed past the memory's current size; grow it to
/// `plinth_arena_end` bytes and `plinth_arena_commit` (as after `plinth_arena_place`).
pub const ALLOC_GROW: i32 = 4;

/// Places and, when the memory already holds it, takes a block of `n` bytes in one call: the
/// hot path of every allocation, which `plinth_arena_place` + `_end` + `_commit` made three
/// calls with 64-bit (BigInt) values. `n` and the result are unsigned 32-bit; `pages` is the
/// memory's current size in 64 KiB pages. A block's offset is >= 16, so the codes 0..=4 above
/// never collide with one.
fn alloc_in(slot: &mut ArenaSlot, n: u32, pages: u32) -> i32 {
    slot.pending = None;
    if n == 0 {
        return ALLOC_NULL;
    }
    match slot.arena.place(u64::from(n)) {
        Ok(Placement::Reused(offset)) => offset as u32 as i32,
        Ok(Placement::Bump { end, .. }) if end > slot.budget => ALLOC_OVER_BUDGET,
        Ok(Placement::Bump { offset, end }) if end <= u64::from(pages) * 65536 => {
            slot.arena.commit(offset, end);
            offset as u32 as i32
        }
        Ok(Placement::Bump { offset, end }) => {
            slot.pending = Some((offset, end));
            ALLOC_GROW
        }
        Err(plinth_abi::memory::AllocError::Budget) => ALLOC_OVER_BUDGET,
        Err(plinth_abi::memory::AllocError::TooLarge) => ALLOC_TOO_LARGE,
    }
}

/// A block of `n` bytes (unsigned) in a memory of `pages` pages: its offset as an unsigned
/// 32-bit value (>= 16), or [`ALLOC_NULL`], [`ALLOC_OVER_BUDGET`], [`ALLOC_TOO_LARGE`],
/// [`ALLOC_NO_ARENA`], [`ALLOC_GROW`] (the placement is pending: grow, then commit).
#[no_mangle]
pub extern "C" fn plinth_arena_alloc(id: i32, n: i32, pages: i32) -> i32 {
    arena(id, ALLOC_NO_ARENA, |slot| {
        alloc_in(slot, n as u32, pages as u32)
    })
}

/// `plinth_arena_reset` then `plinth_arena_alloc`: the start of a call, which frees every block
/// and places the call's input.
#[no_mangle]
pub extern "C" fn plinth_arena_begin(id: i32, n: i32, pages: i32) -> i32 {
    arena(id, ALLOC_NO_ARENA, |slot| {
        slot.arena.reset();
        alloc_in(slot, n as u32, pages as u32)
    })
}

/// `plinth_arena_length` as an unsigned 32-bit value (a block never reaches 4 GiB), so that the
/// host gets a plain number rather than a BigInt.
#[no_mangle]
pub extern "C" fn plinth_arena_length32(id: i32, handle: i64) -> i32 {
    arena(id, 0, |slot| slot.arena.length(handle as u64) as u32 as i32)
}

/// The end of the last placement when it still has to be committed: the memory must hold that
/// many bytes first. 0 when there is nothing to commit (the block was reused, or none placed).
#[no_mangle]
pub extern "C" fn plinth_arena_end(id: i32) -> i64 {
    arena(id, 0, |slot| slot.pending.map_or(0, |(_, end)| end as i64))
}

/// Takes the pending placement `offset..end`; 1 when taken, 0 when it is not the pending one.
#[no_mangle]
pub extern "C" fn plinth_arena_commit(id: i32, offset: i64, end: i64) -> i32 {
    arena(id, 0, |slot| match slot.pending {
        Some((o, e)) if o as i64 == offset && e as i64 == end => {
            slot.arena.commit(o, e);
            slot.pending = None;
            1
        }
        _ => 0,
    })
}

/// Frees the block at `handle`: 1 when freed, 0 when it is not a live block.
#[no_mangle]
pub extern "C" fn plinth_arena_free(id: i32, handle: i64) -> i32 {
    arena(id, 0, |slot| {
        // Freeing the top block moves the bump pointer, which a pending placement came from.
        slot.pending = None;
        i32::from(slot.arena.free(handle as u64))
    })
}

/// The used length of the live block at `handle`, 0 when there is none.
#[no_mangle]
pub extern "C" fn plinth_arena_length(id: i32, handle: i64) -> i64 {
    arena(id, 0, |slot| slot.arena.length(handle as u64) as i64)
}

/// Bytes of Extism memory in use, up to the bump pointer (at least the reserved bytes); 0
/// for an unknown id.
#[no_mangle]
pub extern "C" fn plinth_arena_used(id: i32) -> i64 {
    arena(id, 0, |slot| slot.arena.used() as i64)
}

/// Bytes at the start of Extism memory no block uses (handle 0 is null).
#[no_mangle]
pub extern "C" fn plinth_const_reserved() -> i64 {
    RESERVED as i64
}

/// Where the current input's offset is kept (a little-endian u64), for fused code.
#[no_mangle]
pub extern "C" fn plinth_const_input_offset_at() -> i64 {
    INPUT_OFFSET_AT as i64
}

/// Where the current input's length is kept (a little-endian u64), for fused code.
#[no_mangle]
pub extern "C" fn plinth_const_input_length_at() -> i64 {
    INPUT_LENGTH_AT as i64
}

/// The most bytes Extism memory (a 32-bit memory) can hold.
#[no_mangle]
pub extern "C" fn plinth_const_max_bytes() -> i64 {
    MAX_BYTES as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_places_commits_reuses_and_refuses() {
        let id = plinth_arena_new();
        assert!(id > 0);
        assert_eq!(plinth_arena_used(id), RESERVED as i64);
        let a = plinth_arena_place(id, 5);
        assert_eq!(a, 16);
        assert_eq!(plinth_arena_end(id), 21);
        assert_eq!(
            plinth_arena_commit(id, a, 20),
            0,
            "not the pending placement"
        );
        assert_eq!(plinth_arena_commit(id, a, 21), 1);
        assert_eq!(plinth_arena_commit(id, a, 21), 0, "taken once");
        assert_eq!(plinth_arena_length(id, a), 5);
        let b = plinth_arena_place(id, 3);
        assert_eq!(b, 24, "8-byte aligned");
        assert_eq!(plinth_arena_commit(id, b, plinth_arena_end(id)), 1);
        assert_eq!(plinth_arena_free(id, a), 1);
        assert_eq!(plinth_arena_free(id, a), 0);
        assert_eq!(plinth_arena_place(id, 4), a, "the freed block is reused");
        assert_eq!(plinth_arena_end(id), 0, "a reused block needs no commit");
        assert_eq!(plinth_arena_length(id, a), 4);
        assert_eq!(plinth_arena_place(id, 0), 0);
        assert_eq!(plinth_arena_place(id, 1 << 40), PLACE_TOO_LARGE);
        assert_eq!(plinth_arena_place(id, -1), PLACE_TOO_LARGE);
        assert_eq!(plinth_arena_set_budget(id, 64), 1);
        assert_eq!(plinth_arena_place(id, 100), PLACE_OVER_BUDGET);
        plinth_arena_reset(id);
        assert_eq!(plinth_arena_used(id), RESERVED as i64);
        assert_eq!(plinth_arena_length(id, a), 0);
        plinth_arena_drop(id);
        assert_eq!(plinth_arena_place(id, 1), PLACE_NO_ARENA);
        assert_eq!(plinth_arena_length(id, a), 0);
    }

    #[test]
    fn alloc_takes_what_fits_and_leaves_growth_pending() {
        let id = plinth_arena_new();
        // One page holds the first block: placed and taken in one call.
        let a = plinth_arena_alloc(id, 5, 1);
        assert_eq!(a, 16);
        assert_eq!(plinth_arena_length32(id, 16), 5);
        assert_eq!(plinth_arena_end(id), 0, "nothing pending");
        // Past the memory's size: pending until the host grows and commits.
        assert_eq!(plinth_arena_alloc(id, 70_000, 1), ALLOC_GROW);
        let end = plinth_arena_end(id);
        assert_eq!(end, 24 + 70_000);
        assert_eq!(plinth_arena_length32(id, 24), 0, "not taken yet");
        assert_eq!(plinth_arena_commit(id, 24, end), 1);
        assert_eq!(plinth_arena_length32(id, 24), 70_000);
        assert_eq!(plinth_arena_alloc(id, 0, 1), ALLOC_NULL);
        // n is unsigned: -1 is 4 GiB - 1, which no 32-bit memory holds past the reserved bytes.
        assert_eq!(plinth_arena_alloc(id, -1, 65_535), ALLOC_TOO_LARGE);
        assert_eq!(plinth_arena_set_budget(id, 100_000), 1);
        assert_eq!(plinth_arena_alloc(id, 50_000, 65_535), ALLOC_OVER_BUDGET);
        // begin frees everything and places the input at the start again.
        assert_eq!(plinth_arena_begin(id, 64, 2), 16);
        assert_eq!(plinth_arena_length32(id, 24), 0, "freed by begin");
        assert_eq!(plinth_arena_begin(id, 0, 2), ALLOC_NULL);
        assert_eq!(plinth_arena_used(id), RESERVED as i64);
        plinth_arena_drop(id);
        assert_eq!(plinth_arena_alloc(id, 1, 1), ALLOC_NO_ARENA);
        assert_eq!(plinth_arena_begin(id, 1, 1), ALLOC_NO_ARENA);
        assert_eq!(plinth_arena_length32(id, 16), 0);
    }

    #[test]
    fn info_names_what_the_rewrite_exported() {
        let wasm = wat::parse_str(
            r#"(module
                (import "extism:host/env" "load_u8" (func (param i64) (result i32)))
                (global (mut i32) (i32.const 0))
                (func $s)
                (start $s))"#,
        )
        .unwrap();
        let prepared = plinth_abi::prepare(&wasm).unwrap();
        assert_eq!(
            info_json(&prepared),
            r#"{"fused":true,"memory_export":"__plinth_extism_memory","start_export":"__plinth_start","global_exports":[{"index":0,"name":"__plinth_global_0"}],"stream_linked":false}"#
        );
        let plain = wat::parse_str("(module)").unwrap();
        assert_eq!(
            info_json(&plinth_abi::prepare(&plain).unwrap()),
            r#"{"fused":false,"memory_export":null,"start_export":null,"global_exports":[],"stream_linked":false}"#
        );
    }

    #[test]
    fn memory_functions_come_as_a_result() {
        let h = plinth_memory_functions();
        assert_eq!(plinth_result_ok(h), 1);
        assert!(plinth_result_len(h) > 8);
        plinth_result_free(h);
        assert_eq!(plinth_result_len(h), 0, "freed");
    }

    #[test]
    fn limit_memory_caps_or_refuses_with_the_budget_prefix() {
        // Natively a pointer does not fit the ABI's i32, so the buffer checks are the Node
        // test's; this checks the outcome for bytes already found in a buffer.
        let wasm = wat::parse_str("(module (memory 2))").unwrap();
        let capped = limited(&wasm, 8, false);
        assert!(capped.ok);
        assert_eq!(
            capped.bytes,
            limit_memory_flagged(&wasm, 8, false).unwrap().as_ref()
        );
        assert_ne!(capped.bytes, wasm);
        let refused = limited(&wasm, 1, false);
        let message = String::from_utf8(refused.bytes).unwrap();
        assert!(
            !refused.ok && message.starts_with(OUT_OF_MEMORY_PREFIX),
            "{message}"
        );
        assert!(message.contains("minimum of 2 pages") && message.contains("max_pages = 1"));
        let negative = limited(&wasm, -1, false);
        assert!(!negative.ok && !negative.bytes.starts_with(OUT_OF_MEMORY_PREFIX.as_bytes()));
        let garbage = limited(b"\0asm\x01\0\0\0\x05\x10", 1, false);
        assert!(
            !garbage.ok
                && garbage
                    .bytes
                    .starts_with(b"not a valid WebAssembly module: ")
        );
        let two = wat::parse_str(
            "(module (memory 1) (memory 1) (func (drop (memory.grow (i32.const 1)))))",
        )
        .unwrap();
        for fused in [false, true] {
            let flagged = limited(&two, 4, fused);
            assert!(flagged.ok);
            assert_eq!(
                flagged.bytes,
                limit_memory_flagged(&two, 4, fused).unwrap().as_ref()
            );
        }
        assert_ne!(limited(&two, 4, true).bytes, limited(&two, 4, false).bytes);
        let h = plinth_limit_memory(0, 4, 1, 0);
        assert_eq!(plinth_result_ok(h), 0, "not a scratch buffer");
        plinth_result_free(h);
    }

    #[test]
    fn unknown_results_read_as_empty_errors() {
        assert_eq!(plinth_result_ok(-5), 0);
        assert_eq!(plinth_result_len(12345), 0);
        assert_eq!(plinth_prepare_info(12345), 0);
        plinth_result_free(12345);
    }
}

//! The data each wasmtime store carries: Extism memory, the current call's input, output and
//! error, vars, config, HTTP state, limits and WASI.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{AsContext, AsContextMut, Memory, ResourceLimiter};

use crate::memory::{AllocError, Arena, Placement};
use crate::Error;

pub(crate) const PAGE: u64 = 65536;
/// Table growth is capped so that a hostile module cannot take host memory through tables.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// One budget for all memory growth of a plug-in instance: its linear memories and Extism
/// memory (itself a wasm memory) together.
pub(crate) struct Limiter {
    pub budget: Option<u64>,
    pub used: u64,
    /// Set when growth was refused, so that the failure that follows is reported as out of memory.
    pub hit: bool,
    /// The growth last allowed, taken back if wasmtime then fails to grow the memory.
    pending: u64,
}

impl Limiter {
    pub fn new(max_pages: Option<u32>) -> Self {
        Limiter {
            budget: max_pages.map(|p| p as u64 * PAGE),
            used: 0,
            hit: false,
            pending: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Saturating: a 64-bit memory may ask for nearly 2^64 bytes (found by fuzzing).
        let grow = desired.saturating_sub(current) as u64;
        let after = self.used.saturating_add(grow);
        if self.budget.is_some_and(|b| after > b) {
            self.hit = true;
            self.pending = 0;
            return Ok(false);
        }
        self.used = after;
        self.pending = grow;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Allowed here but refused by wasmtime (over the memory's own maximum, or no address
        // space): the memory did not grow, so neither does its share of the budget.
        self.used = self.used.saturating_sub(self.pending);
        self.pending = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Why an epoch callback stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    Timeout,
    Cancelled,
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interrupt::Timeout => f.write_str("the call timed out"),
            Interrupt::Cancelled => f.write_str("the call was cancelled"),
        }
    }
}
impl std::error::Error for Interrupt {}

/// Per-plug-in var store with a byte cap on keys plus values.
#[derive(Default, Debug, Clone)]
pub(crate) struct Vars {
    pub map: BTreeMap<String, Vec<u8>>,
    pub bytes: u64,
    /// The host changed `map` directly (`CurrentPlugin::vars_mut`): `bytes` is stale.
    pub recount: bool,
}

impl Vars {
    pub fn set(&mut self, key: String, value: Option<Vec<u8>>, limit: u64) -> Result<(), Error> {
        if self.recount {
            self.recount = false;
            self.bytes = self.map.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        }
        let old = self.map.get(&key).map_or(0, |v| key.len() + v.len()) as u64;
        match value {
            None => {
                self.map.remove(&key);
                self.bytes -= old;
            }
            Some(v) => {
                let needed = self.bytes - old + (key.len() + v.len()) as u64;
                if needed > limit {
                    return Err(Error::VarStoreFull { needed, limit });
                }
                self.bytes = needed;
                self.map.insert(key, v);
            }
        }
        Ok(())
    }
}

/// HTTP state visible to the guest between requests.
#[derive(Default)]
pub(crate) struct HttpState {
    pub last_status: u16,
    pub last_headers: Option<BTreeMap<String, String>>,
    /// Response headers for this plug-in even if the compiled form did not ask for them.
    pub headers_enabled: bool,
}

/// Where Extism memory lives for an instance: the memory fused into the plug-in, or one the
/// host made.
#[derive(Clone, Copy)]
pub(crate) struct Kernel {
    pub memory: Memory,
}

pub(crate) struct StoreData {
    pub arena: Arena,
    pub kernel: Option<Kernel>,
    pub input: (u64, u64),
    pub output: (u64, u64),
    pub error: u64,
    pub limiter: Limiter,
    pub vars: Vars,
    pub config: Arc<std::sync::RwLock<BTreeMap<String, String>>>,
    pub http: HttpState,
    pub shared: Arc<crate::plugin::Shared>,
    pub plugin_id: Arc<str>,
    pub deadline: Option<Instant>,
    pub cancel: Arc<AtomicBool>,
    pub host_context: Option<Box<dyn Any + Send>>,
    pub wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
}

impl StoreData {
    pub fn memory(&self) -> Option<Memory> {
        self.kernel.map(|k| k.memory)
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Extism memory's bytes.
pub(crate) fn bytes<'a, T: AsContext<Data = StoreData> + 'a>(cx: &'a T) -> &'a [u8] {
    let store = cx.as_context();
    match store.data().memory() {
        Some(m) => m.data(store),
        None => &[],
    }
}

/// Extism memory's bytes, writable.
pub(crate) fn bytes_mut<'a, T: AsContextMut<Data = StoreData> + 'a>(cx: &'a mut T) -> &'a mut [u8] {
    let store = cx.as_context_mut();
    match store.data().memory() {
        Some(m) => m.data_mut(store),
        None => &mut [],
    }
}

/// Runs `f` on Extism memory's bytes, grown first (within the budget) to hold `end` bytes.
/// The memory is looked up once when no growth is needed: on the per-call path, each look-up
/// is a noticeable part of the cost.
fn with_bytes<R>(
    cx: &mut impl AsContextMut<Data = StoreData>,
    end: u64,
    f: impl FnOnce(&mut [u8]) -> R,
) -> Result<R, AllocError> {
    let mut store = cx.as_context_mut();
    let Some(mem) = store.data().memory() else {
        return Err(AllocError::TooLarge);
    };
    let mut bytes = mem.data_mut(&mut store);
    let size = bytes.len() as u64;
    if end > size {
        let pages = (end - size).div_ceil(PAGE);
        if mem.grow(&mut store, pages).is_err() {
            return Err(if store.data().limiter.hit {
                AllocError::Budget
            } else {
                AllocError::TooLarge
            });
        }
        bytes = mem.data_mut(&mut store);
    }
    Ok(f(bytes))
}

/// Takes a place for `n > 0` bytes and runs `f` on them.
fn place_with(
    cx: &mut impl AsContextMut<Data = StoreData>,
    n: u64,
    f: impl FnOnce(&mut [u8]),
) -> Result<u64, AllocError> {
    match cx.as_context_mut().data_mut().arena.place(n)? {
        Placement::Reused(h) => {
            with_bytes(cx, 0, |b| f(&mut b[h as usize..(h + n) as usize]))?;
            Ok(h)
        }
        Placement::Bump { offset, end } => {
            with_bytes(cx, end, |b| f(&mut b[offset as usize..end as usize]))?;
            cx.as_context_mut().data_mut().arena.commit(offset, end);
            Ok(offset)
        }
    }
}

/// A new zeroed block of `n` bytes; `Ok(0)` for `n == 0`.
pub(crate) fn alloc(
    cx: &mut impl AsContextMut<Data = StoreData>,
    n: u64,
) -> Result<u64, AllocError> {
    if n == 0 {
        return Ok(0);
    }
    // Memory is not cleared between calls, so a block must not show earlier contents.
    place_with(cx, n, |b| b.fill(0))
}

/// A new block of `n` bytes left as Extism memory held them, for a caller that writes all of
/// it at once (Plinth's `alloc_uninit`): saves `alloc`'s clearing pass.
pub(crate) fn alloc_uninit(
    cx: &mut impl AsContextMut<Data = StoreData>,
    n: u64,
) -> Result<u64, AllocError> {
    if n == 0 {
        return Ok(0);
    }
    place_with(cx, n, |_| ())
}

/// A new block holding a copy of `data`.
pub(crate) fn alloc_bytes(
    cx: &mut impl AsContextMut<Data = StoreData>,
    data: &[u8],
) -> Result<u64, AllocError> {
    if data.is_empty() {
        return Ok(0);
    }
    place_with(cx, data.len() as u64, |b| b.copy_from_slice(data))
}

/// Sets the current input, for the host functions and for fused code.
pub(crate) fn set_input(cx: &mut impl AsContextMut<Data = StoreData>, handle: u64, len: u64) {
    cx.as_context_mut().data_mut().input = (handle, len);
    write_input_place(bytes_mut(cx), handle, len);
}

/// Fused code reads the input's place from the reserved bytes.
fn write_input_place(bytes: &mut [u8], handle: u64, len: u64) {
    if bytes.len() >= crate::memory::RESERVED as usize {
        let (at_off, at_len) = (
            crate::memory::INPUT_OFFSET_AT as usize,
            crate::memory::INPUT_LENGTH_AT as usize,
        );
        bytes[at_off..at_off + 8].copy_from_slice(&handle.to_le_bytes());
        bytes[at_len..at_len + 8].copy_from_slice(&len.to_le_bytes());
    }
}

/// Frees a handle, keeping the input's bookkeeping right.
pub(crate) fn free(cx: &mut impl AsContextMut<Data = StoreData>, h: u64) {
    let mut store = cx.as_context_mut();
    let d = store.data_mut();
    if d.arena.free(h) && h == d.input.0 {
        set_input(&mut store, 0, 0);
    }
}

/// Reads a block the guest handed over and frees it (the "takes ownership" imports).
pub(crate) fn take_block(cx: &mut impl AsContextMut<Data = StoreData>, h: u64) -> Vec<u8> {
    let len = cx.as_context().data().arena.length(h);
    let out = crate::memory::range(bytes(cx), h, len)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    free(cx, h);
    out
}

/// Reads a UTF-8 block and frees it.
pub(crate) fn take_string(
    cx: &mut impl AsContextMut<Data = StoreData>,
    h: u64,
    what: &str,
) -> wasmtime::Result<String> {
    String::from_utf8(take_block(cx, h))
        .map_err(|_| wasmtime::format_err!("{what} is not valid UTF-8"))
}

/// The bytes of the active block at `h`.
pub(crate) fn block<T: AsContext<Data = StoreData>>(cx: &T, h: u64) -> Option<&[u8]> {
    let len = cx.as_context().data().arena.length(h);
    if len == 0 {
        return None;
    }
    crate::memory::range(bytes(cx), h, len)
}

/// Clears the state of the previous call and copies the new input in.
pub(crate) fn begin_call(
    cx: &mut impl AsContextMut<Data = StoreData>,
    input: &[u8],
) -> Result<(), AllocError> {
    let mut store = cx.as_context_mut();
    let d = store.data_mut();
    d.arena.reset();
    d.output = (0, 0);
    d.error = 0;
    d.http.last_status = 0;
    d.http.last_headers = None;
    let n = input.len() as u64;
    let (h, end) = if n == 0 {
        (0, 0)
    } else {
        // A reset arena has no free blocks: the input goes at the bump pointer.
        let Placement::Bump { offset, end } = d.arena.place(n)? else {
            unreachable!("a reset arena reuses no block")
        };
        (offset, end)
    };
    // One look-up of the memory for the copy and the reserved bytes that fused code reads.
    with_bytes(&mut store, end, |bytes| {
        if n != 0 {
            bytes[h as usize..end as usize].copy_from_slice(input);
        }
        write_input_place(bytes, h, n);
    })?;
    let d = store.data_mut();
    if n != 0 {
        d.arena.commit(h, end);
    }
    d.input = (h, n);
    Ok(())
}

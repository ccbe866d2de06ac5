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
/// The most one memory may hold, 32- or 64-bit, with or without a budget: 4 GiB. It is also
/// the address space wasmtime reserves for a memory on 64-bit hosts, so no memory outgrows its
/// reservation: growing past it makes wasmtime move the memory and copy it whole, which
/// commits all of it at once.
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;
/// The most elements all tables of an instance may hold together.
pub const MAX_TABLE_ELEMENTS: u64 = 1 << 20;
/// What one table element counts for against a memory budget: a function reference's size.
pub const TABLE_ELEMENT_BYTES: u64 = 8;

/// Where an instance is in its making, which decides what memory and table sizes count for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Extism memory made by the host, and the manifest's other modules: bounded by the caps
    /// and the instance limit only (Extism instantiates them before its limiter is set).
    Setup,
    /// The main module's instantiation and start function: what it declares must fit in
    /// `max_pages` (its memories together, its tables together), but is not charged.
    Declare,
    /// After instantiation: all growth of all memories and tables is charged to `max_pages`.
    Run,
}

/// Why the limiter refused a memory or table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `memory.max_pages`.
    Budget,
    /// The whole-instance limit (`PluginBuilder::with_instance_memory_max`).
    Instance,
    /// A memory asked for `bytes`, over [`MAX_MEMORY_BYTES`].
    MemoryCap { bytes: u64 },
    /// The instance's tables would hold `elements`, over [`MAX_TABLE_ELEMENTS`].
    Tables { elements: u64 },
}

impl Refusal {
    /// A refusal by a budget the host set, as opposed to a fixed cap.
    pub fn is_budget(self) -> bool {
        matches!(self, Refusal::Budget | Refusal::Instance)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Budget => f.write_str("memory growth over `memory.max_pages`"),
            Refusal::Instance => f.write_str("memory over the instance memory limit"),
            Refusal::MemoryCap { bytes } => write!(
                f,
                "a memory of {} pages ({bytes} bytes), over the {} pages (4 GiB) one memory may hold",
                bytes.div_ceil(PAGE),
                MAX_MEMORY_BYTES / PAGE
            ),
            Refusal::Tables { elements } => write!(
                f,
                "tables of {elements} elements in all, over the {MAX_TABLE_ELEMENTS} elements \
                 an instance's tables may hold together"
            ),
        }
    }
}

/// The memory limits of one instance, Extism's accounting: `memory.max_pages` bounds what the
/// main module declares at instantiation, then all growth after it, summed over every memory
/// (Extism memory included) and table. Besides: each memory at most 4 GiB, all tables together
/// at most 2^20 elements, and optionally one limit on everything from the first byte.
pub(crate) struct Limiter {
    /// `memory.max_pages`, in bytes.
    budget: Option<u64>,
    /// The whole-instance limit, in bytes.
    instance: Option<u64>,
    phase: Phase,
    /// Extism memory's first page, when fusing made it part of the main module: Extism does
    /// not count it either.
    declare_allowance: u64,
    declared_memory: u64,
    declared_tables: u64,
    /// Growth since instantiation, memories and tables.
    grown: u64,
    /// Everything the instance holds, for the instance limit.
    total: u64,
    table_elements: u64,
    /// The last refusal, until something grows again or the next call starts: a trap that
    /// follows it is reported as out of memory when it is what a refused growth leads to.
    pub refused: Option<Refusal>,
}

impl Limiter {
    pub fn new(max_pages: Option<u32>, instance_max_pages: Option<u32>) -> Self {
        Limiter {
            budget: max_pages.map(|p| p as u64 * PAGE),
            instance: instance_max_pages.map(|p| p as u64 * PAGE),
            phase: Phase::Setup,
            declare_allowance: 0,
            declared_memory: 0,
            declared_tables: 0,
            grown: 0,
            total: 0,
            table_elements: 0,
            refused: None,
        }
    }

    /// The main module is instantiated next; `extism_memory_inside` when its fused Extism
    /// memory (one page) comes with it.
    pub fn declare(&mut self, extism_memory_inside: bool) {
        self.phase = Phase::Declare;
        self.declare_allowance = if extism_memory_inside { PAGE } else { 0 };
    }

    /// Instantiation is over: from now on growth is charged (Extism resets its limiter here).
    pub fn run(&mut self) {
        self.phase = Phase::Run;
    }

    fn refuse(&mut self, why: Refusal) -> wasmtime::Result<bool> {
        self.refused = Some(why);
        Ok(false)
    }

    /// Allows `bytes` more of a memory (`memory`) or a table, or refuses them.
    fn charge(&mut self, bytes: u64, memory: bool) -> wasmtime::Result<bool> {
        let total = self.total.saturating_add(bytes);
        if self.instance.is_some_and(|limit| total > limit) {
            return self.refuse(Refusal::Instance);
        }
        match self.phase {
            Phase::Setup => {}
            Phase::Declare => {
                let (sum, allowance) = if memory {
                    (&mut self.declared_memory, self.declare_allowance)
                } else {
                    (&mut self.declared_tables, 0)
                };
                let after = sum.saturating_add(bytes);
                if self
                    .budget
                    .is_some_and(|b| after > b.saturating_add(allowance))
                {
                    return self.refuse(Refusal::Budget);
                }
                *sum = after;
            }
            Phase::Run => {
                let after = self.grown.saturating_add(bytes);
                if self.budget.is_some_and(|b| after > b) {
                    return self.refuse(Refusal::Budget);
                }
                self.grown = after;
            }
        }
        self.total = total;
        self.refused = None;
        Ok(true)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let (current, desired) = (current as u64, desired as u64);
        // Over the memory's own maximum: wasmtime refuses it after asking; not ours to count.
        if maximum.is_some_and(|m| desired > m as u64) {
            return Ok(false);
        }
        if desired > MAX_MEMORY_BYTES {
            return self.refuse(Refusal::MemoryCap { bytes: desired });
        }
        self.charge(desired.saturating_sub(current), true)
    }

    // No refund in `memory_grow_failed`/`table_grow_failed`: wasmtime also calls them for
    // some growth it refused without asking the limiter, so a refund could give back growth
    // that did happen. The maximum is checked above, so after an approval only an
    // operating-system failure is left, and counting that growth anyway errs on the safe side.

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let (current, desired) = (current as u64, desired as u64);
        if maximum.is_some_and(|m| desired > m as u64) {
            return Ok(false);
        }
        let grow = desired.saturating_sub(current);
        let elements = self.table_elements.saturating_add(grow);
        if elements > MAX_TABLE_ELEMENTS {
            return self.refuse(Refusal::Tables { elements });
        }
        let allowed = self.charge(grow.saturating_mul(TABLE_ELEMENT_BYTES), false)?;
        if allowed {
            self.table_elements = elements;
        }
        Ok(allowed)
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
            self.bytes = self
                .map
                .iter()
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum();
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
    /// The fuel given to what runs now: the initialization limit or the call limit.
    pub fuel_limit: u64,
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
        store.data_mut().limiter.refused = None;
        if mem.grow(&mut store, pages).is_err() {
            return Err(match store.data().limiter.refused {
                Some(r) if r.is_budget() => AllocError::Budget,
                _ => AllocError::TooLarge,
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
    // `http_status_code` and `http_headers` keep the last request's answer across calls, as
    // in Extism (each request clears them when it starts).
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

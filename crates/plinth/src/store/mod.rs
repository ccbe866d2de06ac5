//! The state every host function sees: what each wasmtime store of a plug-in carries.
//!
//! - [`StoreData`]: one instance's state: Extism memory, the current call's input, output and
//!   error, vars, config, HTTP state, limits, deadline, cancel flag and WASI context. The
//!   accessors below (`alloc`, `block`, `begin_call`, ...) are the one way host code touches
//!   Extism memory.
//! - [`Settings`]: what all instances of one compiled plug-in share (limits, HTTP policy, WASI
//!   options, the manifest's config); each store points at it.
//! - [`Limiter`]: memory and table budget with Extism's accounting.
//! - [`Vars`]: the var store with its byte cap.
//! - [`WasiOptions`], [`WasiStdio`], [`CapturedOutput`]: WASI settings.
//! - `stream.rs`: [`CallStreams`], the input and output streams of the current call.
//!
//! This layer sits under the host functions (`host/`) and the instance (`instance/`), and
//! depends on neither.

mod limiter;
mod settings;
pub(crate) mod stream;
mod vars;
mod wasi;

pub(crate) use limiter::{Limiter, Refusal, PAGE};
pub(crate) use settings::Settings;
pub(crate) use stream::{CallStreams, StreamSlot};
pub(crate) use vars::Vars;
pub(crate) use wasi::WasiOptions;
pub use wasi::{CapturedOutput, WasiStdio};

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{AsContext, AsContextMut, Memory};

use crate::abi::memory::{AllocError, Arena, Placement};

/// HTTP state visible to the guest between requests.
#[derive(Default)]
pub(crate) struct HttpState {
    pub last_status: u16,
    pub last_headers: Option<BTreeMap<String, String>>,
    /// Response headers for this plug-in even if the compiled form did not ask for them.
    pub headers_enabled: bool,
    /// Requests whose bodies stream (`http_stream_*`), by handle; closed when the call ends.
    pub streams: BTreeMap<u64, crate::http::StreamingRequest>,
    /// The handle the next streaming request gets.
    pub next_stream: u64,
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
    /// The output as a range of the plug-in's own memory (`output_direct`), instead of
    /// `output`'s Extism block.
    pub output_direct: Option<(u32, u32)>,
    pub error: u64,
    pub limiter: Limiter,
    /// The fuel given to what runs now: the initialization limit or the call limit.
    pub fuel_limit: u64,
    pub vars: Vars,
    pub config: Arc<std::sync::RwLock<BTreeMap<String, String>>>,
    pub http: HttpState,
    pub shared: Arc<Settings>,
    pub plugin_id: Arc<str>,
    pub deadline: Option<Instant>,
    pub cancel: Arc<AtomicBool>,
    pub host_context: Option<Box<dyn Any + Send>>,
    /// An async call runs: epoch ticks yield to the executor instead of only checking.
    pub yield_at_ticks: bool,
    /// A call started and has not finished: set while wasm runs, so that a call abandoned
    /// midway (its future dropped) leaves an instance that is never used again.
    pub call_in_progress: bool,
    pub wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
    /// The streams `stream_read` and `stream_write` use in this call.
    pub streams: StreamSlot,
    /// A stream function ran in a classic call: its collected output and read position are
    /// settled and reset when the call ends.
    pub streams_touched: bool,
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
    if bytes.len() >= crate::abi::memory::RESERVED as usize {
        let (at_off, at_len) = (
            crate::abi::memory::INPUT_OFFSET_AT as usize,
            crate::abi::memory::INPUT_LENGTH_AT as usize,
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
    let out = crate::abi::memory::range(bytes(cx), h, len)
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
    crate::abi::memory::range(bytes(cx), h, len)
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
    d.output_direct = None;
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

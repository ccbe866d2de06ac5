//! The data each wasmtime store carries: Extism memory, the current call's input, output and
//! error, vars, config, HTTP state, limits and WASI.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;

use crate::memory::{AllocError, ExtismMemory};
use crate::Error;

pub(crate) const PAGE: u64 = 65536;
/// Table growth is capped so that a hostile module cannot take host memory through tables.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// One budget for all memory growth of a plug-in instance: its linear memories plus the
/// Extism memory arena.
pub(crate) struct Limiter {
    pub budget: Option<u64>,
    pub linear: u64,
    pub arena: u64,
    /// Set when growth was refused, so that the failure that follows is reported as out of memory.
    pub hit: bool,
}

impl Limiter {
    pub fn new(max_pages: Option<u32>) -> Self {
        Limiter {
            budget: max_pages.map(|p| p as u64 * PAGE),
            linear: 0,
            arena: 0,
            hit: false,
        }
    }

    /// May the arena grow to `new_size` bytes?
    pub fn arena_may_grow_to(&mut self, new_size: u64) -> bool {
        if let Some(b) = self.budget {
            if self.linear + new_size > b {
                self.hit = true;
                return false;
            }
        }
        self.arena = self.arena.max(new_size);
        true
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = (desired - current) as u64;
        if let Some(b) = self.budget {
            if self.linear + grow + self.arena > b {
                self.hit = true;
                return Ok(false);
            }
        }
        self.linear += grow;
        Ok(true)
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
}

impl Vars {
    pub fn set(&mut self, key: String, value: Option<Vec<u8>>, limit: u64) -> Result<(), Error> {
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
}

pub(crate) struct StoreData {
    pub memory: ExtismMemory,
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
    pub fn alloc(&mut self, n: u64) -> Result<u64, AllocError> {
        let limiter = &mut self.limiter;
        self.memory.alloc(n, |end| limiter.arena_may_grow_to(end))
    }

    pub fn alloc_bytes(&mut self, bytes: &[u8]) -> Result<u64, AllocError> {
        let limiter = &mut self.limiter;
        self.memory
            .alloc_bytes(bytes, |end| limiter.arena_may_grow_to(end))
    }

    /// Frees a handle, keeping the input's bookkeeping right.
    pub fn free(&mut self, h: u64) {
        if self.memory.free(h) && h == self.input.0 {
            self.input = (0, 0);
        }
    }

    /// Reads a block the guest handed over and frees it (the "takes ownership" imports).
    pub fn take_block(&mut self, h: u64) -> Vec<u8> {
        let bytes = self.memory.block(h).map(<[u8]>::to_vec).unwrap_or_default();
        self.free(h);
        bytes
    }

    /// Reads a UTF-8 block and frees it.
    pub fn take_string(&mut self, h: u64, what: &str) -> wasmtime::Result<String> {
        String::from_utf8(self.take_block(h))
            .map_err(|_| wasmtime::format_err!("{what} is not valid UTF-8"))
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Clears the state of the previous call and copies the new input in.
    pub fn begin_call(&mut self, input: &[u8]) -> Result<(), AllocError> {
        self.memory.reset();
        self.output = (0, 0);
        self.error = 0;
        self.http.last_status = 0;
        self.http.last_headers = None;
        self.limiter.arena = 0;
        let h = self.alloc_bytes(input)?;
        self.input = (h, input.len() as u64);
        Ok(())
    }
}

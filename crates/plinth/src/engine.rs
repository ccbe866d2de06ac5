//! Shared wasmtime engines and the epoch ticker that drives timeouts and cancellation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances while calls are running: the granularity of timeouts and
/// the longest a cancel waits.
pub const TICK: Duration = Duration::from_millis(1);
/// Idle ticks before the ticker parks itself.
const IDLE_TICKS_BEFORE_PARK: u32 = 200;

/// One wasmtime engine plus its ticker. Cloning shares both.
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) engine: Engine,
    /// Which of the shared engines this is: bit 0 fuel, bit 1 pooled instances, bit 2 the
    /// baseline compiler (Winch) instead of Cranelift.
    pub(crate) kind: u8,
    ticker: Arc<Ticker>,
}

/// Live instances that the pooling allocator has slots for, across all pooled plug-ins of
/// the process (see `PluginBuilder::with_instance_pooling`).
pub const POOLED_INSTANCES: u32 = 1000;
/// The most linear memory a pooled instance's memory may grow to.
pub const POOLED_MEMORY_BYTES: usize = 4 << 30;

/// Calls running, counted per thread group so that threads calling at once do not write to
/// one shared counter (a cache line bouncing between cores on every call); the ticker sums.
const SHARDS: usize = 16;

/// How many bytes of each freed pooled memory are reset in place instead of given back to the
/// kernel. Where Linux's `PAGEMAP_SCAN` finds the pages an instance wrote (6.7 and later), only
/// those are reset, so a larger bound costs nothing for small plug-ins and spares the page
/// faults of the next instance; elsewhere the whole bound is memset on every reset.
fn keep_resident() -> usize {
    if pagemap_scan_available() {
        1 << 20
    } else {
        64 << 10
    }
}

/// Whether the kernel has `PAGEMAP_SCAN` (Linux 6.7): wasmtime probes it again itself.
fn pagemap_scan_available() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release.trim().split(['.', '-']);
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
    matches!((next(), next()), (Some(major), Some(minor)) if (major, minor) >= (6, 7))
}

#[repr(align(128))]
struct Shard(AtomicUsize);

struct Ticker {
    running: [Shard; SHARDS],
    /// Set by the ticker before it parks, so callers only write to it (and unpark) then.
    parked: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Ticker {
    fn idle(&self) -> bool {
        self.running.iter().all(|s| s.0.load(Ordering::SeqCst) == 0)
    }
}

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

/// The configuration of one of the shared engines.
fn config(fuel: bool, pooled: bool, baseline: bool) -> Config {
    let mut config = Config::new();
    if pooled {
        // Slots made once and reused: a new instance takes a slot and resets it instead of
        // mapping fresh memory, which is most of an instantiation's cost otherwise.
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(POOLED_INSTANCES)
            // A fused plug-in has two memories: its own and Extism memory.
            .max_memories_per_module(2)
            .total_memories(2 * POOLED_INSTANCES)
            .total_tables(POOLED_INSTANCES)
            // As many elements as the limiter ever allows (`MAX_TABLE_ELEMENTS`): address
            // space, not memory.
            .table_elements(1 << 20)
            .max_memory_size(POOLED_MEMORY_BYTES)
            // Reset a freed slot's pages with memset rather than returning them to the
            // kernel, so that the next instance does not fault them back in.
            .linear_memory_keep_resident(keep_resident())
            .table_keep_resident(16 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    if baseline {
        // Winch compiles in one pass, several times faster than Cranelift, to slower code:
        // the first tier of `PluginBuilder::with_tiering`.
        config.strategy(wasmtime::Strategy::Winch);
    } else {
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // No Cranelift inlining: its cost grows without bound on some call graphs (a chain
        // of small functions took gigabytes to compile). `plinth-abi`'s `fuse/` (crates/abi/src/fuse/) splices the hot
        // ABI bodies into their call sites instead, which is what inlining bought.
        config.compiler_inlining(wasmtime::Inlining::No);
    }
    config
}

impl EngineHandle {
    fn new(fuel: bool, pooled: bool, baseline: bool) -> Self {
        let engine = match Engine::new(&config(fuel, pooled, baseline)) {
            Ok(engine) => engine,
            // The pool reserves its address space up front, which a limit on it (`ulimit -v`,
            // valgrind) can refuse: instances are then allocated on demand, as without a pool.
            Err(e) if pooled => {
                tracing::warn!(
                    "cannot reserve the instance pool ({e}); instances are allocated on demand"
                );
                Engine::new(&config(fuel, false, baseline))
                    .expect("the engine configuration is valid")
            }
            Err(e) => panic!("the engine configuration is valid: {e}"),
        };
        let handle = EngineHandle {
            engine,
            kind: fuel as u8 | (pooled as u8) << 1 | (baseline as u8) << 2,
            ticker: Arc::new(Ticker {
                running: std::array::from_fn(|_| Shard(AtomicUsize::new(0))),
                parked: AtomicBool::new(false),
                thread: OnceLock::new(),
            }),
        };
        handle.spawn_ticker();
        handle
    }

    /// The process-wide engine with or without fuel metering (fuel costs speed, so plug-ins
    /// that do not ask for it run on an engine without it) and pooled instances (which
    /// reserve address space for all their slots up front, so only plug-ins that ask get them).
    pub fn shared(fuel: bool, pooled: bool) -> EngineHandle {
        Self::shared_tier(fuel, pooled, false)
    }

    /// Like [`EngineHandle::shared`], on the baseline compiler (Winch) when `baseline` is set.
    pub fn shared_tier(fuel: bool, pooled: bool, baseline: bool) -> EngineHandle {
        static ENGINES: [OnceLock<EngineHandle>; 8] = [const { OnceLock::new() }; 8];
        ENGINES[fuel as usize | (pooled as usize) << 1 | (baseline as usize) << 2]
            .get_or_init(|| EngineHandle::new(fuel, pooled, baseline))
            .clone()
    }

    /// Whether this engine compiles with Winch, the fast first tier.
    pub(crate) fn is_baseline(&self) -> bool {
        self.kind & 4 != 0
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn spawn_ticker(&self) {
        let engine = self.engine.clone();
        // The ticker holds only a weak reference so it does not keep anything alive forever.
        let ticker = Arc::downgrade(&self.ticker);
        let thread = std::thread::Builder::new()
            .name("plinth-epoch".into())
            .spawn(move || {
                let mut idle = 0u32;
                loop {
                    let Some(t) = ticker.upgrade() else { return };
                    if t.idle() {
                        idle += 1;
                        if idle >= IDLE_TICKS_BEFORE_PARK {
                            idle = 0;
                            // Announce, then look again: a call that starts in between either
                            // sees `parked` and unparks us, or is seen here.
                            t.parked.store(true, Ordering::SeqCst);
                            if t.idle() {
                                drop(t);
                                std::thread::park();
                                continue;
                            }
                            t.parked.store(false, Ordering::SeqCst);
                        }
                    } else {
                        idle = 0;
                    }
                    drop(t);
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .expect("cannot start the epoch ticker thread");
        let _ = self.ticker.thread.set(thread.thread().clone());
    }

    /// Marks a call as running until the guard drops, so the ticker keeps ticking.
    pub(crate) fn call_guard(&self) -> CallGuard<'_> {
        let shard = &self.ticker.running[SHARD.with(|s| *s)].0;
        shard.fetch_add(1, Ordering::SeqCst);
        if self.ticker.parked.load(Ordering::SeqCst)
            && self.ticker.parked.swap(false, Ordering::SeqCst)
        {
            if let Some(t) = self.ticker.thread.get() {
                t.unpark();
            }
        }
        CallGuard { shard }
    }

    /// Makes running code check its deadline and cancel flag at once.
    pub(crate) fn interrupt_now(&self) {
        self.engine.increment_epoch();
    }
}

pub(crate) struct CallGuard<'a> {
    shard: &'a AtomicUsize,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.shard.fetch_sub(1, Ordering::Release);
    }
}

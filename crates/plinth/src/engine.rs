//! Shared wasmtime engines and the epoch ticker that drives timeouts and cancellation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances while calls are running: the granularity of timeouts and
/// the longest a cancel waits.
pub const TICK: Duration = Duration::from_millis(1);
/// Idle ticks before the ticker parks itself.
const IDLE_TICKS_BEFORE_PARK: u32 = 200;

/// One wasmtime engine plus its ticker. Cloning shares both.
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) engine: Engine,
    ticker: Arc<Ticker>,
}

/// Calls running, counted per thread group so that threads calling at once do not write to
/// one shared counter (a cache line bouncing between cores on every call); the ticker sums.
const SHARDS: usize = 16;

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

impl EngineHandle {
    fn new(fuel: bool) -> Self {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(fuel);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // Lets Cranelift inline the fused ABI functions into plug-in loops (see fuse.rs).
        config.compiler_inlining(wasmtime::Inlining::Yes);
        let engine = Engine::new(&config).expect("the engine configuration is valid");
        let handle = EngineHandle {
            engine,
            ticker: Arc::new(Ticker {
                running: std::array::from_fn(|_| Shard(AtomicUsize::new(0))),
                parked: AtomicBool::new(false),
                thread: OnceLock::new(),
            }),
        };
        handle.spawn_ticker();
        handle
    }

    /// The process-wide engine, with or without fuel metering (fuel costs speed, so plug-ins
    /// that do not ask for it run on an engine without it).
    pub fn shared(fuel: bool) -> EngineHandle {
        static PLAIN: OnceLock<EngineHandle> = OnceLock::new();
        static FUELED: OnceLock<EngineHandle> = OnceLock::new();
        let cell = if fuel { &FUELED } else { &PLAIN };
        cell.get_or_init(|| EngineHandle::new(fuel)).clone()
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

//! Shared wasmtime engines and the epoch ticker that drives timeouts and cancellation.

use std::sync::atomic::{AtomicUsize, Ordering};
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

struct Ticker {
    active: AtomicUsize,
    thread: OnceLock<Thread>,
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
                active: AtomicUsize::new(0),
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
                    if t.active.load(Ordering::Acquire) == 0 {
                        idle += 1;
                        if idle >= IDLE_TICKS_BEFORE_PARK {
                            idle = 0;
                            drop(t);
                            std::thread::park();
                            continue;
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
    pub(crate) fn call_guard(&self) -> CallGuard {
        if self.ticker.active.fetch_add(1, Ordering::AcqRel) == 0 {
            if let Some(t) = self.ticker.thread.get() {
                t.unpark();
            }
        }
        CallGuard {
            ticker: self.ticker.clone(),
        }
    }

    /// Makes running code check its deadline and cancel flag at once.
    pub(crate) fn interrupt_now(&self) {
        self.engine.increment_epoch();
    }
}

pub(crate) struct CallGuard {
    ticker: Arc<Ticker>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.ticker.active.fetch_sub(1, Ordering::AcqRel);
    }
}

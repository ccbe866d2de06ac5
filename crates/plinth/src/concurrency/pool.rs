//! Calls from many threads on one plug-in without a caller managing instances: a pool of
//! instances of one compiled plug-in that grows on demand up to a bound.
//!
//! Each instance sits in a slot of its own with its own lock. A thread remembers the slot it
//! used last and tries that one first, so threads that call over and over each keep to their
//! own instance and touch no memory that another thread writes: calls on two threads run
//! side by side without contending for a shared lock or counter.

use std::cell::Cell;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, TryLockError};

use super::guard::Holding;
use super::shared::name_reentrant;
use crate::{CompiledPlugin, Plugin, Result, ToBytes};

/// The largest bound a pool takes; larger ones are lowered to it. Each possible slot costs
/// 16 bytes up front, so a pool of the maximum size costs 1 MiB before any instance exists.
pub const MAX_POOL_INSTANCES: usize = 65_536;

/// A pool of instances of one [`CompiledPlugin`]. Cheap to clone; every clone shares the pool.
///
/// A call takes a free instance, or makes a new one while the pool holds fewer than its bound,
/// or else waits until one is free. It never waits while an instance is free. Each instance
/// has its own memory and vars (a var set by a call is seen only by later calls that happen to
/// get the same instance); all share the compiled plug-in's config. An instance costs its
/// linear memory plus a few KiB of bookkeeping, and stays in the pool once made.
#[derive(Clone)]
pub struct PluginPool {
    inner: Arc<Inner>,
}

struct Inner {
    compiled: CompiledPlugin,
    /// One per possible instance; a slot's box is made when the pool first grows into it.
    slots: Box<[OnceLock<Box<Slot>>]>,
    /// Slots handed out so far (at most `slots.len()`).
    claimed: AtomicUsize,
    /// Instances made and alive.
    live: AtomicUsize,
    /// Callers waiting for a free instance; a caller that frees one wakes them only if any.
    waiting: AtomicUsize,
    wait_lock: Mutex<()>,
    freed: Condvar,
}

/// An instance's place. `None` until made, or after making it failed; whoever holds the lock
/// of an empty slot makes the instance.
// Aligned to keep two slots out of one cache line, where their locks would contend.
#[repr(align(128))]
struct Slot(Mutex<Option<Plugin>>);

thread_local! {
    /// The slot this thread used last, tried first next time.
    static LAST_SLOT: Cell<usize> = const { Cell::new(0) };
}

impl PluginPool {
    /// A pool of at most `max_instances` instances (at least 1, at most
    /// [`MAX_POOL_INSTANCES`]); none are made until needed.
    pub fn new(compiled: CompiledPlugin, max_instances: usize) -> Self {
        let max = max_instances.clamp(1, MAX_POOL_INSTANCES);
        PluginPool {
            inner: Arc::new(Inner {
                compiled,
                slots: (0..max).map(|_| OnceLock::new()).collect(),
                claimed: AtomicUsize::new(0),
                live: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                wait_lock: Mutex::new(()),
                freed: Condvar::new(),
            }),
        }
    }

    /// Calls `function` on a free instance and returns its output.
    pub fn call<'a, I: ToBytes<'a>>(&self, function: &str, input: I) -> Result<Vec<u8>> {
        self.with(|p| p.call::<I, &[u8]>(function, input).map(<[u8]>::to_vec))
            .map_err(|e| name_reentrant(e, function))
    }

    /// Runs `f` with an instance of its own. A host function that calls back into the same
    /// pool gets [`Error::Reentrant`](crate::Error::Reentrant): with every instance busy it would wait for ever.
    pub fn with<R>(&self, f: impl FnOnce(&mut Plugin) -> Result<R>) -> Result<R> {
        let key = Arc::as_ptr(&self.inner) as usize;
        Holding::check(key)?;
        let mut lent = self.take();
        let slot = lent.guard.as_mut().expect("a lent slot is held");
        let plugin = match &mut **slot {
            Some(plugin) => plugin,
            empty => {
                let plugin = self.inner.compiled.instantiate()?;
                self.inner.live.fetch_add(1, Ordering::Relaxed);
                empty.insert(plugin)
            }
        };
        let _holding = Holding::enter(key);
        f(plugin)
    }

    /// How many instances the pool holds now.
    pub fn instances(&self) -> usize {
        self.inner.live.load(Ordering::Relaxed)
    }

    /// The bound on instances.
    pub fn max_instances(&self) -> usize {
        self.inner.slots.len()
    }

    /// The compiled plug-in the pool makes instances of.
    pub fn compiled(&self) -> &CompiledPlugin {
        &self.inner.compiled
    }

    /// A slot of this caller's own: a free one, else a new one, else the first one freed.
    fn take(&self) -> Lent<'_> {
        if let Some(lent) = self.try_take() {
            return lent;
        }
        let inner = &*self.inner;
        let mut waiting = inner.wait_lock.lock().unwrap_or_else(|p| p.into_inner());
        inner.waiting.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `Lent::drop`: either that caller sees us waiting and wakes
        // us, or we see its slot free when we look again.
        fence(Ordering::SeqCst);
        loop {
            if let Some(lent) = self.try_take() {
                inner.waiting.fetch_sub(1, Ordering::Relaxed);
                return lent;
            }
            waiting = inner.freed.wait(waiting).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Slot `i`, if it is free, lent to the caller and remembered as this thread's slot.
    fn lend<'a>(&'a self, i: usize, slot: &'a Slot) -> Option<Lent<'a>> {
        let guard = match slot.0.try_lock() {
            Ok(g) => g,
            // A panic during a call on this instance: it may have stopped anywhere (between
            // setting a call up and cleaning up after it), so the instance is dropped and the
            // slot gets a fresh one.
            Err(TryLockError::Poisoned(p)) => {
                let mut g = p.into_inner();
                slot.0.clear_poison();
                if g.take().is_some() {
                    self.inner.live.fetch_sub(1, Ordering::Relaxed);
                }
                g
            }
            Err(TryLockError::WouldBlock) => return None,
        };
        LAST_SLOT.with(|s| s.set(i));
        Some(Lent {
            pool: self,
            guard: Some(guard),
        })
    }

    fn try_take(&self) -> Option<Lent<'_>> {
        let inner = &*self.inner;
        let claimed = inner.claimed.load(Ordering::Acquire);
        let last = LAST_SLOT.with(Cell::get);
        let start = if last < claimed { last } else { 0 };
        for i in (start..claimed).chain(0..start) {
            let Some(slot) = inner.slots[i].get() else {
                continue; // claimed a moment ago, not set up yet
            };
            if let Some(lent) = self.lend(i, slot) {
                return Some(lent);
            }
        }
        // Every slot is busy: grow, if the bound allows.
        let mut n = claimed;
        while n < inner.slots.len() {
            match inner
                .claimed
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let slot = inner.slots[n].get_or_init(|| Box::new(Slot(Mutex::new(None))));
                    // Another caller may have found the new slot first and be filling it.
                    return self.lend(n, slot).or_else(|| self.try_take());
                }
                Err(now) => n = now,
            }
        }
        None
    }
}

/// An instance lent to one call; back to the pool when dropped.
struct Lent<'a> {
    pool: &'a PluginPool,
    guard: Option<MutexGuard<'a, Option<Plugin>>>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let inner = &*self.pool.inner;
        // Pairs with the fence in `PluginPool::take`.
        fence(Ordering::SeqCst);
        if inner.waiting.load(Ordering::Relaxed) > 0 {
            let _lock = inner.wait_lock.lock().unwrap_or_else(|p| p.into_inner());
            inner.freed.notify_one();
        }
    }
}

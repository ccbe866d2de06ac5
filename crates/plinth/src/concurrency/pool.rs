//! Calls from many threads on one plug-in without a caller managing instances: a pool of
//! instances of one compiled plug-in that grows on demand up to a bound.
//!
//! Each instance sits in a slot of its own with its own lock. A thread remembers the slot it
//! used last and tries that one first, so threads that call over and over each keep to their
//! own instance and touch no memory that another thread writes: calls on two threads run
//! side by side without contending for a shared lock or counter.
//!
//! An async call ([`PluginPool::call_async`]) cannot hold a slot's lock across its awaits (a
//! lock guard is tied to its thread), so it marks the slot lent out, releases the lock, and
//! moves the instance back when the call ends or its future is dropped. Async callers wait
//! for a free slot on a [`Notify`] instead of the condition variable.

use std::cell::Cell;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, TryLockError};

use tokio::sync::Notify;

use super::guard::Holding;
use super::shared::name_reentrant;
use crate::{CompiledPlugin, FromBytesOwned, Plugin, Result, ToBytes};

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
    /// Wakes async callers waiting for a free instance.
    freed_async: Notify,
    /// Slots that async calls gave back, for async callers to try first.
    given_back: Mutex<Vec<usize>>,
}

/// An instance's place. `None` until made, or after making it failed; whoever holds the lock
/// of an empty slot makes the instance.
// Aligned to keep two slots out of one cache line, where their locks would contend.
#[repr(align(128))]
struct Slot {
    plugin: Mutex<Option<Plugin>>,
    /// The instance is lent to an async call, outside the lock; the slot is busy until it is
    /// moved back. Read and written only under the lock.
    out: AtomicBool,
}

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
                freed_async: Notify::new(),
                given_back: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Calls `function` on a free instance and returns its output.
    pub fn call<'a, I: ToBytes<'a>>(&self, function: &str, input: I) -> Result<Vec<u8>> {
        self.with(|p| p.call::<I, &[u8]>(function, input).map(<[u8]>::to_vec))
            .map_err(|e| name_reentrant(e, function))
    }

    /// Calls `function` on a free instance and awaits it (see
    /// [`Plugin::call_async`]): waiting for a free instance holds no thread either. Dropping
    /// the future cancels the call; the instance goes back to the pool and is replaced at its
    /// next call. A host function that calls back into the same pool waits like any other
    /// caller, so with every instance busy it waits until the call's `timeout_ms`.
    pub async fn call_async<O: FromBytesOwned>(
        &self,
        function: &str,
        input: impl AsRef<[u8]>,
    ) -> Result<O> {
        let mut lent = self.take_async().await;
        let plugin = match lent.plugin.as_mut() {
            Some(plugin) => plugin,
            None => {
                let plugin = self.inner.compiled.instantiate()?;
                self.inner.live.fetch_add(1, Ordering::Relaxed);
                lent.plugin.insert(plugin)
            }
        };
        plugin.call_async(function, input).await
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

    /// Like [`take`](Self::take), awaiting instead of blocking; the slot is lent out, its
    /// lock released.
    async fn take_async(&self) -> LentOut<'_> {
        if let Some(out) = self.try_take_out() {
            return out;
        }
        let inner = &*self.inner;
        loop {
            let notified = inner.freed_async.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before looking, so that a slot freed in between wakes this caller.
            notified.as_mut().enable();
            inner.waiting.fetch_add(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if let Some(out) = self.try_take_out() {
                inner.waiting.fetch_sub(1, Ordering::Relaxed);
                return out;
            }
            notified.await;
            inner.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A slot for an async call, lent out at once (a lock guard must not be held across an
    /// await): one an async call gave back, else a new one, else any free one. Thousands of
    /// async calls in flight thus do not each scan every busy slot, as `try_take` would.
    fn try_take_out(&self) -> Option<LentOut<'_>> {
        let inner = &*self.inner;
        loop {
            let given_back = inner
                .given_back
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let Some(i) = given_back else { break };
            // Taken since by a caller that scanned: look at the next one.
            if let Some(lent) = inner.slots[i].get().and_then(|slot| self.lend(i, slot)) {
                return Some(lent.lend_out());
            }
        }
        self.grow().or_else(|| self.try_take()).map(Lent::lend_out)
    }

    /// Slot `i`, if it is free, lent to the caller and remembered as this thread's slot.
    fn lend<'a>(&'a self, i: usize, slot: &'a Slot) -> Option<Lent<'a>> {
        let guard = match slot.plugin.try_lock() {
            Ok(g) if slot.out.load(Ordering::Relaxed) => {
                drop(g);
                return None;
            }
            Ok(g) => g,
            // A panic during a call on this instance: it may have stopped anywhere (between
            // setting a call up and cleaning up after it), so the instance is dropped and the
            // slot gets a fresh one.
            Err(TryLockError::Poisoned(p)) => {
                let mut g = p.into_inner();
                slot.plugin.clear_poison();
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
            index: i,
            slot,
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
        self.grow()
    }

    /// A new slot, lent to the caller, if the bound allows one.
    fn grow(&self) -> Option<Lent<'_>> {
        let inner = &*self.inner;
        let mut n = inner.claimed.load(Ordering::Acquire);
        while n < inner.slots.len() {
            match inner
                .claimed
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let slot = inner.slots[n].get_or_init(|| {
                        Box::new(Slot {
                            plugin: Mutex::new(None),
                            out: AtomicBool::new(false),
                        })
                    });
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
    index: usize,
    slot: &'a Slot,
    guard: Option<MutexGuard<'a, Option<Plugin>>>,
}

impl<'a> Lent<'a> {
    /// The slot's instance, moved out of the lock for an async call; the slot stays busy.
    fn lend_out(mut self) -> LentOut<'a> {
        let mut guard = self.guard.take().expect("a lent slot is held");
        self.slot.out.store(true, Ordering::Relaxed);
        let plugin = guard.take();
        drop(guard);
        // `self` drops here without waking anyone: the slot is still busy.
        LentOut {
            pool: self.pool,
            index: self.index,
            slot: self.slot,
            plugin,
        }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            drop(guard);
            self.pool.wake_one();
        }
    }
}

/// An instance lent to one async call, outside its slot's lock; moved back when dropped.
struct LentOut<'a> {
    pool: &'a PluginPool,
    index: usize,
    slot: &'a Slot,
    /// `None` until the call makes the slot's first instance.
    plugin: Option<Plugin>,
}

impl Drop for LentOut<'_> {
    fn drop(&mut self) {
        // Brief: whoever holds the lock sees `out` and lets go at once.
        let mut guard = self.slot.plugin.lock().unwrap_or_else(|p| p.into_inner());
        *guard = self.plugin.take();
        self.slot.out.store(false, Ordering::Relaxed);
        drop(guard);
        let inner = &*self.pool.inner;
        let mut given_back = inner.given_back.lock().unwrap_or_else(|p| p.into_inner());
        // An index can be listed twice (taken meanwhile by a caller that scanned, then given
        // back again); the list is dropped rather than let grow past the pool's size.
        if given_back.len() >= inner.slots.len() {
            given_back.clear();
        }
        given_back.push(self.index);
        drop(given_back);
        self.pool.wake_one();
    }
}

impl PluginPool {
    /// Tells one waiting caller, if any, that a slot is free.
    fn wake_one(&self) {
        let inner = &*self.inner;
        // Pairs with the fences in `take` and `take_async`.
        fence(Ordering::SeqCst);
        if inner.waiting.load(Ordering::Relaxed) > 0 {
            let _lock = inner.wait_lock.lock().unwrap_or_else(|p| p.into_inner());
            inner.freed.notify_one();
            inner.freed_async.notify_one();
        }
    }
}

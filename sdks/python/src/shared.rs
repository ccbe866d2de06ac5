//! [`Shared`]: one plug-in instance that Python threads (sync calls) and asyncio tasks (async
//! calls) take turns on. `plinth::SharedPlugin` lends its instance only to a closure on one
//! thread, while an async call must own it across awaits, so turns are a one-permit, FIFO
//! tokio semaphore: a sync caller waits for the permit on its thread (without the GIL), an
//! async caller awaits it, and the instance moves out of its slot for the async call and back
//! when the call ends or its future is dropped.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use plinth::{CancelHandle, CompiledPlugin, Error, Plugin, Result};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};

thread_local! {
    /// The plug-ins (by key) whose sync call runs on this thread now.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

#[derive(Clone)]
pub(crate) struct Shared {
    inner: Arc<Inner>,
}

struct Inner {
    /// The instance; touched only by the holder of `turn`'s permit (or by `close`).
    plugin: Mutex<Option<Plugin>>,
    turn: Arc<Semaphore>,
    closed: AtomicBool,
    /// The plug-in has async host functions: only `call_async` can call it, so a sync caller
    /// never waits for a turn (it could be the event loop the async call needs).
    has_async: bool,
    compiled: CompiledPlugin,
    cancel: CancelHandle,
}

impl Shared {
    pub(crate) fn new(plugin: Plugin, has_async: bool) -> Self {
        Shared {
            inner: Arc::new(Inner {
                compiled: plugin.compiled().clone(),
                cancel: plugin.cancel_handle(),
                plugin: Mutex::new(Some(plugin)),
                turn: Arc::new(Semaphore::new(1)),
                closed: AtomicBool::new(false),
                has_async,
            }),
        }
    }

    /// Identifies the plug-in for the re-entrancy checks.
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    pub(crate) fn has_async(&self) -> bool {
        self.inner.has_async
    }

    pub(crate) fn compiled(&self) -> &CompiledPlugin {
        &self.inner.compiled
    }

    pub(crate) fn cancel_handle(&self) -> CancelHandle {
        self.inner.cancel.clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Runs `f` with the plug-in on this thread once it is this caller's turn. A host function
    /// of this plug-in calling back gets `Error::Reentrant` (its turn would never come); for a
    /// plug-in with async host functions a busy plug-in is `Error::Busy` at once.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Plugin) -> Result<R>) -> Result<R> {
        let key = self.key();
        if HELD.with(|h| h.borrow().contains(&key)) {
            return Err(Error::Reentrant {
                function: String::new(),
            });
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let _permit = if self.inner.has_async {
            match self.inner.turn.try_acquire() {
                Ok(permit) => permit,
                Err(TryAcquireError::NoPermits) => return Err(Error::Busy),
                Err(TryAcquireError::Closed) => return Err(Error::Closed),
            }
        } else {
            futures_executor::block_on(self.inner.turn.acquire()).map_err(|_| Error::Closed)?
        };
        let mut guard = self.inner.plugin.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_closed() {
            guard.take();
            return Err(Error::Closed);
        }
        let plugin = guard.as_mut().ok_or(Error::Closed)?;
        // Host functions of this call belong to no async call.
        let result = holding(key, || crate::aio::with_call(None, || f(plugin)));
        if self.is_closed() {
            guard.take();
        }
        result
    }

    /// Takes a place in the queue for a turn now, so that async calls run in the order they
    /// were made (a future joins the queue only when first polled, on some worker).
    pub(crate) fn queue(&self) -> Turn {
        let mut acquire: Acquire = Box::pin(self.inner.turn.clone().acquire_owned());
        match acquire
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(permit) => Turn::Now(permit),
            // Polled again, with the task's waker, in `call_async`.
            Poll::Pending => Turn::Queued(acquire),
        }
    }

    /// Calls `function` with `input` through `Plugin::call_async` at this caller's `turn`.
    /// Dropping the future gives the instance back (the runtime replaces it at the next call,
    /// vars kept).
    pub(crate) async fn call_async(
        self,
        turn: Turn,
        function: String,
        input: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let inner = self.inner;
        let permit = match turn {
            Turn::Now(permit) => permit,
            Turn::Queued(acquire) => acquire.await,
        };
        let _permit = permit.map_err(|_| Error::Closed)?;
        let plugin = {
            let mut guard = inner.plugin.lock().unwrap_or_else(|p| p.into_inner());
            if inner.closed.load(Ordering::SeqCst) {
                guard.take();
                return Err(Error::Closed);
            }
            guard.take().ok_or(Error::Closed)?
        };
        // Declared after the permit, so dropped (the instance put back) before it is released.
        let mut lent = Lent {
            plugin: Some(plugin),
            home: &inner,
        };
        let plugin = lent.plugin.as_mut().expect("set above");
        plugin.call_async::<Vec<u8>>(&function, &input).await
    }

    /// Closes the plug-in without waiting: a call that holds it drops it when it ends; later
    /// uses fail with `Error::Closed`.
    pub(crate) fn close(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Ok(_permit) = self.inner.turn.try_acquire() {
            self.inner
                .plugin
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
        // Callers waiting for a turn fail with Closed instead.
        self.inner.turn.close();
    }
}

type Acquire =
    Pin<Box<dyn Future<Output = std::result::Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// A place in a plug-in's queue of calls.
pub(crate) enum Turn {
    Now(std::result::Result<OwnedSemaphorePermit, AcquireError>),
    Queued(Acquire),
}

/// Runs `f` with the plug-in `key` (0: none) held by this thread: a call back into it from a
/// host function is refused instead of waiting for ever.
pub(crate) fn holding<R>(key: usize, f: impl FnOnce() -> R) -> R {
    if key == 0 {
        return f();
    }
    HELD.with(|h| h.borrow_mut().push(key));
    let _held = Unhold(key);
    f()
}

struct Unhold(usize);

impl Drop for Unhold {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|k| *k == self.0) {
                h.remove(i);
            }
        });
    }
}

/// The instance while an async call has it out of its slot.
struct Lent<'a> {
    plugin: Option<Plugin>,
    home: &'a Inner,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let plugin = self.plugin.take();
        if !self.home.closed.load(Ordering::SeqCst) {
            *self.home.plugin.lock().unwrap_or_else(|p| p.into_inner()) = plugin;
        }
    }
}

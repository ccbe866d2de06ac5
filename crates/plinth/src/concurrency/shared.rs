//! [`SharedPlugin`]: one plug-in instance that many threads hold and call in turn.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use super::guard::Holding;
use crate::{CancelHandle, Error, Plugin, Result, ToBytes};

/// A plug-in that many threads may hold and call. Cheap to clone; clones share the instance.
///
/// Calls take turns. A call from a host function back into the same plug-in fails with
/// [`Error::Reentrant`] instead of deadlocking; a call after [`close`](Self::close) fails with
/// [`Error::Closed`].
#[derive(Clone)]
pub struct SharedPlugin {
    inner: Arc<Inner>,
    // Kept outside the lock so that a running call can be cancelled.
    cancel: CancelHandle,
}

struct Inner {
    plugin: Mutex<Option<Plugin>>,
    closed: AtomicBool,
}

impl SharedPlugin {
    /// Shares `plugin`.
    pub fn new(plugin: Plugin) -> Self {
        SharedPlugin {
            cancel: plugin.cancel_handle(),
            inner: Arc::new(Inner {
                plugin: Mutex::new(Some(plugin)),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Calls `function` and hands back its output as owned bytes.
    pub fn call<'a, I: ToBytes<'a>>(&self, function: &str, input: I) -> Result<Vec<u8>> {
        self.with(|p| p.call::<I, &[u8]>(function, input).map(<[u8]>::to_vec))
            .map_err(|e| name_reentrant(e, function))
    }

    /// Runs `f` with the plug-in, waiting while another thread uses it.
    pub fn with<R>(&self, f: impl FnOnce(&mut Plugin) -> Result<R>) -> Result<R> {
        Holding::check(self.key())?;
        let guard = self.inner.plugin.lock().unwrap_or_else(|p| p.into_inner());
        self.run(guard, f)
    }

    /// Runs `f` with the plug-in if no other thread is using it; else fails at once with
    /// [`Error::Busy`]. For callers that must not block, such as a JavaScript event loop.
    pub fn try_with<R>(&self, f: impl FnOnce(&mut Plugin) -> Result<R>) -> Result<R> {
        Holding::check(self.key())?;
        let guard = match self.inner.plugin.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(Error::Busy),
        };
        self.run(guard, f)
    }

    /// Closes the plug-in: later calls fail with [`Error::Closed`]. Never waits: a call that is
    /// running finishes and the instance is dropped after it. Returns whether this call closed
    /// it (false if it was closed already).
    pub fn close(&self) -> bool {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return false;
        }
        if let Ok(mut guard) = self.inner.plugin.try_lock() {
            guard.take();
        }
        true
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// A handle that cancels the running call from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    fn run<R>(
        &self,
        mut guard: MutexGuard<'_, Option<Plugin>>,
        f: impl FnOnce(&mut Plugin) -> Result<R>,
    ) -> Result<R> {
        if self.is_closed() {
            // Closed while this caller waited, or by a call that held the lock.
            guard.take();
            return Err(Error::Closed);
        }
        let plugin = guard.as_mut().ok_or(Error::Closed)?;
        let _holding = Holding::enter(self.key());
        let result = f(plugin);
        if self.is_closed() {
            guard.take();
        }
        result
    }
}

/// Names the function in a re-entrancy error, which the guard raises before knowing it.
pub(crate) fn name_reentrant(e: Error, function: &str) -> Error {
    match e {
        Error::Reentrant { function: f } if f.is_empty() => Error::Reentrant {
            function: function.to_string(),
        },
        e => e,
    }
}

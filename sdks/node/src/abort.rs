//! A call's `AbortSignal` (`{ signal }` in the call options): aborting it cancels that one call.
//!
//! A call of a plug-in with async host functions is a future, which is dropped when the signal
//! fires (the core then replaces the instance at the next call); one that still waits its turn
//! never runs. A call on a libuv worker thread is cancelled through the core's `CancelHandle`
//! of the instance that runs it, only while it runs.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use napi::bindgen_prelude::{
    FnArgs, Function, FunctionRef, JsObjectValue, Object, ObjectRef, Unknown,
};
use napi::Env;
use plinth::ErrorKind;

use crate::error::Failure;

/// The abort state of one call, shared by the signal's listener and the call.
#[derive(Default)]
pub(crate) struct Abort {
    aborted: AtomicBool,
    notify: tokio::sync::Notify,
    /// The instance running the call (worker-thread calls), while it runs.
    running: Mutex<Option<plinth::CancelHandle>>,
}

impl Abort {
    fn fire(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        if let Some(cancel) = &*self.running.lock().unwrap_or_else(|p| p.into_inner()) {
            cancel.cancel();
        }
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    /// The failure of an aborted call.
    pub fn failure(function: &str) -> Failure {
        Failure::new(
            ErrorKind::Cancelled,
            format!("`{function}` was cancelled: its AbortSignal was aborted"),
        )
    }

    /// Marks the call as running on the instance of `cancel`; false if it was aborted already.
    pub fn start(&self, cancel: plinth::CancelHandle) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_aborted() {
            return false;
        }
        *running = Some(cancel);
        true
    }

    pub fn stop(&self) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    async fn aborted(&self) {
        loop {
            let notified = self.notify.notified();
            let mut notified = pin!(notified);
            // Registered before the check, so that a fire in between is not missed.
            notified.as_mut().enable();
            if self.is_aborted() {
                return;
            }
            notified.await;
        }
    }

    /// Runs `call` until it ends or the signal fires; then `call` is dropped (cancelled).
    pub async fn race<T>(
        abort: Option<Arc<Abort>>,
        function: &str,
        call: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let Some(abort) = abort else {
            return call.await;
        };
        let mut call = pin!(call);
        let mut aborted = pin!(abort.aborted());
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = call.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            match aborted.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Abort::failure(function))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// A listener added to a signal, removed when the call ends (on the JavaScript thread), so that
/// a long-lived signal does not collect one listener per call. Dropped without `remove` (a call
/// whose environment went away), the signal's reference is leaked rather than released off
/// its thread.
pub(crate) struct Listening {
    signal: ObjectRef<false>,
    listener: FunctionRef<Unknown<'static>, ()>,
}

type ListenerMethod<'a> =
    Function<'a, FnArgs<(&'static str, Function<'a, Unknown<'static>, ()>)>, Unknown<'a>>;

/// Listens to `signal` for this call. An already aborted signal aborts at once.
pub(crate) fn listen(
    env: &Env,
    signal: Object<'_>,
) -> napi::Result<(Arc<Abort>, Option<Listening>)> {
    let abort = Arc::new(Abort::default());
    if signal.get_named_property::<bool>("aborted")? {
        abort.fire();
        return Ok((abort, None));
    }
    let fired = abort.clone();
    let listener =
        env.create_function_from_closure::<Unknown<'static>, (), _>("onabort", move |_| {
            fired.fire();
            Ok(())
        })?;
    let add: ListenerMethod = signal.get_named_property("addEventListener")?;
    add.apply(signal, FnArgs::from(("abort", listener)))?;
    Ok((
        abort,
        Some(Listening {
            signal: signal.create_ref::<false>()?,
            listener: listener.create_ref()?,
        }),
    ))
}

impl Listening {
    /// Removes the listener. Errors are ignored: the call's outcome matters more.
    pub fn remove(self, env: &Env) {
        let Listening { signal, listener } = self;
        let remove = || -> napi::Result<()> {
            let target = signal.get_value(env)?;
            let remove: ListenerMethod = target.get_named_property("removeEventListener")?;
            remove.apply(target, FnArgs::from(("abort", listener.borrow_back(env)?)))?;
            Ok(())
        };
        let _ = remove();
        let _ = signal.unref(env);
    }
}

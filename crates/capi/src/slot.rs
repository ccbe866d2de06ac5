//! Where an `ExtismPlugin` keeps its instance: one lock that synchronous calls wait for on
//! their thread and async calls (`plinth_plugin_call_async`) queue for without holding one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use runtime::{Error, ErrorKind, Plugin};
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Why the plug-in could not be had: a message and its kind.
pub(crate) type Refused = (String, ErrorKind);

/// A plug-in instance shared by the threads and async calls that use it, in turn.
pub(crate) struct Slot {
    /// Fair (first come, first served), and awaitable: async calls queue on it as tasks.
    plugin: Arc<Mutex<Plugin>>,
    /// Async calls queued or running.
    async_calls: AtomicUsize,
    /// Async calls not started yet, in the order they were made, and whether a task is
    /// running them. One task per plug-in runs them in turn: tasks of their own would reach
    /// the lock in whatever order the runtime first polls them.
    queue: std::sync::Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    running: bool,
}

/// What is left to do once a call is over: report it (`done`).
pub(crate) type Finish = Box<dyn FnOnce() + Send>;

type BoxFuture = Pin<Box<dyn Future<Output = Finish> + Send>>;

/// An async call waiting for the plug-in: given it (and its place in the queue, to give up
/// when the call is over), it makes the call's future, which releases both before it ends.
pub(crate) type Job = Box<dyn FnOnce(OwnedMutexGuard<Plugin>, Queued) -> BoxFuture + Send>;

thread_local! {
    /// The slots (by address) this thread holds now, to refuse re-entrant calls.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks this thread as holding a slot until dropped.
struct Holding(usize);

impl Holding {
    fn enter(key: usize) -> Holding {
        HELD.with(|h| h.borrow_mut().push(key));
        Holding(key)
    }

    fn held(key: usize) -> bool {
        HELD.with(|h| h.borrow().contains(&key))
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|k| *k == self.0) {
                h.remove(i);
            }
        });
    }
}

impl Slot {
    pub(crate) fn new(plugin: Plugin) -> Arc<Slot> {
        Arc::new(Slot {
            plugin: Arc::new(Mutex::new(plugin)),
            async_calls: AtomicUsize::new(0),
            queue: Default::default(),
        })
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.plugin) as usize
    }

    /// Runs `f` with the plug-in on this thread, waiting for other synchronous users. Refused
    /// at once while an async call is queued or running: waiting could deadlock a host whose
    /// async callbacks need the very thread that would wait (Ruby's GVL, an event loop), and
    /// from a host function of this plug-in (re-entrant) it would wait for ever.
    pub(crate) fn with<R>(
        &self,
        function: &str,
        f: impl FnOnce(&mut Plugin) -> R,
    ) -> Result<R, Refused> {
        let key = self.key();
        if Holding::held(key) {
            let e = Error::Reentrant {
                function: function.to_string(),
            };
            return Err((e.to_string(), e.kind()));
        }
        if self.async_calls.load(Ordering::SeqCst) > 0 {
            return Err(busy());
        }
        let mut guard = match self.plugin.try_lock() {
            Ok(guard) => guard,
            // Another synchronous caller; futures' executor parks this thread, where tokio's
            // `blocking_lock` would panic on a runtime thread (a host function's callback).
            Err(_) => futures_executor::block_on(self.plugin.lock()),
        };
        let _holding = Holding::enter(key);
        Ok(f(&mut guard))
    }

    /// Queues an async call, to run on `rt` after the calls queued before it. It counts as
    /// queued (synchronous users are refused) until it drops its `Queued`.
    pub(crate) fn submit(self: &Arc<Self>, rt: &Runtime, job: Job) {
        self.async_calls.fetch_add(1, Ordering::SeqCst);
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.jobs.push_back(job);
        if !q.running {
            q.running = true;
            rt.spawn(self.clone().drain());
        }
    }

    /// Runs the queued calls one after the other until there are none.
    async fn drain(self: Arc<Self>) {
        loop {
            let job = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                match q.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        q.running = false;
                        return;
                    }
                }
            };
            let plugin = self.plugin.clone().lock_owned().await;
            let call = job(plugin, Queued(self.clone()));
            // A panic ends this call only (its future, dropped, reports it); the queue goes on.
            let finish = CatchUnwind(call).await;
            let more = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                q.running = !q.jobs.is_empty();
                q.running
            };
            if !more {
                // Let go of the plug-in before reporting, so that a plug-in freed before its
                // last call ended is gone (its host functions' user data freed) by then.
                drop(self);
                if let Ok(finish) = finish {
                    finish();
                }
                return;
            }
            if let Ok(finish) = finish {
                finish();
            }
        }
    }
}

/// A future whose panic while polling ends it instead of unwinding into the runtime.
struct CatchUnwind(BoxFuture);

impl Future for CatchUnwind {
    type Output = Result<Finish, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(finish)) => Poll::Ready(Ok(finish)),
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// An async call's place in the queue of its slot.
pub(crate) struct Queued(Arc<Slot>);

impl Queued {
    /// `fut` with this thread marked as holding the slot while it is polled, so that a host
    /// function calling back into the plug-in is refused instead of deadlocking.
    pub(crate) fn holding<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> {
        HeldWhilePolled {
            key: self.0.key(),
            fut: Box::pin(fut),
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.async_calls.fetch_sub(1, Ordering::SeqCst);
    }
}

struct HeldWhilePolled<F> {
    key: usize,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for HeldWhilePolled<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _holding = Holding::enter(self.key);
        self.fut.as_mut().poll(cx)
    }
}

fn busy() -> Refused {
    (
        "the plug-in has an async call (plinth_plugin_call_async) queued or running; call it \
         again after that call's done callback, or use another plug-in"
            .to_string(),
        ErrorKind::Busy,
    )
}

//! A timer for the deadlines of async calls that works on any executor: one thread wakes the
//! futures whose time has come, so that a host function awaiting past `timeout_ms` is
//! stopped there instead of when it chooses to return.
//!
//! - [`Sleep`]: a future that is ready at an instant.
//! - [`race`]: the first of two futures to be ready.
//! - [`until_stopped`]: a future raced against the call's deadline and cancel.
//! - [`Cancelled`]: a future ready when the plug-in's call is cancelled
//!   ([`wake_cancelled`] wakes it).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::error::Interrupt;

/// Wakers to wake, each at its instant.
struct Timer {
    due: Mutex<Vec<(Instant, Waker)>>,
    changed: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            due: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("plinth-timer".into())
            .spawn(move || timer.run())
            .expect("cannot start the timer thread");
        timer
    })
}

impl Timer {
    fn run(&self) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            let (ready, waiting): (Vec<_>, Vec<_>) = due.drain(..).partition(|(at, _)| *at <= now);
            *due = waiting;
            for (_, waker) in ready {
                waker.wake();
            }
            due = match due.iter().map(|(at, _)| *at).min() {
                Some(next) => {
                    let wait = next.saturating_duration_since(Instant::now());
                    self.changed
                        .wait_timeout(due, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.changed.wait(due).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    fn wake_at(&self, at: Instant, waker: Waker) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        // One entry per waker: a future polled again replaces its entry.
        due.retain(|(_, w)| !w.will_wake(&waker));
        due.push((at, waker));
        self.changed.notify_one();
    }
}

/// A future ready at `at`.
pub(crate) struct Sleep {
    at: Instant,
}

impl Sleep {
    pub(crate) fn until(at: Instant) -> Sleep {
        Sleep { at }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        timer().wake_at(self.at, cx.waker().clone());
        Poll::Pending
    }
}

/// Which of [`race`]'s futures finished first.
pub(crate) enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls `a`, then `b`, until one is ready; the other is dropped with the race.
pub(crate) async fn race<A, B>(mut a: A, mut b: B) -> Either<A::Output, B::Output>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = Pin::new(&mut a).poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = Pin::new(&mut b).poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

/// Wakers of async host functions waiting on a plug-in, by its cancel flag's address, so that
/// a cancel stops a host function that awaits instead of waiting for it to return. Keyed so
/// that thousands of calls awaiting at once each touch only their own entry.
static CANCEL_WAITERS: Mutex<Option<HashMap<usize, Vec<Waker>>>> = Mutex::new(None);

fn cancel_waiters() -> MutexGuard<'static, Option<HashMap<usize, Vec<Waker>>>> {
    CANCEL_WAITERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wakes the host functions awaiting on behalf of the plug-in whose cancel flag is `flag`
/// (called by `CancelHandle::cancel` after it sets the flag).
pub(crate) fn wake_cancelled(flag: &Arc<AtomicBool>) {
    let key = Arc::as_ptr(flag) as usize;
    let woken = cancel_waiters().as_mut().and_then(|w| w.remove(&key));
    for waker in woken.into_iter().flatten() {
        waker.wake();
    }
}

/// Awaits `work` unless the call's `deadline` passes or the call is cancelled first, in which
/// case `work` is dropped where it waits.
pub(crate) async fn until_stopped<F: Future + Unpin>(
    work: F,
    deadline: Option<Instant>,
    cancel: &Arc<AtomicBool>,
) -> Result<F::Output, Interrupt> {
    let stopped = race(
        Cancelled::of(cancel.clone()),
        Box::pin(async move {
            match deadline {
                Some(at) => Sleep::until(at).await,
                None => std::future::pending().await,
            }
        }),
    );
    match race(work, Box::pin(stopped)).await {
        Either::Left(v) => Ok(v),
        Either::Right(Either::Left(())) => Err(Interrupt::Cancelled),
        Either::Right(Either::Right(())) => Err(Interrupt::Timeout),
    }
}

/// A future ready once `flag` (a plug-in's cancel flag) is set.
pub(crate) struct Cancelled {
    flag: Arc<AtomicBool>,
    waker: Option<Waker>,
}

impl Cancelled {
    pub(crate) fn of(flag: Arc<AtomicBool>) -> Cancelled {
        Cancelled { flag, waker: None }
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.flag) as usize
    }
}

impl Future for Cancelled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.flag.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let key = self.key();
        {
            let mut waiters = cancel_waiters();
            let mine = waiters
                .get_or_insert_with(HashMap::new)
                .entry(key)
                .or_default();
            if let Some(old) = &self.waker {
                mine.retain(|w| !w.will_wake(old));
            }
            mine.push(cx.waker().clone());
        }
        self.waker = Some(cx.waker().clone());
        // Set between the first look and the registration: seen now.
        if self.flag.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if let Some(waker) = &self.waker {
            let key = self.key();
            let mut waiters = cancel_waiters();
            if let Some(map) = waiters.as_mut() {
                if let Some(mine) = map.get_mut(&key) {
                    mine.retain(|w| !w.will_wake(waker));
                    if mine.is_empty() {
                        map.remove(&key);
                    }
                }
            }
        }
    }
}

//! WASI preview 1 `poll_oneoff`, in place of wasmtime-wasi's. Theirs sleeps on the calling
//! thread for as long as the plug-in asks: past the call's `timeout_ms`, and out of reach of a
//! cancel, since neither is checked until the thread is back in wasm. wasmtime-wasi has no hook
//! for this (its clocks can be replaced, but a relative sleep does not consult them), so the
//! import is shadowed in the linker by this function.
//!
//! It is complete for the WASI context Plinth builds: there are no sockets, stdin is empty (a
//! read gives end of file at once) and files and stdout/stderr never make a writer wait, so
//! every fd subscription is ready at once and only clocks can make a poll wait. A wait lasts
//! until the earliest clock's time, but never past the call's deadline (the call then fails
//! with `Error::Timeout`), and a cancel ends it within [`SLICE`] (`Error::Cancelled`).
//!
//! One difference from wasmtime-wasi: an fd subscription is not checked against the fd table
//! (which wasmtime-wasi keeps private), so a closed fd is reported ready rather than failing
//! the poll with `badf`; the read or write that follows reports `badf` instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;

use wasmtime::{Caller, Extern, Memory};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::p2::bindings::clocks::{monotonic_clock, wall_clock};
use wasmtime_wasi::{WasiCtxView, WasiView};

use super::timer::{until_stopped, Sleep};
use crate::error::Interrupt;
use crate::store::StoreData;

pub(crate) const MODULE: &str = "wasi_snapshot_preview1";
pub(crate) const NAME: &str = "poll_oneoff";

/// The longest a sleep goes without looking at the cancel flag. A cancel cannot wake a thread
/// that sleeps, so this is how late a cancel may be seen.
const SLICE: Duration = Duration::from_millis(5);

// Layouts from the preview-1 witx (wasmtime-wasi's witx/p1/typenames.witx):
// subscription (48 bytes, align 8): userdata u64 @0, tag u8 @8, then at 16 either
//   clock: id u32 @16, timeout u64 @24, precision u64 @32, flags u16 @40 (bit 0 = abstime),
//   or fd_read/fd_write: fd u32 @16;
// event (32 bytes, align 8): userdata u64 @0, errno u16 @8, type u8 @10,
//   fd_readwrite: nbytes u64 @16, flags u16 @24.
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
const TAG_CLOCK: u8 = 0;
const TAG_FD_READ: u8 = 1;
const TAG_FD_WRITE: u8 = 2;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
const SUBCLOCK_ABSTIME: u16 = 1;
const ERRNO_INVAL: i32 = 28;

/// What one subscription waits for.
enum Wait {
    /// A clock: until this instant, or `None` for a time too far off to represent (never).
    Until(Option<Instant>),
    /// An fd: ready at once.
    Ready,
}

/// The clocks' readings when the poll began: absolute times are turned into waits from here.
struct Now {
    instant: Instant,
    monotonic_ns: u64,
    realtime_ns: u64,
}

/// A poll read and checked: where its subscriptions and events lie, and how long it waits.
struct Poll {
    memory: Memory,
    subs: usize,
    events: usize,
    n: usize,
    nevents_out: usize,
    now: Now,
    /// Until when the poll waits: `None` not at all (an fd is ready, or there is no clock),
    /// `Some(None)` for ever.
    wait: Option<Option<Instant>>,
}

/// The import itself: `(subscriptions, events, nsubscriptions, nevents_out) -> errno`.
pub(crate) fn poll_oneoff(
    mut caller: Caller<'_, StoreData>,
    subs: i32,
    events: i32,
    nsubscriptions: i32,
    nevents_out: i32,
) -> wasmtime::Result<i32> {
    let poll = match prepare(&mut caller, subs, events, nsubscriptions, nevents_out)? {
        Ok(poll) => poll,
        Err(errno) => return Ok(errno),
    };
    if let Some(until) = poll.wait {
        let d = caller.data();
        sleep_until(until, d.deadline, &d.cancel)?;
    }
    complete(&mut caller, &poll)
}

/// The import for plug-ins called asynchronously: the wait is awaited, so the thread serves
/// other calls meanwhile; the deadline and a cancel end it at once.
pub(crate) fn poll_oneoff_async<'a>(
    mut caller: Caller<'a, StoreData>,
    (subs, events, nsubscriptions, nevents_out): (i32, i32, i32, i32),
) -> Box<dyn Future<Output = wasmtime::Result<i32>> + Send + 'a> {
    Box::new(async move {
        let poll = match prepare(&mut caller, subs, events, nsubscriptions, nevents_out)? {
            Ok(poll) => poll,
            Err(errno) => return Ok(errno),
        };
        if let Some(until) = poll.wait {
            let (deadline, cancel) = (caller.data().deadline, caller.data().cancel.clone());
            let sleep: Pin<Box<dyn Future<Output = ()> + Send>> = match until {
                Some(at) => Box::pin(Sleep::until(at)),
                None => Box::pin(std::future::pending()),
            };
            until_stopped(sleep, deadline, &cancel).await?;
        }
        complete(&mut caller, &poll)
    })
}

/// Reads and checks the poll's arguments and subscriptions: the poll, or the errno it ends
/// with at once.
fn prepare(
    caller: &mut Caller<'_, StoreData>,
    subs: i32,
    events: i32,
    nsubscriptions: i32,
    nevents_out: i32,
) -> wasmtime::Result<Result<Poll, i32>> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Err(wasmtime::format_err!(
            "poll_oneoff needs the plug-in to export its memory as `memory`"
        ));
    };
    let (subs, events, n, nevents_out) = (
        subs as u32 as usize,
        events as u32 as usize,
        nsubscriptions as u32 as usize,
        nevents_out as u32 as usize,
    );
    if n == 0 {
        // As wasmtime-wasi: a poll with nothing to wait for would wait for ever.
        return Ok(Err(ERRNO_INVAL));
    }
    // Bad pointers trap, as the witx rules (and wasmtime-wasi) say.
    let size = memory.data_size(&*caller);
    check_range(
        "subscriptions",
        subs,
        n.checked_mul(SUBSCRIPTION_SIZE),
        8,
        size,
    )?;
    check_range("nevents", nevents_out, Some(4), 4, size)?;
    check_range("events", events, Some(0), 8, size)?;

    let now = read_clocks(caller)?;

    // Check every subscription, find the earliest clock. Subscriptions are read in place
    // rather than copied, so that a huge count cannot make the host allocate.
    let mut earliest: Option<Option<Instant>> = None;
    let mut any_ready = false;
    let bytes = memory.data(&*caller);
    for i in 0..n {
        match read_subscription(bytes, subs + i * SUBSCRIPTION_SIZE, &now) {
            Ok((_, _, Wait::Ready)) => any_ready = true,
            Ok((_, _, Wait::Until(t))) => {
                earliest = Some(match earliest {
                    None => t,
                    Some(e) => earlier(e, t),
                })
            }
            Err(errno) => return Ok(Err(errno)),
        }
    }
    Ok(Ok(Poll {
        memory,
        subs,
        events,
        n,
        nevents_out,
        now,
        wait: if any_ready { None } else { earliest },
    }))
}

/// After the wait: an event for each fd subscription and each clock whose time has come.
fn complete(caller: &mut Caller<'_, StoreData>, poll: &Poll) -> wasmtime::Result<i32> {
    let woke = Instant::now();
    let bytes = poll.memory.data_mut(&mut *caller);
    let mut count = 0usize;
    for i in 0..poll.n {
        let (userdata, tag, wait) =
            match read_subscription(bytes, poll.subs + i * SUBSCRIPTION_SIZE, &poll.now) {
                Ok(s) => s,
                Err(errno) => return Ok(errno),
            };
        let nbytes = match wait {
            Wait::Until(Some(t)) if t <= woke => 0u64,
            Wait::Until(_) => continue,
            // As wasmtime-wasi reports stdio and files: one byte can be moved without waiting.
            Wait::Ready => 1,
        };
        let at = poll.events + count * EVENT_SIZE;
        check_range("events", at, Some(EVENT_SIZE), 8, bytes.len())?;
        let event = &mut bytes[at..at + EVENT_SIZE];
        event.fill(0);
        event[0..8].copy_from_slice(&userdata.to_le_bytes());
        event[10] = tag;
        event[16..24].copy_from_slice(&nbytes.to_le_bytes());
        count += 1;
    }
    let out = poll.nevents_out;
    bytes[out..out + 4].copy_from_slice(&(count as u32).to_le_bytes());
    Ok(0)
}

/// The earlier of two clock times, where `None` is never.
fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn check_range(
    what: &str,
    at: usize,
    len: Option<usize>,
    align: usize,
    size: usize,
) -> wasmtime::Result<()> {
    if !at.is_multiple_of(align) {
        return Err(wasmtime::format_err!(
            "poll_oneoff: the {what} pointer {at} is not aligned to {align} bytes"
        ));
    }
    match len.and_then(|l| at.checked_add(l)) {
        Some(end) if end <= size => Ok(()),
        _ => Err(wasmtime::format_err!(
            "poll_oneoff: the {what} at {at} lie outside the plug-in's memory ({size} bytes)"
        )),
    }
}

/// The WASI context's own clocks (what `clock_time_get` tells the plug-in), so that absolute
/// times mean what the plug-in read.
fn read_clocks(caller: &mut Caller<'_, StoreData>) -> wasmtime::Result<Now> {
    let instant = Instant::now();
    let Some(wasi) = caller.data_mut().wasi.as_mut() else {
        return Err(wasmtime::format_err!(
            "poll_oneoff was called, but WASI is off for this plug-in"
        ));
    };
    let WasiCtxView { ctx, table } = wasi.ctx();
    let mut clocks = WasiClocksCtxView {
        ctx: ctx.clocks(),
        table,
    };
    let monotonic_ns = monotonic_clock::Host::now(&mut clocks)?;
    let wall = wall_clock::Host::now(&mut clocks)?;
    let realtime_ns = wall
        .seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(wall.nanoseconds));
    Ok(Now {
        instant,
        monotonic_ns,
        realtime_ns,
    })
}

/// Reads subscription `at`: its userdata, tag and what it waits for, or the errno that fails
/// the poll (an unknown tag, clock or flag, as wasmtime-wasi answers them).
fn read_subscription(bytes: &[u8], at: usize, now: &Now) -> Result<(u64, u8, Wait), i32> {
    let s = &bytes[at..at + SUBSCRIPTION_SIZE];
    let u64_at = |o: usize| u64::from_le_bytes(s[o..o + 8].try_into().unwrap());
    let userdata = u64_at(0);
    let tag = s[8];
    match tag {
        TAG_CLOCK => {
            let id = u32::from_le_bytes(s[16..20].try_into().unwrap());
            let timeout = u64_at(24);
            let flags = u16::from_le_bytes(s[40..42].try_into().unwrap());
            if flags & !SUBCLOCK_ABSTIME != 0 {
                return Err(ERRNO_INVAL);
            }
            let ns = match (id, flags & SUBCLOCK_ABSTIME != 0) {
                (CLOCK_REALTIME | CLOCK_MONOTONIC, false) => timeout,
                (CLOCK_MONOTONIC, true) => timeout.saturating_sub(now.monotonic_ns),
                (CLOCK_REALTIME, true) => timeout.saturating_sub(now.realtime_ns),
                // The CPU-time clocks cannot be waited on (wasmtime-wasi says the same).
                _ => return Err(ERRNO_INVAL),
            };
            Ok((
                userdata,
                tag,
                Wait::Until(now.instant.checked_add(Duration::from_nanos(ns))),
            ))
        }
        TAG_FD_READ | TAG_FD_WRITE => Ok((userdata, tag, Wait::Ready)),
        _ => Err(ERRNO_INVAL),
    }
}

/// Sleeps until `until` (`None`: no end of its own), in slices so that a cancel is seen. Fails
/// when the call's deadline or a cancel comes first.
fn sleep_until(
    until: Option<Instant>,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
) -> Result<(), Interrupt> {
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(Interrupt::Cancelled);
        }
        let now = Instant::now();
        if until.is_some_and(|t| now >= t) {
            return Ok(());
        }
        if deadline.is_some_and(|d| now >= d) {
            return Err(Interrupt::Timeout);
        }
        let wake = [until, deadline]
            .into_iter()
            .flatten()
            .fold(now + SLICE, Instant::min);
        std::thread::sleep(wake - now);
    }
}

//! `stream_read` and `stream_write` (`plinth:host/env`): the call's input and output as streams
//! of chunks between the caller's reader and writer and the plug-in's own memory, each chunk
//! copied once (see `docs/streaming.md` and `store/stream.rs`).
//!
//! The sync versions read and write in place, on the calling thread: a slow writer slows the
//! plug-in. The async versions (plug-ins built `with_async`) await the caller's `AsyncRead` /
//! `AsyncWrite` under the call's deadline and cancel. After each chunk both check the deadline,
//! so a call that waited on its streams past it ends as a timeout at once.

use std::io::ErrorKind as IoKind;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmtime::{Caller, Linker, Memory};

use super::plugin_memory::plugin_range as range;
use crate::abi::{STREAM_READ, STREAM_WRITE};
use crate::error::Interrupt;
use crate::store::stream::{self, CallStreams, StreamInput, StreamOutput};
use crate::store::{self, StoreData};
use crate::Error;

type C<'a> = Caller<'a, StoreData>;

/// What `stream_read` returns when the input stream failed; `stream_write` when the output is
/// closed.
const FAILED: i32 = -1;

/// Adds the sync versions to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    let ns = crate::abi::PLINTH_ENV;
    linker.func_wrap(ns, STREAM_READ, |mut c: C, ptr: i32, len: i32| {
        let result = read_sync(&mut c, ptr, len);
        stopped(&c)?;
        result
    })?;
    linker.func_wrap(ns, STREAM_WRITE, |mut c: C, ptr: i32, len: i32| {
        let result = write_sync(&mut c, ptr, len);
        stopped(&c)?;
        result
    })?;
    Ok(())
}

/// Replaces them with versions that await the caller's async reader and writer.
pub(crate) fn add_async_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    let ns = crate::abi::PLINTH_ENV;
    linker.func_wrap_async(ns, STREAM_READ, |mut c: C<'_>, (ptr, len): (i32, i32)| {
        Box::new(async move {
            let result = read_async(&mut c, ptr, len).await;
            stopped(&c)?;
            result
        })
    })?;
    linker.func_wrap_async(ns, STREAM_WRITE, |mut c: C<'_>, (ptr, len): (i32, i32)| {
        Box::new(async move {
            let result = write_async(&mut c, ptr, len).await;
            stopped(&c)?;
            result
        })
    })?;
    Ok(())
}

/// A call past its deadline or cancelled ends now rather than at the plug-in's next check.
fn stopped(c: &C) -> wasmtime::Result<()> {
    let d = c.data();
    if d.cancel.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Interrupt::Cancelled.into());
    }
    if d.deadline.is_some_and(|at| Instant::now() >= at) {
        return Err(Interrupt::Timeout.into());
    }
    Ok(())
}

fn read_sync(c: &mut C, ptr: i32, len: i32) -> wasmtime::Result<i32> {
    let (memory, ptr, len) = range(c, ptr, len, STREAM_READ)?;
    let slot = c.data().streams.clone();
    c.data_mut().streams_touched = true;
    let mut s = stream::lock(&slot);
    if let Some(done) = ended(&s, len) {
        return Ok(done);
    }
    match s.input {
        StreamInput::Classic { .. } => read_classic(c, &mut s, memory, ptr, len),
        StreamInput::Read(reader) => {
            let (data, _) = memory.data_and_store_mut(&mut *c);
            // SAFETY: a host function of the call that lent the reader (see `Borrowed`).
            let reader = unsafe { reader.get() };
            let got = loop {
                match reader.read(&mut data[ptr..ptr + len]) {
                    Err(e) if e.kind() == IoKind::Interrupted => continue,
                    other => break other,
                }
            };
            Ok(settle_read(&mut s, got, len))
        }
        StreamInput::AsyncRead(_) => Err(not_async()),
    }
}

async fn read_async(c: &mut C<'_>, ptr: i32, len: i32) -> wasmtime::Result<i32> {
    let (memory, ptr, len) = range(c, ptr, len, STREAM_READ)?;
    let slot = c.data().streams.clone();
    c.data_mut().streams_touched = true;
    let reader = {
        let mut s = stream::lock(&slot);
        if let Some(done) = ended(&s, len) {
            return Ok(done);
        }
        match s.input {
            StreamInput::AsyncRead(reader) => reader,
            StreamInput::Classic { .. } => return read_classic(c, &mut s, memory, ptr, len),
            StreamInput::Read(_) => {
                return Err(wasmtime::format_err!(
                    "a plug-in built for async calls was given a blocking reader"
                ))
            }
        }
    };
    let (deadline, cancel) = (c.data().deadline, c.data().cancel.clone());
    let (data, _) = memory.data_and_store_mut(&mut *c);
    // SAFETY: a host function of the call that lent the reader (see `Borrowed`); the call's
    // future owns this one, so it is gone before the lender's guard is.
    let reader = unsafe { reader.get() };
    let got = super::timer::until_stopped(
        Box::pin(reader.read(&mut data[ptr..ptr + len])),
        deadline,
        &cancel,
    )
    .await?;
    let n = settle_read(&mut stream::lock(&slot), got, len);
    Ok(n)
}

/// `Some(0)` at the end of the stream, `Some(-1)` after a failure, `Some(0)` for an empty read.
fn ended(s: &CallStreams, len: usize) -> Option<i32> {
    if s.input_done {
        return Some(if s.failure.is_some() { FAILED } else { 0 });
    }
    (len == 0).then_some(0)
}

/// The classic input: the call's input bytes in Extism memory, from where the last read ended.
fn read_classic(
    c: &mut C,
    s: &mut CallStreams,
    memory: Memory,
    ptr: usize,
    len: usize,
) -> wasmtime::Result<i32> {
    let StreamInput::Classic { pos } = &mut s.input else {
        unreachable!("called for the classic input only")
    };
    let (base, total) = c.data().input;
    let n = (total - *pos).min(len as u64) as usize;
    if n == 0 {
        s.input_done = true;
        return Ok(0);
    }
    let from = base + *pos;
    let chunk = crate::abi::memory::range(store::bytes(&*c), from, n as u64)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| wasmtime::format_err!("the call's input is outside Extism memory"))?;
    memory.data_mut(&mut *c)[ptr..ptr + n].copy_from_slice(&chunk);
    *pos += n as u64;
    s.read += n as u64;
    Ok(n as i32)
}

/// Counts a read from the caller's reader; a failure is recorded for the call and reported to
/// the plug-in as -1.
fn settle_read(s: &mut CallStreams, got: std::io::Result<usize>, len: usize) -> i32 {
    match got {
        Ok(0) => {
            s.input_done = true;
            0
        }
        Ok(n) => {
            let n = n.min(len);
            s.read += n as u64;
            n as i32
        }
        Err(e) => {
            s.input_done = true;
            s.fail(Error::Stream(format!(
                "the input stream failed after {} bytes: {e}",
                s.read
            )));
            FAILED
        }
    }
}

fn write_sync(c: &mut C, ptr: i32, len: i32) -> wasmtime::Result<i32> {
    let (memory, ptr, len) = range(c, ptr, len, STREAM_WRITE)?;
    let slot = c.data().streams.clone();
    c.data_mut().streams_touched = true;
    let mut s = stream::lock(&slot);
    if let Some(closed) = admit_write(&mut s, len)? {
        return Ok(closed);
    }
    let data = memory.data(&*c);
    let bytes = &data[ptr..ptr + len];
    let sent = match &mut s.output {
        StreamOutput::Collect(collected) => {
            collected.extend_from_slice(bytes);
            Ok(())
        }
        StreamOutput::Write(writer) => {
            // SAFETY: a host function of the call that lent the writer (see `Borrowed`).
            let writer = unsafe { writer.get() };
            writer.write_all(bytes).and_then(|()| writer.flush())
        }
        StreamOutput::AsyncWrite(_) => return Err(not_async()),
    };
    Ok(settle_write(&mut s, sent, len))
}

async fn write_async(c: &mut C<'_>, ptr: i32, len: i32) -> wasmtime::Result<i32> {
    let (memory, ptr, len) = range(c, ptr, len, STREAM_WRITE)?;
    let slot = c.data().streams.clone();
    c.data_mut().streams_touched = true;
    let writer = {
        let mut s = stream::lock(&slot);
        if let Some(closed) = admit_write(&mut s, len)? {
            return Ok(closed);
        }
        match &mut s.output {
            StreamOutput::AsyncWrite(writer) => *writer,
            StreamOutput::Collect(collected) => {
                collected.extend_from_slice(&memory.data(&*c)[ptr..ptr + len]);
                return Ok(settle_write(&mut s, Ok(()), len));
            }
            StreamOutput::Write(_) => {
                return Err(wasmtime::format_err!(
                    "a plug-in built for async calls was given a blocking writer"
                ))
            }
        }
    };
    let (deadline, cancel) = (c.data().deadline, c.data().cancel.clone());
    let data = memory.data(&*c);
    // SAFETY: as in `read_async`.
    let writer = unsafe { writer.get() };
    let bytes = &data[ptr..ptr + len];
    let sent = super::timer::until_stopped(
        Box::pin(async move {
            writer.write_all(bytes).await?;
            writer.flush().await
        }),
        deadline,
        &cancel,
    )
    .await?;
    let n = settle_write(&mut stream::lock(&slot), sent, len);
    Ok(n)
}

/// `Some(-1)` once the output is closed; an error when `len` more bytes would go over the
/// call's output limit (the call ends with it: the plug-in had its answer in the -1s before).
fn admit_write(s: &mut CallStreams, len: usize) -> wasmtime::Result<Option<i32>> {
    if s.failure.is_some() {
        return Ok(Some(FAILED));
    }
    if s.written + len as u64 > s.output_limit {
        return Err(Error::Stream(format!(
            "the plug-in wrote more than the call's output limit of {} bytes to its output \
             stream ({} bytes were delivered; a write of {len} more was refused)",
            s.output_limit, s.written
        ))
        .into());
    }
    Ok(None)
}

fn settle_write(s: &mut CallStreams, sent: std::io::Result<()>, len: usize) -> i32 {
    match sent {
        Ok(()) => {
            s.written += len as u64;
            0
        }
        Err(e) => {
            s.fail(Error::Stream(format!(
                "the output stream stopped taking bytes after {} bytes: {e}",
                s.written
            )));
            FAILED
        }
    }
}

fn not_async() -> wasmtime::Error {
    wasmtime::format_err!(
        "an async reader or writer reached a plug-in built for sync calls; build it with \
         `with_async(true)` to stream it asynchronously"
    )
}

//! Streaming input and output (feature `stream`): the call's input as an [`InputStream`]
//! (`std::io::Read`) and its output as an [`OutputStream`] (`std::io::Write`), a chunk at a
//! time, so a plug-in can filter a 1 GiB log in the memory of one chunk and answer before it
//! has read everything.
//!
//! ```ignore
//! use std::io::{Read, Write};
//! use plinth_pdk::*;
//!
//! #[plugin_fn]
//! pub fn upper() -> FnResult<()> {
//!     let (mut input, mut output) = (stream::input_stream(), stream::output_stream());
//!     let mut buf = vec![0; 64 * 1024];
//!     loop {
//!         let n = input.read(&mut buf)?;
//!         if n == 0 {
//!             return Ok(());
//!         }
//!         buf[..n].make_ascii_uppercase();
//!         output.write_all(&buf[..n])?;
//!     }
//! }
//! ```
//!
//! A streaming export is a `#[plugin_fn]` (it resets and flushes the fallback below), takes no
//! input parameter (the parameter would read the whole input first) and usually returns
//! `FnResult<()>`; a value it returns is written after what it streamed. The plug-in's other
//! exports may take their input whole: with this feature, `input()` reads it through the
//! stream when the host streams it.
//!
//! # How it reaches the host (docs/streaming.md)
//!
//! The module defines and exports two functions, [`plinth_stream_read`] and
//! [`plinth_stream_write`], and every read and write goes through them. A Plinth host
//! replaces their bodies at load time with calls to its `plinth:host/env` `stream_read` and
//! `stream_write`: then each read takes the next chunk of the host's input stream and each
//! write is delivered by the host at once. Their own bodies are the fallback for hosts that
//! do not do this (Extism): reads serve the call's whole input from an offset, writes collect
//! into a buffer, and `#[plugin_fn]` puts that buffer in front of the function's own output
//! when it returns. The same module therefore gives the same output bytes on both hosts; on
//! Extism the whole input and output are in memory, as with classic calls.

use std::cell::RefCell;
use std::io;

use crate::{abi, Error, Memory, ToMemory};

/// The call's input stream. Each [`read`](io::Read::read) fills the buffer with the next
/// chunk (up to its length) and returns 0 at the end of the input.
///
/// Wrap it in a `std::io::BufReader` to read lines. Every `InputStream` reads the same
/// stream: what one has read, the others do not see again.
#[derive(Debug, Default)]
pub struct InputStream {
    _private: (),
}

/// The call's output stream. Each [`write`](io::Write::write) is delivered by the host before
/// it returns, so a slow reader on the host side slows the plug-in down and memory stays
/// bounded; `flush` has nothing to do.
///
/// Writes are host calls: wrap it in a `std::io::BufWriter` when writing many small pieces.
#[derive(Debug, Default)]
pub struct OutputStream {
    _private: (),
}

/// The call's input, as a stream of chunks.
pub fn input_stream() -> InputStream {
    InputStream { _private: () }
}

/// The call's output, as a stream of chunks.
pub fn output_stream() -> OutputStream {
    OutputStream { _private: () }
}

impl io::Read for InputStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            // The ABI reserves 0 for the end of the stream.
            return Ok(0);
        }
        let len = buf.len().min(i32::MAX as usize);
        let n = plinth_stream_read(buf.as_mut_ptr() as usize as i32, len as i32);
        match n {
            -1 => Err(io::Error::other(
                "the host's input stream failed (stream_read returned -1); the call fails with the host's error",
            )),
            n if n >= 0 && n as usize <= len => Ok(n as usize),
            n => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("stream_read returned {n} for a buffer of {len} bytes: the host does not follow the streaming ABI"),
            )),
        }
    }
}

impl io::Write for OutputStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len().min(i32::MAX as usize);
        match plinth_stream_write(buf.as_ptr() as usize as i32, len as i32) {
            0 => Ok(len),
            -1 => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the host closed the output stream (stream_write returned -1): stop writing; the call fails with the host's error",
            )),
            n => Err(io::Error::other(format!(
                "stream_write returned {n}: the host does not follow the streaming ABI"
            ))),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The fallback's state, for hosts that did not link the stream functions.
struct Fallback {
    /// How much of the call's input the reads have served.
    read_offset: u64,
    /// What the writes collected; `#[plugin_fn]` makes it the start of the output.
    output: Vec<u8>,
}

thread_local! {
    static FALLBACK: RefCell<Fallback> = const {
        RefCell::new(Fallback { read_offset: 0, output: Vec::new() })
    };
}

/// Copies up to `len` bytes of the call's input stream to `ptr`; returns how many (0 at the
/// end), or -1 when the input failed. Exported for the host, which replaces this body with
/// `plinth:host/env` `stream_read`; the body here serves the classic input from an offset.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn plinth_stream_read(ptr: i32, len: i32) -> i32 {
    let n = fallback_read(ptr as u32 as usize as *mut u8, len);
    // Opaque to the optimizer: callers must keep their checks for every value the host's
    // version can return (-1), not only for those this body returns.
    core::hint::black_box(n)
}

/// Delivers the `len` bytes at `ptr` to the call's output stream; returns 0, or -1 when the
/// output is closed. Exported for the host, which replaces this body with `plinth:host/env`
/// `stream_write`; the body here appends to a buffer that becomes the start of the output.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn plinth_stream_write(ptr: i32, len: i32) -> i32 {
    let status = fallback_write(ptr as u32 as usize as *const u8, len);
    core::hint::black_box(status)
}

fn fallback_read(dst: *mut u8, len: i32) -> i32 {
    if len <= 0 {
        return 0;
    }
    FALLBACK
        .try_with(|state| {
            let Ok(mut state) = state.try_borrow_mut() else {
                return -1;
            };
            let left = input_len().saturating_sub(state.read_offset);
            let n = left.min(len as u64) as usize;
            if n > 0 {
                // SAFETY: `InputStream::read` passes a buffer of at least `len` bytes.
                let buf = unsafe { std::slice::from_raw_parts_mut(dst, n) };
                copy_input(state.read_offset, buf);
                state.read_offset += n as u64;
            }
            n as i32
        })
        .unwrap_or(-1)
}

fn fallback_write(src: *const u8, len: i32) -> i32 {
    if len < 0 {
        return -1;
    }
    if len == 0 {
        return 0;
    }
    // SAFETY: `OutputStream::write` passes a buffer of at least `len` bytes.
    let data = unsafe { std::slice::from_raw_parts(src, len as usize) };
    FALLBACK
        .try_with(|state| {
            let Ok(mut state) = state.try_borrow_mut() else {
                return -1;
            };
            // Out of memory is a closed output for the plug-in, not an abort.
            if state.output.try_reserve(data.len()).is_err() {
                return -1;
            }
            state.output.extend_from_slice(data);
            0
        })
        .unwrap_or(-1)
}

#[cfg(not(feature = "bulk-copy"))]
fn input_len() -> u64 {
    unsafe { abi::input_length() }
}

#[cfg(not(feature = "bulk-copy"))]
fn copy_input(offset: u64, buf: &mut [u8]) {
    crate::memory::read_into(
        buf,
        offset,
        |o| unsafe { abi::input_load_u64(o) },
        |o| unsafe { abi::input_load_u8(o) },
    );
}

// With `bulk-copy` a Plinth host may have written the input into the plug-in's own buffer.
#[cfg(feature = "bulk-copy")]
fn input_len() -> u64 {
    crate::direct::with_input(|input| input.len() as u64)
        .unwrap_or_else(|| unsafe { abi::input_length() })
}

#[cfg(feature = "bulk-copy")]
fn copy_input(offset: u64, buf: &mut [u8]) {
    let direct = crate::direct::with_input(|input| {
        let start = offset as usize;
        buf.copy_from_slice(&input[start..start + buf.len()]);
    });
    if direct.is_none() {
        unsafe { abi::input_read(offset, buf.as_mut_ptr(), buf.len() as u32) };
    }
}

/// Whether the whole input must come through the stream: the classic input is empty, which
/// it is when a Plinth host streams (and when the input is empty: the stream then ends at once).
pub(crate) fn input_is_streamed() -> bool {
    input_len() == 0
}

/// The rest of the input stream, read to its end.
pub(crate) fn read_whole_input() -> io::Result<Vec<u8>> {
    use io::Read;
    let mut buf = Vec::new();
    input_stream().read_to_end(&mut buf)?;
    Ok(buf)
}

/// Starts a call: the fallback reads from the start of the new input, and nothing of an
/// earlier call (one that trapped, say) is left in the output buffer.
pub(crate) fn begin_call() {
    let _ = FALLBACK.try_with(|state| {
        if let Ok(mut state) = state.try_borrow_mut() {
            state.read_offset = 0;
            state.output = Vec::new();
        }
    });
}

/// What the fallback writes collected in this call (empty when the host streams).
pub(crate) fn take_fallback_output() -> Vec<u8> {
    FALLBACK
        .try_with(|state| {
            state
                .try_borrow_mut()
                .map(|mut state| std::mem::take(&mut state.output))
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Sets the call's output to `streamed` followed by `value`, as a host that streams would
/// have delivered them.
pub(crate) fn output_after<T: ToMemory>(streamed: Vec<u8>, value: T) -> Result<(), Error> {
    let own = value.to_memory()?;
    let block = Memory::alloc(streamed.len() as u64 + own.len())?;
    block.store(&streamed);
    drop(streamed);
    if !own.is_empty() {
        block.tail(block.len() - own.len()).store(own.to_vec());
        if value.allocates() {
            own.free();
        }
    }
    unsafe { abi::output_set(block.offset(), block.len()) };
    Ok(())
}

//! HTTP with streamed bodies (feature `stream`): send a request body in chunks and read the
//! answer's body as the server sends it, through an [`HttpStream`] (`std::io::Write` for the
//! request body, `std::io::Read` for the answer's).
//!
//! ```ignore
//! use std::io::{BufRead, BufReader, Write};
//! use plinth_pdk::*;
//!
//! #[plugin_fn]
//! pub fn relay() -> FnResult<()> {
//!     let mut upstream = HttpStream::start(&HttpRequest::new("https://example.com/feed"))?;
//!     let status = upstream.status()?;
//!     let mut out = stream::output_stream();
//!     for line in BufReader::new(upstream).lines() {
//!         write!(out, "data: {}\n\n", line?)?;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # How it reaches the host (docs/streaming.md)
//!
//! As with [`crate::stream`], the module exports `plinth_http_stream_start`, `_send`,
//! `_status`, `_read` and `_close`, and a Plinth host replaces their bodies at load time with
//! its `plinth:host/env` `http_stream_*` imports: the request goes out as the body is sent, and
//! the answer is read a chunk at a time. Their own bodies are the fallback for hosts without
//! them (Extism): the body is collected, the request goes out whole through `http_request`
//! when the answer is first asked for, and reads serve the whole answer from memory.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;

use crate::{abi, Error, HttpRequest, Memory};

/// A request whose bodies stream. Write the request body with [`io::Write`] (or
/// [`HttpStream::send`]); [`HttpStream::status`] ends the body and waits for the answer's
/// head; read the answer's body with [`io::Read`]. Dropping it closes the request.
#[derive(Debug)]
pub struct HttpStream {
    handle: i64,
    status: Option<u16>,
}

impl HttpStream {
    /// Starts `req`; the host checks it against `allowed_hosts` now. The request goes out with
    /// the first body chunk, or without a body when the answer is asked for first.
    pub fn start(req: &HttpRequest) -> Result<HttpStream, Error> {
        let json = Memory::from_bytes(serde_json::to_vec(req)?)?;
        // The host frees the block.
        let handle = plinth_http_stream_start(json.offset() as i64);
        if handle <= 0 {
            return Err(Error::msg(format!(
                "cannot start the request to {}: the host refused it",
                req.url
            )));
        }
        Ok(HttpStream {
            handle,
            status: None,
        })
    }

    /// Sends the next chunk of the request body.
    pub fn send(&mut self, chunk: &[u8]) -> Result<(), Error> {
        if chunk.is_empty() {
            return Ok(());
        }
        let len = i32::try_from(chunk.len()).map_err(|_| Error::msg("a chunk over 2 GiB"))?;
        match plinth_http_stream_send(self.handle, chunk.as_ptr() as usize as i32, len) {
            0 => Ok(()),
            n => Err(Error::msg(format!(
                "the host did not take the request body chunk ({n})"
            ))),
        }
    }

    /// Ends the request body and waits for the answer: its status code.
    pub fn status(&mut self) -> Result<u16, Error> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = plinth_http_stream_status(self.handle);
        let status = u16::try_from(status)
            .map_err(|_| Error::msg(format!("the host answered status {status}")))?;
        self.status = Some(status);
        Ok(status)
    }
}

impl io::Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.status().map_err(io::Error::other)?;
        let len = buf.len().min(i32::MAX as usize);
        match plinth_http_stream_read(self.handle, buf.as_mut_ptr() as usize as i32, len as i32) {
            n if n >= 0 && n as usize <= len => Ok(n as usize),
            n => Err(io::Error::other(format!(
                "http_stream_read returned {n} for a buffer of {len} bytes"
            ))),
        }
    }
}

impl io::Write for HttpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for HttpStream {
    fn drop(&mut self) {
        plinth_http_stream_close(self.handle);
    }
}

/// A request as the fallback keeps it: the JSON, the body so far, then the whole answer.
struct Pending {
    json: Vec<u8>,
    body: Vec<u8>,
    answer: Option<(i32, Vec<u8>, usize)>,
}

thread_local! {
    static REQUESTS: RefCell<(i64, BTreeMap<i64, Pending>)> =
        const { RefCell::new((0, BTreeMap::new())) };
}

fn with_request<T>(h: i64, f: impl FnOnce(&mut Pending) -> T) -> Option<T> {
    REQUESTS
        .try_with(|r| r.try_borrow_mut().ok()?.1.get_mut(&h).map(f))
        .ok()
        .flatten()
}

/// Starts the request in block `req` (freed); returns its handle. Replaced at load by a Plinth
/// host (see the module doc); this body keeps the request for `http_request`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn plinth_http_stream_start(req: i64) -> i64 {
    let json = Memory::find(req as u64).map(|m| {
        let bytes = m.to_vec();
        m.free();
        bytes
    });
    let handle = REQUESTS
        .try_with(|r| {
            let mut r = r.try_borrow_mut().ok()?;
            r.0 += 1;
            let h = r.0;
            r.1.insert(
                h,
                Pending {
                    json: json?,
                    body: Vec::new(),
                    answer: None,
                },
            );
            Some(h)
        })
        .ok()
        .flatten()
        .unwrap_or(0);
    core::hint::black_box(handle)
}

/// Sends `len` bytes at `ptr` as the next body chunk; 0. Replaced at load by a Plinth host.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn plinth_http_stream_send(h: i64, ptr: i32, len: i32) -> i32 {
    let status = if len < 0 {
        -1
    } else {
        // SAFETY: `HttpStream::send` passes a chunk of `len` bytes at `ptr`.
        let chunk =
            unsafe { std::slice::from_raw_parts(ptr as u32 as usize as *const u8, len as usize) };
        with_request(h, |p| {
            if p.answer.is_some() {
                return -1;
            }
            p.body.extend_from_slice(chunk);
            0
        })
        .unwrap_or(-1)
    };
    core::hint::black_box(status)
}

/// Ends the body and waits for the answer; its status. Replaced at load by a Plinth host; this
/// body sends the whole request through `http_request`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn plinth_http_stream_status(h: i64) -> i32 {
    let status = with_request(h, |p| {
        if p.answer.is_none() {
            p.answer = Some(send_whole(&p.json, std::mem::take(&mut p.body)));
        }
        p.answer.as_ref().map_or(0, |a| a.0)
    })
    .unwrap_or(0);
    core::hint::black_box(status)
}

/// Copies up to `len` bytes of the answer's body to `ptr`; the count, 0 at its end. Replaced
/// at load by a Plinth host; this body serves the whole answer from memory.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn plinth_http_stream_read(h: i64, ptr: i32, len: i32) -> i32 {
    let n = with_request(h, |p| {
        let Some((_, body, pos)) = p.answer.as_mut() else {
            return -1;
        };
        let n = (body.len() - *pos).min(len.max(0) as usize);
        // SAFETY: `HttpStream::read` passes a buffer of at least `len` bytes at `ptr`.
        let dst = unsafe { std::slice::from_raw_parts_mut(ptr as u32 as usize as *mut u8, n) };
        dst.copy_from_slice(&body[*pos..*pos + n]);
        *pos += n;
        n as i32
    })
    .unwrap_or(-1);
    core::hint::black_box(n)
}

/// Closes the request. Replaced at load by a Plinth host.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn plinth_http_stream_close(h: i64) {
    let _ = REQUESTS.try_with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            r.1.remove(&h);
        }
    });
    core::hint::black_box(());
}

/// The fallback's whole request through `http_request`: (status, body, read position).
fn send_whole(json: &[u8], body: Vec<u8>) -> (i32, Vec<u8>, usize) {
    let (Ok(req), Ok(body)) = (Memory::from_bytes(json), Memory::from_bytes(body)) else {
        return (0, Vec::new(), 0);
    };
    // http_request frees both handles.
    let res = unsafe { abi::http_request(req.offset(), body.offset()) };
    let status = unsafe { abi::http_status_code() };
    let bytes = Memory::find(res).map(|m| m.to_vec()).unwrap_or_default();
    (status, bytes, 0)
}

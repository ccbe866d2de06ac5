//! HTTP with streamed bodies (`plinth:host/env` `http_stream_*`): a request whose body the
//! plug-in sends in chunks and whose answer it reads in chunks, under the same allow-list,
//! deadline, cancel and response cap as `http_request` (see `http.rs` `StreamingRequest` and
//! `docs/streaming.md`).
//!
//! `http_stream_start(req) -> handle` checks the request JSON (the block is freed, as
//! `http_request` frees it); `http_stream_send(h, ptr, len) -> 0` sends a body chunk;
//! `http_stream_status(h) -> status` ends the body and waits for the answer's head (then
//! `http_status_code` and `http_headers` tell it too); `http_stream_read(h, ptr, len) -> n`
//! reads the answer's body, 0 at its end; `http_stream_close(h)`. Every request still open is
//! closed when the call ends. They block the calling thread, within the call's deadline.

use wasmtime::{Caller, Linker};

use super::plugin_memory::plugin_range;
use crate::abi::PLINTH_ENV;
use crate::http::StreamingRequest;
use crate::store::{self, StoreData};
use crate::Error;

type C<'a> = Caller<'a, StoreData>;

/// Requests one instance may have open at once: each holds a thread and a connection.
pub(crate) const MAX_OPEN: usize = 8;

pub(crate) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    linker.func_wrap(
        PLINTH_ENV,
        "http_stream_start",
        |mut c: C, req: i64| -> wasmtime::Result<i64> {
            let json = store::take_block(&mut c, req as u64);
            let d = c.data_mut();
            d.http.last_status = 0;
            d.http.last_headers = None;
            if d.http.streams.len() >= MAX_OPEN {
                return Err(Error::Http(format!(
                    "the plug-in has {MAX_OPEN} HTTP streams open, the most at once: close one \
                     (http_stream_close) before starting another"
                ))
                .into());
            }
            let request = StreamingRequest::start(&d.shared.http, &json, d.deadline)?;
            d.http.next_stream += 1;
            let handle = d.http.next_stream;
            d.http.streams.insert(handle, request);
            Ok(handle as i64)
        },
    )?;
    linker.func_wrap(
        PLINTH_ENV,
        "http_stream_send",
        |mut c: C, h: i64, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let (memory, ptr, len) = plugin_range(&mut c, ptr, len, "http_stream_send")?;
            let chunk = memory.data(&c)[ptr..ptr + len].to_vec();
            let cancel = c.data().cancel.clone();
            request(&mut c, h)?.send(&chunk, &cancel)?;
            Ok(0)
        },
    )?;
    linker.func_wrap(
        PLINTH_ENV,
        "http_stream_status",
        |mut c: C, h: i64| -> wasmtime::Result<i32> {
            let cancel = c.data().cancel.clone();
            let head = request(&mut c, h)?.wait_head(&cancel)?;
            let (status, headers) = (head.status, head.headers.clone());
            let d = c.data_mut();
            d.http.last_status = status;
            let keep = d.shared.http.enable_headers || d.http.headers_enabled;
            d.http.last_headers = keep.then_some(headers);
            Ok(i32::from(status))
        },
    )?;
    linker.func_wrap(
        PLINTH_ENV,
        "http_stream_read",
        |mut c: C, h: i64, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let (memory, ptr, len) = plugin_range(&mut c, ptr, len, "http_stream_read")?;
            let cancel = c.data().cancel.clone();
            let (data, d) = memory.data_and_store_mut(&mut c);
            let request = d
                .http
                .streams
                .get_mut(&(h as u64))
                .ok_or_else(|| no_such(h))?;
            let n = request.read(&mut data[ptr..ptr + len], &cancel)?;
            Ok(n as i32)
        },
    )?;
    linker.func_wrap(PLINTH_ENV, "http_stream_close", |mut c: C, h: i64| {
        c.data_mut().http.streams.remove(&(h as u64));
    })?;
    Ok(())
}

fn request<'a>(c: &'a mut C, h: i64) -> wasmtime::Result<&'a mut StreamingRequest> {
    c.data_mut()
        .http
        .streams
        .get_mut(&(h as u64))
        .ok_or_else(|| no_such(h))
}

fn no_such(h: i64) -> wasmtime::Error {
    Error::Http(format!(
        "no open HTTP stream has handle {h}: use the handle http_stream_start returned, before \
         http_stream_close and within the call that started it"
    ))
    .into()
}

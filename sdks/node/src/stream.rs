//! `StreamCall`: a streaming call (`plinth::Plugin::call_stream`) that index.js drives from
//! Node streams (`Plugin.prototype.callStream`).
//!
//! The plug-in runs on a thread of its own, not a libuv worker: it may wait on its input for
//! as long as the source takes, and libuv's few workers also serve `fs` (a file read stream
//! that feeds the call needs one). Its input is a bounded channel that JavaScript fills with
//! `push` (whose Promise resolves once the chunk is queued), then `end` or `fail`; its output
//! is a bounded channel that JavaScript drains with `nextOutput`, writing each chunk to the
//! Writable and waiting for `'drain'` before it asks for the next. The plug-in thus waits for
//! a slow reader or writer, and at most [`QUEUED`] chunks wait on either side. A plug-in with
//! async host functions runs as a future on napi-rs's runtime instead, over the same queues.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use napi::bindgen_prelude::{Buffer, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use plinth::ErrorKind;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Failure, Fallible};
use crate::host::CallShared;
use crate::plugin::PluginInner;

/// Chunks that may wait in each direction between the plug-in and JavaScript.
const QUEUED: usize = 1;

/// What a streaming call moved.
#[napi(object)]
pub struct StreamStats {
    /// Bytes the plug-in read from its input.
    pub input_bytes: i64,
    /// Bytes it wrote to its output.
    pub output_bytes: i64,
}

/// Why each side stopped, as JavaScript reported it; shared with the plug-in's thread.
#[derive(Default)]
struct Reasons {
    input: Mutex<Option<String>>,
    output: Mutex<Option<String>>,
}

fn set(slot: &Mutex<Option<String>>, reason: String) {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert(reason);
}

fn get(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// A streaming call in flight. Made by `Plugin.openStream`; `Plugin.callStream` (index.js)
/// drives it from Node streams, which is what most code wants.
#[napi]
pub struct StreamCall {
    function: String,
    input: Option<mpsc::Sender<Vec<u8>>>,
    output: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>>,
    reasons: Arc<Reasons>,
    result: Option<oneshot::Receiver<Fallible<plinth::StreamStats>>>,
    cancel: plinth::CancelHandle,
    cancelled: Arc<std::sync::atomic::AtomicBool>,
}

impl StreamCall {
    /// Starts `function` on `plugin` on a new thread.
    pub(crate) fn start(
        plugin: Arc<PluginInner>,
        function: String,
        call: Arc<CallShared>,
    ) -> Fallible<StreamCall> {
        let (input_tx, input_rx) = mpsc::channel(QUEUED);
        let (output_tx, output_rx) = mpsc::channel(QUEUED);
        let (done_tx, done_rx) = oneshot::channel();
        let reasons = Arc::new(Reasons::default());
        let cancel = plugin.cancel_handle();
        let mut reader = ChannelReader {
            chunks: input_rx,
            pending: Vec::new(),
            pos: 0,
            reasons: reasons.clone(),
        };
        let mut writer = ChannelWriter {
            chunks: Some(output_tx),
            reserving: None,
            reasons: reasons.clone(),
        };
        let name = function.clone();
        if plugin.is_async() {
            // Its host functions are awaited: the call is a future on napi-rs's runtime, and
            // its reads and writes await the queues, under the call's deadline.
            let place = plugin.place();
            napi::bindgen_prelude::spawn(async move {
                let result = plugin
                    .call_stream_async(place, &name, &mut reader, &mut writer, &call)
                    .await;
                drop(writer);
                drop(reader);
                let _ = done_tx.send(result);
            });
        } else {
            Self::thread(plugin, name, call, reader, writer, done_tx)?;
        }
        Ok(StreamCall {
            function,
            input: Some(input_tx),
            output: Arc::new(tokio::sync::Mutex::new(output_rx)),
            reasons,
            result: Some(done_rx),
            cancel,
            cancelled: Arc::default(),
        })
    }

    /// Runs a plug-in without async host functions on a thread of its own.
    fn thread(
        plugin: Arc<PluginInner>,
        name: String,
        call: Arc<CallShared>,
        mut reader: ChannelReader,
        mut writer: ChannelWriter,
        done_tx: oneshot::Sender<Fallible<plinth::StreamStats>>,
    ) -> Fallible<()> {
        std::thread::Builder::new()
            .name("plinth-stream".to_string())
            .spawn(move || {
                let result = plugin.call_stream(&name, &mut reader, &mut writer, &call);
                // The output ends (`nextOutput` gives null) before the result is known.
                drop(writer);
                drop(reader);
                let _ = done_tx.send(result);
            })
            .map(drop)
            .map_err(|e| {
                Failure::new(
                    ErrorKind::Other,
                    format!("cannot start a thread for the streaming call: {e}"),
                )
            })
    }
}

#[napi]
impl StreamCall {
    /// Queues a chunk of input. Resolves to true once it is queued (the plug-in has taken the
    /// chunks before it), or to false when the call no longer reads (it returned, or failed):
    /// stop pushing then. Push one chunk at a time, awaiting each.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn push<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "Buffer | Uint8Array")] chunk: Buffer,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let sender = self.input.clone();
        let chunk = chunk.to_vec();
        env.spawn_future(async move {
            match sender {
                Some(sender) if !chunk.is_empty() => Ok(sender.send(chunk).await.is_ok()),
                Some(sender) => Ok(!sender.is_closed()),
                None => Ok(false),
            }
        })
    }

    /// Ends the input: the plug-in reads the end of its stream after the queued chunks.
    #[napi]
    pub fn end(&mut self) {
        self.input = None;
    }

    /// Fails the input: the plug-in's next read fails, and so does the call, with kind
    /// `"stream"` and `reason` in its message.
    #[napi]
    pub fn fail(&mut self, reason: String) {
        set(&self.reasons.input, reason);
        self.input = None;
    }

    /// The next chunk of output, or null once the plug-in returned (then await `result()`).
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn next_output<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Option<Buffer>>> {
        let output = self.output.clone();
        env.spawn_future_with_callback(
            async move { Ok(output.lock().await.recv().await) },
            |_, chunk| Ok(chunk.map(Buffer::from)),
        )
    }

    /// Closes the output: the plug-in's next write fails, and so does the call, with kind
    /// `"stream"` and `reason` in its message. Call it when the Writable failed.
    #[napi]
    pub fn fail_output(&self, reason: String) {
        set(&self.reasons.output, reason);
        // Wakes a plug-in that waits for room in the queue. A pending `nextOutput` holds the
        // receiver; the plug-in's thread sees the reason before its next write anyway.
        if let Ok(mut output) = self.output.try_lock() {
            output.close();
        }
    }

    /// Stops the call: it rejects with kind `"cancelled"`, whether it was running, waiting for
    /// input or waiting for its output to be taken.
    #[napi]
    pub fn cancel(&mut self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.cancel.cancel();
        self.fail("the call was cancelled".to_string());
        self.fail_output("the call was cancelled".to_string());
    }

    /// The call's outcome, once the plug-in returned: what it moved, or a `PlinthError`. Once
    /// per call.
    #[napi(ts_return_type = "Promise<StreamStats>")]
    pub fn result<'env>(&mut self, env: &'env Env) -> napi::Result<PromiseRaw<'env, StreamStats>> {
        let Some(done) = self.result.take() else {
            return Err(Failure::new(
                ErrorKind::Other,
                "result() was already called for this streaming call",
            )
            .into_napi(env));
        };
        let function = self.function.clone();
        let cancelled = self.cancelled.clone();
        env.spawn_future_with_callback(async move { Ok(done.await) }, move |env, out| {
            let out = out.unwrap_or_else(|_| {
                Err(Failure::new(
                    ErrorKind::Other,
                    "the streaming call's thread ended without a result",
                ))
            });
            match out {
                Ok(stats) => Ok(StreamStats {
                    input_bytes: stats.input_bytes as i64,
                    output_bytes: stats.output_bytes as i64,
                }),
                Err(_) if cancelled.load(std::sync::atomic::Ordering::SeqCst) => Err(Failure::new(
                    ErrorKind::Cancelled,
                    format!("the streaming call of `{function}` was cancelled"),
                )
                .into_napi(env)),
                Err(f) => Err(f.into_napi(env)),
            }
        })
    }
}

/// The plug-in's input: the chunks JavaScript pushes.
struct ChannelReader {
    chunks: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
    pos: usize,
    reasons: Arc<Reasons>,
}

impl ChannelReader {
    /// Takes what `recv` gave: false at the end of the input (the sender is gone), or an
    /// error when JavaScript said why the input failed.
    fn took(&mut self, received: Option<Vec<u8>>) -> io::Result<bool> {
        match received {
            Some(chunk) => {
                self.pending = chunk;
                self.pos = 0;
                Ok(true)
            }
            None => match get(&self.reasons.input) {
                Some(reason) => Err(io::Error::other(reason)),
                None => Ok(false),
            },
        }
    }

    /// Copies what is pending to `buf`.
    fn give(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        n
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.pending.len() {
            let received = self.chunks.blocking_recv();
            if !self.took(received)? {
                return Ok(0);
            }
        }
        Ok(self.give(buf))
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.pos >= this.pending.len() {
            let received = ready!(this.chunks.poll_recv(cx));
            if !this.took(received)? {
                return Poll::Ready(Ok(()));
            }
        }
        let n = this.give(buf.initialize_unfilled());
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// The plug-in's output: chunks that JavaScript takes with `nextOutput`.
struct ChannelWriter {
    chunks: Option<mpsc::Sender<Vec<u8>>>,
    /// An async write waiting for room in the queue.
    reserving: Option<Reserving>,
    reasons: Arc<Reasons>,
}

type Reserving = Pin<
    Box<dyn Future<Output = Result<mpsc::OwnedPermit<Vec<u8>>, mpsc::error::SendError<()>>> + Send>,
>;

impl ChannelWriter {
    fn closed(&self) -> io::Error {
        let reason = get(&self.reasons.output)
            .unwrap_or_else(|| "JavaScript stopped taking output".to_string());
        io::Error::new(io::ErrorKind::BrokenPipe, reason)
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if get(&self.reasons.output).is_some() {
            return Err(self.closed());
        }
        let Some(chunks) = &self.chunks else {
            return Err(self.closed());
        };
        if buf.is_empty() {
            return Ok(0);
        }
        if chunks.blocking_send(buf.to_vec()).is_err() {
            self.chunks = None;
            return Err(self.closed());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if get(&this.reasons.output).is_some() {
            return Poll::Ready(Err(this.closed()));
        }
        let Some(chunks) = &this.chunks else {
            return Poll::Ready(Err(this.closed()));
        };
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let reserving = this
            .reserving
            .get_or_insert_with(|| Box::pin(chunks.clone().reserve_owned()));
        let permit = ready!(reserving.as_mut().poll(cx));
        this.reserving = None;
        match permit {
            Ok(permit) => {
                permit.send(buf.to_vec());
                Poll::Ready(Ok(buf.len()))
            }
            Err(_) => {
                this.chunks = None;
                Poll::Ready(Err(this.closed()))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

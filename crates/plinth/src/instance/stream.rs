//! A streaming call: the caller's reader and writer are lent to the stream functions
//! (`host/stream.rs`) for one call. A plug-in that does not read its input as a stream gets it
//! whole, read first; whatever the plug-in leaves as its classic output is written after what
//! it streamed.

use std::any::Any;
use std::io::{Read, Write};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Instance;
use crate::store::stream::{Borrowed, CallStreams, StreamGuard, StreamInput, StreamOutput};
use crate::{Error, Result};

/// What went through a streaming call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes of input the plug-in was given.
    pub input_bytes: u64,
    /// Bytes written to the output.
    pub output_bytes: u64,
}

impl Instance {
    /// Calls `function` with `input` and `output` as its streams.
    pub(crate) fn call_stream(
        &mut self,
        function: &str,
        input: &mut dyn Read,
        output: &mut dyn Write,
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<StreamStats> {
        let whole = if self.compiled.reads_stream {
            Vec::new()
        } else {
            let cap = self.compiled.settings.memory_budget();
            let mut whole = Vec::new();
            input
                .take(cap + 1)
                .read_to_end(&mut whole)
                .map_err(|e| input_failed(whole.len(), e))?;
            check_whole(&whole, cap)?;
            whole
        };
        let streams = CallStreams {
            input: if self.compiled.reads_stream {
                // SAFETY: the guard below is dropped before this function returns or unwinds,
                // and `input` outlives this function.
                StreamInput::Read(unsafe { Borrowed::read(input) })
            } else {
                StreamInput::Classic { pos: 0 }
            },
            // SAFETY: as above.
            output: StreamOutput::Write(unsafe { Borrowed::write(&mut *output) }),
            ..self.streaming_defaults()
        };
        let guard = self.lend(streams);
        let result = self.run(function, &whole, host_context);
        let streams = guard.finish();
        let stats = self.settled(result, &streams, whole.len())?;
        let rest = self.output();
        check_limit(&streams, rest.len())?;
        output
            .write_all(rest)
            .and_then(|()| output.flush())
            .map_err(|e| output_failed(streams.written, e))?;
        Ok(StreamStats {
            output_bytes: stats.output_bytes + rest.len() as u64,
            ..stats
        })
    }

    /// [`Instance::call_stream`] with an async reader and writer, for plug-ins built
    /// `with_async`: the stream functions await them under the call's deadline.
    pub(crate) async fn call_stream_async(
        &mut self,
        function: &str,
        input: &mut (dyn AsyncRead + Unpin + Send),
        output: &mut (dyn AsyncWrite + Unpin + Send),
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<StreamStats> {
        let whole = if self.compiled.reads_stream {
            if !self.compiled.has_async {
                return Err(Error::Stream(
                    "this plug-in reads its input as a stream, and an async stream needs the \
                     plug-in built for async calls: build it with `with_async(true)`, or use \
                     the blocking call_stream"
                        .into(),
                ));
            }
            Vec::new()
        } else {
            let cap = self.compiled.settings.memory_budget();
            let mut whole = Vec::new();
            (&mut *input)
                .take(cap + 1)
                .read_to_end(&mut whole)
                .await
                .map_err(|e| input_failed(whole.len(), e))?;
            check_whole(&whole, cap)?;
            whole
        };
        // Without async stream functions, a plug-in that writes to its stream has it collected
        // and written at the end.
        let stream_out = self.compiled.has_async;
        let streams = CallStreams {
            input: if self.compiled.reads_stream {
                // SAFETY: the guard below lives in this future and is dropped before it ends
                // or is dropped; `input` outlives the future. The call's own future (and the
                // stream functions' futures within it) is dropped before the guard.
                StreamInput::AsyncRead(unsafe { Borrowed::async_read(input) })
            } else {
                StreamInput::Classic { pos: 0 }
            },
            output: if stream_out {
                // SAFETY: as above.
                StreamOutput::AsyncWrite(unsafe { Borrowed::async_write(&mut *output) })
            } else {
                StreamOutput::Collect(Vec::new())
            },
            ..self.streaming_defaults()
        };
        let streams = if stream_out {
            streams
        } else {
            CallStreams {
                output_limit: self.compiled.settings.classic_output_limit(),
                ..streams
            }
        };
        let guard = self.lend(streams);
        let result = self.run_async(function, &whole, host_context).await;
        let streams = guard.finish();
        let stats = self.settled(result, &streams, whole.len())?;
        let mut rest = match &streams.output {
            StreamOutput::Collect(collected) => collected.clone(),
            _ => Vec::new(),
        };
        rest.extend_from_slice(self.output());
        check_limit(&streams, rest.len())?;
        output
            .write_all(&rest)
            .await
            .map_err(|e| output_failed(streams.written, e))?;
        output
            .flush()
            .await
            .map_err(|e| output_failed(streams.written, e))?;
        Ok(StreamStats {
            output_bytes: stats.output_bytes + rest.len() as u64,
            ..stats
        })
    }

    fn streaming_defaults(&self) -> CallStreams {
        CallStreams {
            output_limit: self.compiled.settings.output_limit.unwrap_or(u64::MAX),
            ..CallStreams::classic(0)
        }
    }

    fn lend(&mut self, streams: CallStreams) -> StreamGuard {
        self.store.data_mut().streams_touched = false;
        let limit = self.compiled.settings.classic_output_limit();
        StreamGuard::install(&self.store.data().streams, streams, limit)
    }

    /// The call's result given what its streams saw: a failed reader or writer is the cause
    /// of whatever the plug-in did next, so it is the error reported.
    fn settled(
        &mut self,
        result: Result<()>,
        streams: &CallStreams,
        whole: usize,
    ) -> Result<StreamStats> {
        self.store.data_mut().streams_touched = false;
        if let Some(Error::Stream(message)) = &streams.failure {
            if !matches!(result, Err(Error::Timeout { .. } | Error::Cancelled { .. })) {
                return Err(Error::Stream(message.clone()));
            }
        }
        result?;
        Ok(StreamStats {
            input_bytes: streams.read + whole as u64,
            output_bytes: streams.written,
        })
    }
}

fn check_whole(whole: &[u8], cap: u64) -> Result<()> {
    if whole.len() as u64 > cap {
        return Err(Error::Stream(format!(
            "the input stream is over {cap} bytes, the most this plug-in's memory can take at \
             once; it does not read its input as a stream (plinth:host/env stream_read), so \
             the host must give it the whole input: raise its memory limit or use a plug-in \
             that streams"
        )));
    }
    Ok(())
}

fn check_limit(streams: &CallStreams, more: usize) -> Result<()> {
    if streams.written + more as u64 > streams.output_limit {
        return Err(Error::Stream(format!(
            "the plug-in's output is {} bytes, over the call's output limit of {} bytes",
            streams.written + more as u64,
            streams.output_limit
        )));
    }
    Ok(())
}

fn input_failed(after: usize, e: std::io::Error) -> Error {
    Error::Stream(format!("the input stream failed after {after} bytes: {e}"))
}

fn output_failed(after: u64, e: std::io::Error) -> Error {
    Error::Stream(format!(
        "the output stream stopped taking bytes after {after} bytes: {e}"
    ))
}

//! The streams of the current call: where `stream_read` reads from and `stream_write` writes
//! to (see `docs/streaming.md`).
//!
//! - [`CallStreams`]: the input and output of the call that runs, with what moved and the
//!   first failure of the caller's reader or writer.
//! - [`StreamInput`], [`StreamOutput`]: the classic forms (the call's input bytes; output
//!   collected into the call's output) or the caller's reader and writer, borrowed for one call.
//! - [`Borrowed`]: a reader or writer lent by `call_stream` for the length of one call.
//! - [`StreamGuard`]: puts the classic forms back when the call ends, however it ends.

use std::io::{Read, Write};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncWrite};

/// Shared between the store (the host functions) and the call that lent the streams.
pub(crate) type StreamSlot = Arc<Mutex<CallStreams>>;

/// Locks `slot`; a panic while it was held (in a caller's reader, say) leaves nothing half
/// done that the next call could trip over, so a poisoned lock is used as it is.
pub(crate) fn lock(slot: &StreamSlot) -> MutexGuard<'_, CallStreams> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the call's input stream comes from.
pub(crate) enum StreamInput {
    /// A classic call: the call's input bytes, from this offset of the Extism input on.
    Classic { pos: u64 },
    /// `call_stream`'s reader.
    Read(Borrowed<dyn Read>),
    /// `call_stream_async`'s reader.
    AsyncRead(Borrowed<dyn AsyncRead + Unpin + Send>),
}

/// Where the call's output stream goes.
pub(crate) enum StreamOutput {
    /// A classic call: collected, and put in front of the call's output when it returns.
    Collect(Vec<u8>),
    /// `call_stream`'s writer.
    Write(Borrowed<dyn Write>),
    /// `call_stream_async`'s writer.
    AsyncWrite(Borrowed<dyn AsyncWrite + Unpin + Send>),
}

/// The streams of one call.
pub(crate) struct CallStreams {
    pub input: StreamInput,
    pub output: StreamOutput,
    /// Bytes the plug-in read from the input stream.
    pub read: u64,
    /// Bytes delivered to the output stream.
    pub written: u64,
    /// The most the output stream may carry in this call.
    pub output_limit: u64,
    /// The input stream ended (or failed): later reads return at once.
    pub input_done: bool,
    /// The first failure of the caller's reader or writer: the call fails with it.
    pub failure: Option<crate::Error>,
}

impl CallStreams {
    /// The streams of a classic call, with the output collected up to `output_limit` bytes.
    pub(crate) fn classic(output_limit: u64) -> CallStreams {
        CallStreams {
            input: StreamInput::Classic { pos: 0 },
            output: StreamOutput::Collect(Vec::new()),
            read: 0,
            written: 0,
            output_limit,
            input_done: false,
            failure: None,
        }
    }

    /// Records the first failure; later ones are consequences of it.
    pub(crate) fn fail(&mut self, error: crate::Error) {
        self.failure.get_or_insert(error);
    }
}

/// A reader or writer lent for the length of one call: the call that lends it holds the
/// borrow, and its [`StreamGuard`] takes the pointer back out of the store before the borrow
/// ends (when the call returns, unwinds, or its future is dropped).
pub(crate) struct Borrowed<T: ?Sized>(NonNull<T>);

impl<T: ?Sized> Clone for Borrowed<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized> Copy for Borrowed<T> {}

// SAFETY: a `Borrowed` is only dereferenced by the host functions of the call that lent it,
// on the thread that runs that call, while the lender waits for the call to end; the store
// moving between threads between calls never carries a live one (the guard clears it).
unsafe impl<T: ?Sized> Send for Borrowed<T> {}

macro_rules! lend {
    ($name:ident, $trait:path $(, $bound:path)*) => {
        impl Borrowed<dyn $trait $(+ $bound)*> {
            /// Lends `it` to the store for one call.
            ///
            /// # Safety
            /// The [`StreamGuard`] of the call must outlive every use, and drop before the
            /// borrow of `it` ends.
            pub(crate) unsafe fn $name<'a>(it: &'a mut (dyn $trait $(+ $bound)* + 'a)) -> Self {
                // SAFETY: only the lifetime changes; the caller keeps the borrow alive for as
                // long as the pointer is reachable (see above).
                let it: &'static mut (dyn $trait $(+ $bound)* + 'static) =
                    unsafe { std::mem::transmute(it) };
                Borrowed(NonNull::from(it))
            }

            /// The lent object.
            ///
            /// # Safety
            /// Only inside a host function of the call that lent it (see [`Borrowed`]).
            pub(crate) unsafe fn get<'x>(self) -> &'x mut (dyn $trait $(+ $bound)* + 'static) {
                let mut ptr = self.0;
                // SAFETY: see the type's doc; no other reference to the object is live while
                // the lender waits on the call.
                unsafe { ptr.as_mut() }
            }
        }
    };
}

lend!(read, Read);
lend!(write, Write);
lend!(async_read, AsyncRead, Unpin, Send);
lend!(async_write, AsyncWrite, Unpin, Send);

/// Puts the classic streams back into the slot when dropped, so that no lent pointer outlives
/// the call; [`StreamGuard::finish`] also hands back what the call left there.
pub(crate) struct StreamGuard {
    slot: StreamSlot,
    classic_limit: u64,
}

impl StreamGuard {
    /// Installs `streams` for the call that follows.
    pub(crate) fn install(slot: &StreamSlot, streams: CallStreams, classic_limit: u64) -> Self {
        *lock(slot) = streams;
        StreamGuard {
            slot: slot.clone(),
            classic_limit,
        }
    }

    /// The streams as the call left them; the slot has the classic ones again.
    pub(crate) fn finish(self) -> CallStreams {
        std::mem::replace(
            &mut *lock(&self.slot),
            CallStreams::classic(self.classic_limit),
        )
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut streams = lock(&self.slot);
        if !matches!(streams.input, StreamInput::Classic { .. })
            || !matches!(streams.output, StreamOutput::Collect(_))
        {
            *streams = CallStreams::classic(self.classic_limit);
        }
    }
}

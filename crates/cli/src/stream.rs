//! `plinth call --stdin`: stdin streamed to the plug-in and its output to stdout as it comes
//! (`Plugin::call_stream`).
//!
//! The runtime turns a failing reader or writer into a `plinth::Error::Stream` message, so
//! the wrappers here keep the original `io::Error`: `main` can then tell a reader of stdout
//! that went away (`| head -1`, a quiet exit) from a real failure.

use std::fmt;
use std::io::{self, IsTerminal, Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use plinth::Plugin;

use crate::{escape, StdoutError};

/// Runs one streaming call of `function` from stdin to stdout, within `timeout` if given.
pub fn run(
    plugin: &mut Plugin,
    function: &str,
    raw: bool,
    timeout: Option<Duration>,
) -> Result<()> {
    let terminal = io::stdout().is_terminal();
    let inner: Box<dyn Read> = match timeout {
        Some(limit) => Box::new(Pump::start(limit)),
        None => Box::new(io::stdin().lock()),
    };
    let mut input = Stdin {
        inner,
        failed: None,
    };
    let mut output = Stdout {
        inner: io::stdout().lock(),
        escaped: terminal && !raw,
        pending: Vec::new(),
        last: None,
        failed: None,
    };
    let result = plugin.call_stream(function, &mut input, &mut output);
    // The original errors first: the runtime's message only quotes them.
    if let Some(e) = output.failed.take() {
        return Err(StdoutError(e).into());
    }
    if let Some(e) = input.failed.take() {
        if let (Some(limit), Some(_)) = (
            timeout,
            e.get_ref().and_then(|e| e.downcast_ref::<Waited>()),
        ) {
            anyhow::bail!(
                "`{function}` timed out after {} ms waiting for more input on stdin; raise the \
                 limit with --timeout MS (or `timeout_ms` in the manifest)",
                limit.as_millis()
            );
        }
        return Err(e).context("cannot read the input from stdin");
    }
    let finished = output.finish(terminal);
    result?;
    finished.map_err(|e| StdoutError(e).into())
}

/// Stdin, keeping the first error it returns.
struct Stdin<R> {
    inner: R,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Stdin<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(keep(&mut self.failed, e)),
                Ok(n) => return Ok(n),
            }
        }
    }
}

/// Stdin read on a thread of its own, for a call with a time limit: the runtime checks its
/// deadline between reads, so a read that blocks on a stalled producer would hold the call
/// past it. The bounded channel keeps the read-ahead to a few chunks.
struct Pump {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
    deadline: Instant,
}

/// The error a `Pump` returns when the deadline passes while it waits for stdin.
#[derive(Debug)]
struct Waited;

impl fmt::Display for Waited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the call's time limit passed while waiting for stdin")
    }
}

impl std::error::Error for Waited {}

impl Pump {
    const CHUNK: usize = 64 * 1024;

    fn start(limit: Duration) -> Pump {
        let (send, chunks) = mpsc::sync_channel(4);
        // Never joined: at exit it may still be blocked reading stdin, which is harmless.
        std::thread::spawn(move || {
            let mut stdin = io::stdin().lock();
            loop {
                let mut buf = vec![0; Self::CHUNK];
                let chunk = match stdin.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(buf)
                    }
                };
                let last = !matches!(&chunk, Ok(b) if !b.is_empty());
                if send.send(chunk).is_err() || last {
                    return;
                }
            }
        });
        Pump {
            chunks,
            chunk: Vec::new(),
            at: 0,
            deadline: Instant::now() + limit,
        }
    }
}

impl Read for Pump {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            let wait = self.deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(wait) {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.at = 0;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, Waited));
                }
                // The end was sent already.
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Stdout, flushed after each chunk so that output appears as it comes, and escaped like a
/// classic call's output when it is a terminal. Keeps the first error it returns.
struct Stdout<W> {
    inner: W,
    escaped: bool,
    /// The start of a UTF-8 character that the end of the last chunk cut off (escaped mode):
    /// escaped alone it would show as `\xNN` bytes.
    pending: Vec<u8>,
    last: Option<u8>,
    failed: Option<io::Error>,
}

impl<W: Write> Stdout<W> {
    fn put(&mut self, buf: &[u8]) -> io::Result<()> {
        if !self.escaped {
            return self.inner.write_all(buf);
        }
        self.pending.extend_from_slice(buf);
        let keep = cut_char(&self.pending);
        let ready = self.pending.len() - keep;
        escape::write_escaped(&mut self.inner, &self.pending[..ready])?;
        self.pending.drain(..ready);
        Ok(())
    }

    /// After the call: what is left of a cut character, and on a terminal a newline after
    /// output that does not end with one, so that the shell's prompt starts its own line.
    fn finish(&mut self, terminal: bool) -> io::Result<()> {
        if !self.pending.is_empty() {
            escape::write_escaped(&mut self.inner, &self.pending)?;
            self.pending.clear();
        }
        if terminal && self.last.is_some_and(|b| b != b'\n') {
            self.inner.write_all(b"\n")?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Write for Stdout<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.put(buf) {
            Ok(()) => {
                self.last = buf.last().copied();
                Ok(buf.len())
            }
            Err(e) => Err(keep(&mut self.failed, e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| keep(&mut self.failed, e))
    }
}

/// Stores the first error and hands the runtime a copy of it.
fn keep(slot: &mut Option<io::Error>, e: io::Error) -> io::Error {
    let copy = io::Error::new(e.kind(), e.to_string());
    slot.get_or_insert(e);
    copy
}

/// How many bytes at the end of `bytes` are the start of a UTF-8 character that is not
/// complete yet (0 to 3).
fn cut_char(bytes: &[u8]) -> usize {
    for back in 1..=3.min(bytes.len()) {
        let b = bytes[bytes.len() - back];
        if b & 0xc0 == 0x80 {
            // A continuation byte: look further back for the lead byte.
            continue;
        }
        let len = match b {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => return 0,
        };
        return if len > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped_through(chunks: &[&[u8]], terminal: bool) -> String {
        let mut out = Stdout {
            inner: Vec::new(),
            escaped: true,
            pending: Vec::new(),
            last: None,
            failed: None,
        };
        for chunk in chunks {
            out.write_all(chunk).unwrap();
            out.flush().unwrap();
        }
        out.finish(terminal).unwrap();
        String::from_utf8(out.inner).unwrap()
    }

    #[test]
    fn a_character_cut_between_chunks_is_shown_whole() {
        let snowman = "☃".as_bytes();
        assert_eq!(
            escaped_through(
                &[b"a", &snowman[..1], &snowman[1..2], &snowman[2..], b"\x1b"],
                false
            ),
            "a☃\\x1b"
        );
        // A cut character that never completes is shown as its bytes.
        assert_eq!(
            escaped_through(&[b"a", &snowman[..2]], false),
            "a\\xe2\\x98"
        );
    }

    #[test]
    fn a_terminal_gets_a_last_newline() {
        assert_eq!(escaped_through(&[b"abc"], true), "abc\n");
        assert_eq!(escaped_through(&[b"abc\n"], true), "abc\n");
        assert_eq!(escaped_through(&[], true), "");
        assert_eq!(escaped_through(&[b"abc"], false), "abc");
    }

    #[test]
    fn cut_char_finds_incomplete_characters_only() {
        assert_eq!(cut_char(b""), 0);
        assert_eq!(cut_char(b"ab"), 0);
        assert_eq!(cut_char("é".as_bytes()), 0);
        assert_eq!(cut_char(&"é".as_bytes()[..1]), 1);
        assert_eq!(cut_char(&"☃".as_bytes()[..2]), 2);
        assert_eq!(cut_char(&"𝄞".as_bytes()[..3]), 3);
        assert_eq!(cut_char("𝄞".as_bytes()), 0);
        // Stray continuation bytes and invalid lead bytes are not held back.
        assert_eq!(cut_char(b"\x80\x80\x80"), 0);
        assert_eq!(cut_char(b"a\xff"), 0);
    }

    #[test]
    fn errors_are_kept_and_copied() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = Stdout {
            inner: Closed,
            escaped: false,
            pending: Vec::new(),
            last: None,
            failed: None,
        };
        let e = out.write_all(b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(out.failed.unwrap().kind(), io::ErrorKind::BrokenPipe);
    }
}

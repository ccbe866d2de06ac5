//! Logging: to a file (or stdout/stderr), or buffered for a custom drain.
//!
//! The buffer for `extism_log_custom` is bounded: it holds at most [`MAX_BUFFERED`] bytes of
//! lines, and when a new line does not fit, the oldest lines are dropped. The next
//! `extism_log_drain` hands out a line saying how many were dropped before the lines it kept.
//! A single line is cut to [`MAX_LINE`] bytes with a note. (Plug-in text in log lines is
//! already escaped and cut to 64 KiB by the runtime.)

use std::collections::VecDeque;
use std::ffi::{c_char, CString};
use std::io::Write;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::{guard, str_arg, ExtismSize};

/// Receives one buffered log line: `size` bytes at `data`, followed by a NUL.
pub type ExtismLogDrainFunctionType =
    Option<unsafe extern "C" fn(data: *const c_char, size: ExtismSize)>;

/// The most log text the custom-log buffer holds until it is drained (1 MiB).
pub const MAX_BUFFERED: usize = 1 << 20;
/// The longest line the buffer keeps whole (128 KiB: a plug-in's longest line and its prefix).
pub const MAX_LINE: usize = 128 << 10;

/// Bookkeeping cost counted for each line besides its text, so that a flood of empty-ish lines
/// is bounded too.
const LINE_OVERHEAD: usize = 64;

static BUFFER: Mutex<LogBuffer> = Mutex::new(LogBuffer::new());

struct LogBuffer {
    lines: VecDeque<CString>,
    /// Text and overhead of `lines`.
    size: usize,
    /// Lines dropped to make room since the last drain.
    dropped: u64,
    /// The line being written, and how many of its bytes did not fit.
    partial: Vec<u8>,
    cut: usize,
}

impl LogBuffer {
    const fn new() -> Self {
        LogBuffer {
            lines: VecDeque::new(),
            size: 0,
            dropped: 0,
            partial: Vec::new(),
            cut: 0,
        }
    }

    fn write(&mut self, mut bytes: &[u8]) {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            self.extend(&bytes[..i]);
            self.end_line();
            bytes = &bytes[i + 1..];
        }
        self.extend(bytes);
    }

    fn extend(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(MAX_LINE - self.partial.len());
        self.partial.extend_from_slice(&bytes[..take]);
        self.cut += bytes.len() - take;
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.partial);
        if self.cut > 0 {
            line.extend_from_slice(
                format!(" [log line truncated: {} more bytes not shown]", self.cut).as_bytes(),
            );
            self.cut = 0;
        }
        if line.is_empty() {
            return;
        }
        // C sees the line as a string too: it may hold no NUL.
        for b in line.iter_mut().filter(|b| **b == 0) {
            *b = b' ';
        }
        let line = CString::new(line).unwrap_or_default();
        self.size += line.as_bytes().len() + LINE_OVERHEAD;
        self.lines.push_back(line);
        while self.size > MAX_BUFFERED {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.size -= old.as_bytes().len() + LINE_OVERHEAD;
            self.dropped += 1;
        }
    }

    /// The buffered lines, oldest first, after a note on dropped lines if there were any.
    fn take(&mut self) -> VecDeque<CString> {
        let mut lines = std::mem::take(&mut self.lines);
        self.size = 0;
        if self.dropped > 0 {
            let note = format!(
                "plinth: {} log lines were dropped because the log buffer was full ({} KiB); \
                 call extism_log_drain more often",
                self.dropped,
                MAX_BUFFERED >> 10
            );
            lines.push_front(CString::new(note).unwrap_or_default());
            self.dropped = 0;
        }
        lines
    }
}

fn buffer() -> std::sync::MutexGuard<'static, LogBuffer> {
    BUFFER.lock().unwrap_or_else(|p| p.into_inner())
}

struct BufferWriter;

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        buffer().write(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn filter(level: Option<&str>) -> Option<EnvFilter> {
    EnvFilter::try_new(level.unwrap_or("error")).ok()
}

/// Sends Plinth's and plug-ins' logs at `log_level` (trace, debug, info, warn, error or a
/// tracing filter) to `filename` ("stdout" and "stderr" name the streams). Only the first
/// logging setup of a process takes effect; later ones return false.
#[no_mangle]
pub unsafe extern "C" fn extism_log_file(
    filename: *const c_char,
    log_level: *const c_char,
) -> bool {
    guard(false, || {
        let (Some(name), Some(filter)) = (str_arg(filename), filter(str_arg(log_level))) else {
            return false;
        };
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false);
        let result = match name {
            "stdout" => builder.with_writer(std::io::stdout).try_init(),
            "stderr" => builder.with_writer(std::io::stderr).try_init(),
            path => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(file) => builder.with_writer(Mutex::new(file)).try_init(),
                Err(_) => return false,
            },
        };
        result.is_ok()
    })
}

/// Buffers logs at `log_level` until `extism_log_drain` hands them out. The buffer holds at
/// most 1 MiB: when it is full, the oldest lines are dropped, and the next drain starts with a
/// line that says how many.
#[no_mangle]
pub unsafe extern "C" fn extism_log_custom(log_level: *const c_char) -> bool {
    guard(false, || {
        let Some(filter) = filter(str_arg(log_level)) else {
            return false;
        };
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(|| BufferWriter)
            .try_init()
            .is_ok()
    })
}

/// Calls `handler` once per buffered log line (without its newline, NUL-terminated), oldest
/// first, and empties the buffer.
#[no_mangle]
pub unsafe extern "C" fn extism_log_drain(handler: ExtismLogDrainFunctionType) {
    guard((), || {
        let Some(handler) = handler else { return };
        // Taken first: the handler may log, which writes to the buffer.
        let lines = buffer().take();
        for line in lines {
            handler(line.as_ptr(), line.as_bytes().len() as ExtismSize);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_drops_the_oldest_lines_and_counts_them() {
        let mut b = LogBuffer::new();
        let line = vec![b'x'; 1000];
        for i in 0..2000 {
            b.write(format!("{i} ").as_bytes());
            b.write(&line);
            b.write(b"\n");
        }
        assert!(b.size <= MAX_BUFFERED);
        let lines = b.take();
        let note = lines[0].to_str().unwrap();
        let kept = lines.len() as u64 - 1;
        assert_eq!(note, format!("plinth: {} log lines were dropped because the log buffer was full (1024 KiB); call extism_log_drain more often", 2000 - kept));
        assert!(lines[1]
            .to_str()
            .unwrap()
            .starts_with(&format!("{} ", 2000 - kept)));
        assert!(lines.back().unwrap().to_str().unwrap().starts_with("1999 "));
        assert!(b.take().is_empty(), "drained, and the count starts again");
    }

    #[test]
    fn a_long_line_is_cut_with_a_note() {
        let mut b = LogBuffer::new();
        b.write(&vec![b'y'; MAX_LINE + 5]);
        b.write(b"z\nnext\0line\n");
        let lines = b.take();
        assert_eq!(lines.len(), 2);
        let first = lines[0].to_str().unwrap();
        assert!(first.ends_with("y [log line truncated: 6 more bytes not shown]"));
        assert_eq!(lines[1].to_str().unwrap(), "next line");
    }
}

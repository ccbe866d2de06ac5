//! Logging: to a file (or stdout/stderr), or buffered for a custom drain.

use std::ffi::c_char;
use std::io::Write;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::{guard, str_arg, ExtismSize};

/// Receives one buffered log line.
pub type ExtismLogDrainFunctionType =
    Option<unsafe extern "C" fn(data: *const c_char, size: ExtismSize)>;

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct BufferWriter;

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        BUFFER
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
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

/// Buffers logs at `log_level` until `extism_log_drain` hands them out.
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

/// Calls `handler` once per buffered log line (without its newline) and empties the buffer.
#[no_mangle]
pub unsafe extern "C" fn extism_log_drain(handler: ExtismLogDrainFunctionType) {
    guard((), || {
        let Some(handler) = handler else { return };
        let text = std::mem::take(&mut *BUFFER.lock().unwrap_or_else(|p| p.into_inner()));
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            handler(line.as_ptr() as *const c_char, line.len() as ExtismSize);
        }
    })
}

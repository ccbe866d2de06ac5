//! Logging to the host: `info!`, `debug!`, `warn!`, `error!`, `trace!` and `log!`.

use crate::{abi, Memory};

/// How important a log line is, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// 0 in the ABI.
    Trace,
    /// 1.
    Debug,
    /// 2.
    Info,
    /// 3.
    Warn,
    /// 4.
    Error,
}

impl LogLevel {
    /// The ABI's number for the level (0 = trace .. 4 = error).
    pub const fn to_int(self) -> i32 {
        self as i32
    }
}

/// The least important level the host records, or `None` when its logging is off.
pub fn log_level() -> Option<LogLevel> {
    match unsafe { abi::get_log_level() } {
        0 => Some(LogLevel::Trace),
        1 => Some(LogLevel::Debug),
        2 => Some(LogLevel::Info),
        3 => Some(LogLevel::Warn),
        4 => Some(LogLevel::Error),
        _ => None,
    }
}

/// Whether the host records lines of `level`; the log macros skip formatting when it does not.
pub fn log_enabled(level: LogLevel) -> bool {
    log_level().is_some_and(|min| level >= min)
}

pub(crate) fn write(level: LogLevel, message: &str) {
    // A log line is not worth failing the call over.
    let Ok(mem) = Memory::from_bytes(message) else {
        return;
    };
    // The host frees the block.
    unsafe {
        match level {
            LogLevel::Trace => abi::log_trace(mem.offset()),
            LogLevel::Debug => abi::log_debug(mem.offset()),
            LogLevel::Info => abi::log_info(mem.offset()),
            LogLevel::Warn => abi::log_warn(mem.offset()),
            LogLevel::Error => abi::log_error(mem.offset()),
        }
    }
}

/// Logs a formatted line at a level: `log!(LogLevel::Info, "x = {}", x)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {{
        let level: $crate::LogLevel = $level;
        if $crate::log_enabled(level) {
            $crate::__private::log_message(level, &::std::format!($($arg)+));
        }
    }};
}

/// Logs a formatted line at level trace.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log!($crate::LogLevel::Trace, $($arg)+) };
}

/// Logs a formatted line at level debug.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log!($crate::LogLevel::Debug, $($arg)+) };
}

/// Logs a formatted line at level info.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log!($crate::LogLevel::Info, $($arg)+) };
}

/// Logs a formatted line at level warn.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log!($crate::LogLevel::Warn, $($arg)+) };
}

/// Logs a formatted line at level error.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log!($crate::LogLevel::Error, $($arg)+) };
}

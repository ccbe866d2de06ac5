//! Plug-in log lines go to `tracing` under the target `plinth::plugin`, tagged with the
//! plug-in's id; the level a plug-in sees follows the host's filter.

use tracing::level_filters::LevelFilter;
use tracing::Level;

pub const TARGET: &str = "plinth::plugin";

pub(crate) fn plugin_log(level: Level, plugin: &str, msg: &str) {
    match level {
        Level::TRACE => tracing::trace!(target: TARGET, plugin, "{msg}"),
        Level::DEBUG => tracing::debug!(target: TARGET, plugin, "{msg}"),
        Level::INFO => tracing::info!(target: TARGET, plugin, "{msg}"),
        Level::WARN => tracing::warn!(target: TARGET, plugin, "{msg}"),
        Level::ERROR => tracing::error!(target: TARGET, plugin, "{msg}"),
    }
}

/// The Extism level number for the host's current filter: 0 trace .. 4 error, `i32::MAX` off.
pub(crate) fn guest_log_level() -> i32 {
    let current = LevelFilter::current();
    if current == LevelFilter::OFF {
        i32::MAX
    } else if current >= LevelFilter::TRACE {
        0
    } else if current >= LevelFilter::DEBUG {
        1
    } else if current >= LevelFilter::INFO {
        2
    } else if current >= LevelFilter::WARN {
        3
    } else {
        4
    }
}

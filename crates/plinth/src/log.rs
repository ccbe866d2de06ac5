//! Plug-in log lines go to `tracing` under the target `plinth::plugin`, tagged with the
//! plug-in's id; the level a plug-in sees follows the host's filter.
//!
//! A log line is plug-in text on its way to a terminal or a log file, so:
//! - control characters are escaped (`\n`, `\r`, `\t`, `\0`, `\x1b`, `\u{85}`, and the
//!   Unicode bidi and line-separator characters), so a line cannot end early, forge another
//!   line, move the cursor or recolour the screen; bytes that are not UTF-8 read as `\xNN`;
//! - at most [`MAX_LINE`] bytes of text are kept, read straight from the plug-in's block (the
//!   rest is never copied), and a note says how many of the plug-in's bytes were left out.

use std::fmt::Write as _;

use tracing::level_filters::LevelFilter;
use tracing::Level;

/// The `tracing` target of plug-in log events.
pub const TARGET: &str = "plinth::plugin";

/// The most text, after escaping, that one plug-in log line turns into (64 KiB), besides the
/// truncation note.
pub const MAX_LINE: usize = 64 * 1024;

/// Whether the host's subscriber wants plug-in events at `level`: when it does not, the
/// plug-in's block is not even read.
pub(crate) fn enabled(level: Level) -> bool {
    match level {
        Level::TRACE => tracing::enabled!(target: TARGET, Level::TRACE),
        Level::DEBUG => tracing::enabled!(target: TARGET, Level::DEBUG),
        Level::INFO => tracing::enabled!(target: TARGET, Level::INFO),
        Level::WARN => tracing::enabled!(target: TARGET, Level::WARN),
        Level::ERROR => tracing::enabled!(target: TARGET, Level::ERROR),
    }
}

/// Logs the plug-in's `bytes` (the whole block) at `level`, escaped and cut to [`MAX_LINE`].
pub(crate) fn plugin_log(level: Level, plugin: &str, bytes: &[u8]) {
    let msg = line(bytes);
    match level {
        Level::TRACE => tracing::trace!(target: TARGET, plugin, "{msg}"),
        Level::DEBUG => tracing::debug!(target: TARGET, plugin, "{msg}"),
        Level::INFO => tracing::info!(target: TARGET, plugin, "{msg}"),
        Level::WARN => tracing::warn!(target: TARGET, plugin, "{msg}"),
        Level::ERROR => tracing::error!(target: TARGET, plugin, "{msg}"),
    }
}

/// The text of one log line: `bytes` escaped, at most [`MAX_LINE`] bytes of it, and a note
/// when some was left out.
pub(crate) fn line(bytes: &[u8]) -> String {
    // Escaping never shrinks text, so no more than MAX_LINE bytes are read; a cut inside a
    // character moves back to its start.
    let mut end = bytes.len().min(MAX_LINE);
    if end < bytes.len() {
        let start = end.saturating_sub(3);
        while end > start && bytes[end] & 0xc0 == 0x80 {
            end -= 1;
        }
    }
    let head = &bytes[..end];
    let mut out = String::with_capacity(head.len().min(MAX_LINE));
    let used = escape(head, &mut out, MAX_LINE);
    let left = bytes.len() - used;
    if left > 0 {
        let _ = write!(out, " [log line truncated: {left} more bytes not shown]");
    }
    out
}

/// Appends `bytes` to `out` with control characters escaped, stopping before `out` would pass
/// `limit` bytes. Returns how many bytes of `bytes` made it in.
fn escape(bytes: &[u8], out: &mut String, limit: usize) -> usize {
    let mut used = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let before = out.len();
            push_char(out, c);
            if out.len() > limit {
                out.truncate(before);
                return used;
            }
            used += c.len_utf8();
        }
        for b in chunk.invalid() {
            if out.len() + 4 > limit {
                return used;
            }
            let _ = write!(out, "\\x{b:02x}");
            used += 1;
        }
    }
    used
}

fn push_char(out: &mut String, c: char) {
    if !escape_control(c, out) {
        out.push(c);
    }
}

/// Writes the escape of `c` into `out` and returns true, or writes nothing and returns false
/// when `c` is safe as it is. The one table of what plug-in text may not carry raw to a
/// terminal or a log line: `\n`, `\r`, `\t`, `\0`, `\xNN` for other ASCII controls and DEL,
/// and `\u{N}` for C1 controls and the characters that reorder or break lines (bidi
/// controls, line and paragraph separators). Plinth's log lines and the `plinth` command
/// both use it.
pub fn escape_control(c: char, out: &mut String) -> bool {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0' => out.push_str("\\0"),
        c if (c as u32) < 0x20 || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        _ => return false,
    }
    true
}

/// C1 controls, and the characters that reorder or break lines on screen.
fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}'
        | '\u{2028}' | '\u{2029}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_control_character() {
        assert_eq!(line(b"a\nb\r\tc\0"), "a\\nb\\r\\tc\\0");
        assert_eq!(line(b"\x1b[2J\x7f"), "\\x1b[2J\\x7f");
        assert_eq!(line("x\u{85}\u{202e}y".as_bytes()), "x\\u{85}\\u{202e}y");
        assert_eq!(line(b"ok \xff\xfe"), "ok \\xff\\xfe");
        assert_eq!(line("héllo ✓".as_bytes()), "héllo ✓");
    }

    #[test]
    fn long_lines_are_cut_with_a_note() {
        let text = vec![b'a'; MAX_LINE + 10];
        let l = line(&text);
        assert!(l.starts_with(&"a".repeat(MAX_LINE)));
        assert!(
            l.ends_with(" [log line truncated: 10 more bytes not shown]"),
            "{}",
            &l[MAX_LINE..]
        );

        // Escapes count against the limit: 4 bytes of text per ESC.
        let l = line(&vec![0x1b; MAX_LINE]);
        assert!(l.starts_with("\\x1b"));
        let shown = MAX_LINE / 4;
        assert!(
            l.ends_with(&format!(
                "[log line truncated: {} more bytes not shown]",
                MAX_LINE - shown
            )),
            "{}",
            &l[l.len() - 60..]
        );

        // A character is never split.
        let text = format!("a{}", "é".repeat(MAX_LINE / 2));
        let l = line(text.as_bytes());
        assert!(!l.contains("\\x"), "{}", &l[l.len() - 60..]);
        assert!(
            l.ends_with("[log line truncated: 2 more bytes not shown]"),
            "{}",
            &l[l.len() - 60..]
        );
    }
}

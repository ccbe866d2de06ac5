//! jtool: a command-line JSON/text tool whose subcommands are plug-ins found in a directory.
//!
//! - [`config`] finds the plug-in directory (flag, environment, config file).
//! - [`discover`] lists the plug-ins in it and says which files were skipped and why.
//! - [`host`] loads a plug-in with exactly the grants its manifest names and calls it.
//! - [`builtin`] holds the commands jtool has without plug-ins.

pub mod builtin;
pub mod config;
pub mod discover;
pub mod host;

/// Exit status: the command ran and succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit status: the command failed (the plug-in returned an error, trapped, timed out or ran
/// out of memory; a built-in got input it cannot read).
pub const EXIT_FAILED: i32 = 1;
/// Exit status: jtool was used wrongly (bad flags, a missing or invalid config file, a
/// plug-in directory that does not exist).
pub const EXIT_USAGE: i32 = 2;
/// Exit status: no built-in or plug-in has the command's name.
pub const EXIT_NO_COMMAND: i32 = 3;
/// Exit status: the plug-in exists but cannot be loaded (an invalid manifest, a file that is
/// not WebAssembly, a missing `run` export, an allowed path that does not exist).
pub const EXIT_LOAD: i32 = 4;

/// Plug-in text made safe for a terminal: control characters, escape sequences and
/// line-breaking or reordering characters come out as visible escapes (`\x1b`, `\n`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !plinth::escape_control(c, &mut out) {
            out.push(c);
        }
    }
    out
}

/// [`escape`] for bytes that may not be UTF-8: invalid bytes read as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls_and_bad_utf8() {
        assert_eq!(escape("a\x1b[2Jb\nc"), "a\\x1b[2Jb\\nc");
        assert_eq!(escape("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(escape_bytes(b"ok\xff\x07"), "ok\\xff\\x07");
    }
}

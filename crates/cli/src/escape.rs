//! Plug-in text on its way to the terminal. Error messages and names are one line each, so
//! every control character in them is escaped and long ones are cut with a note. A call's
//! output keeps its newlines and tabs, and is escaped only when it goes to a terminal (see
//! `call.rs`).
//!
//! Escapes: `\n`, `\r`, `\t`, `\0`, `\xNN` for other ASCII controls, DEL and bytes that are not
//! UTF-8, and `\u{N}` for C1 controls and the Unicode characters that reorder or break lines
//! (bidi controls, line and paragraph separators).

use std::fmt::Write as _;
use std::io::{self, Write};

/// The most an error message may take on screen, escapes included (8 KiB).
pub const MAX_ERROR: usize = 8 * 1024;

/// Longest plug-in name (module, export or import) shown by `plinth info`.
pub const MAX_NAME: usize = 1024;

/// What passes unescaped besides printable text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Nothing: the text is one line.
    Nothing,
    /// Newlines and tabs: the text is multi-line output.
    Layout,
}

/// `text` on one line, at most `limit` bytes of it, and a note saying how much was left out.
pub fn one_line(text: &[u8], limit: usize) -> String {
    let mut out = String::new();
    let used = pieces(text, Keep::Nothing, |piece, plain| {
        let room = limit - out.len();
        let take = match plain {
            // Plain text may be cut, but not inside a character.
            true => piece.floor_char_boundary(room.min(piece.len())),
            false if piece.len() <= room => piece.len(),
            false => 0,
        };
        out.push_str(&piece[..take]);
        take
    });
    if used < text.len() {
        let _ = write!(
            out,
            " [truncated: {} more bytes not shown]",
            text.len() - used
        );
    }
    out
}

/// Writes `bytes` with control characters other than newline and tab escaped.
pub fn write_escaped(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let mut result = Ok(());
    pieces(bytes, Keep::Layout, |piece, _| {
        result = w.write_all(piece.as_bytes());
        if result.is_ok() {
            piece.len()
        } else {
            0
        }
    });
    result
}

/// Hands `bytes` to `emit` as runs of plain text (`true`) and escapes (`false`). `emit`
/// returns how many bytes of the piece it took; less than all stops the walk. Returns how
/// many bytes of `bytes` were taken.
fn pieces(bytes: &[u8], keep: Keep, mut emit: impl FnMut(&str, bool) -> usize) -> usize {
    let mut used = 0;
    let mut escape = String::new();
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let mut run = 0;
        for (i, c) in valid.char_indices() {
            escape.clear();
            if !escaped(c, keep, &mut escape) {
                continue;
            }
            if run < i {
                let took = emit(&valid[run..i], true);
                used += took;
                if took < i - run {
                    return used;
                }
            }
            if emit(&escape, false) < escape.len() {
                return used;
            }
            used += c.len_utf8();
            run = i + c.len_utf8();
        }
        if run < valid.len() {
            let took = emit(&valid[run..], true);
            used += took;
            if took < valid.len() - run {
                return used;
            }
        }
        for b in chunk.invalid() {
            escape.clear();
            let _ = write!(escape, "\\x{b:02x}");
            if emit(&escape, false) < escape.len() {
                return used;
            }
            used += 1;
        }
    }
    used
}

/// Writes the escape for `c` into `out`; false when `c` passes as it is. The table is the
/// runtime's, shared with plug-in log lines; output keeps its layout characters.
fn escaped(c: char, keep: Keep, out: &mut String) -> bool {
    if keep == Keep::Layout && matches!(c, '\n' | '\t') {
        return false;
    }
    plinth::escape_control(c, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        write_escaped(&mut out, bytes).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_line_escapes_everything() {
        assert_eq!(one_line(b"a\nb\tc\r\0", 100), "a\\nb\\tc\\r\\0");
        assert_eq!(one_line(b"\x1b[2J\x7f\xff", 100), "\\x1b[2J\\x7f\\xff");
        assert_eq!(
            one_line("\u{9b}x\u{202e}".as_bytes(), 100),
            "\\u{9b}x\\u{202e}"
        );
        assert_eq!(one_line("naïve ✓".as_bytes(), 100), "naïve ✓");
    }

    #[test]
    fn one_line_cuts_with_a_note() {
        assert_eq!(
            one_line(b"abcdef", 4),
            "abcd [truncated: 2 more bytes not shown]"
        );
        // An escape is never split.
        assert_eq!(
            one_line(b"ab\x1bc", 5),
            "ab [truncated: 2 more bytes not shown]"
        );
        assert_eq!(
            one_line("aé".as_bytes(), 2),
            "a [truncated: 2 more bytes not shown]"
        );
    }

    #[test]
    fn output_keeps_layout() {
        assert_eq!(output(b"a\tb\nc"), "a\tb\nc");
        assert_eq!(output(b"a\rb\x1b[31mc\x08"), "a\\rb\\x1b[31mc\\x08");
        assert_eq!(output(b"\xe2\x82"), "\\xe2\\x82");
    }
}

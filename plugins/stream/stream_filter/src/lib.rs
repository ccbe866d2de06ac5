//! Line filters that stream: `grep` keeps the lines of the input that contain config key
//! `pattern` (default `ERROR`), `count_lines` counts the lines. Both hold one 64 KiB chunk (and
//! the current line, when a line is longer) whatever the size of the input, and work on bytes,
//! so a line or a UTF-8 character cut by a chunk boundary is matched as a whole.

use std::io::{BufRead, BufReader, BufWriter, Write};

use memchr::memmem::Finder;
use plinth_pdk::*;

const CHUNK: usize = 64 * 1024;
const DEFAULT_PATTERN: &str = "ERROR";

#[plugin_fn]
pub fn grep() -> FnResult<()> {
    let pattern = config::get("pattern")?.unwrap_or_else(|| DEFAULT_PATTERN.to_string());
    if pattern.contains('\n') {
        return Err(Error::msg(
            "config key `pattern` contains a newline: grep matches within one line, so give a pattern without \\n",
        )
        .into());
    }
    let finder = Finder::new(pattern.as_bytes());
    let mut input = BufReader::with_capacity(CHUNK, stream::input_stream());
    let mut output = BufWriter::with_capacity(CHUNK, stream::output_stream());
    // The start of a line that the end of the last chunk cut off.
    let mut partial = Vec::new();
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        match memchr::memrchr(b'\n', chunk) {
            None => partial.extend_from_slice(chunk),
            Some(last) => {
                let mut whole = &chunk[..=last];
                if !partial.is_empty() {
                    let first = memchr::memchr(b'\n', whole).unwrap_or(last);
                    partial.extend_from_slice(&whole[..=first]);
                    if finder.find(&partial).is_some() {
                        output.write_all(&partial)?;
                    }
                    partial.clear();
                    whole = &whole[first + 1..];
                }
                write_matching_lines(whole, &finder, &mut output)?;
                partial.extend_from_slice(&chunk[last + 1..]);
            }
        }
        input.consume(len);
    }
    // The last line, when the input does not end with a newline.
    if !partial.is_empty() && finder.find(&partial).is_some() {
        output.write_all(&partial)?;
    }
    output.flush()?;
    Ok(())
}

/// Writes the lines of `lines` (whole lines, each ending with `\n`) that contain the pattern.
/// Searches the whole block for the pattern, not line by line, so lines without a match cost
/// only the search.
fn write_matching_lines(lines: &[u8], finder: &Finder, output: &mut impl Write) -> FnResult<()> {
    let mut pos = 0;
    while pos < lines.len() {
        let Some(found) = finder.find(&lines[pos..]) else {
            break;
        };
        let at = pos + found;
        let start = memchr::memrchr(b'\n', &lines[pos..at]).map_or(pos, |i| pos + i + 1);
        let end = memchr::memchr(b'\n', &lines[at..]).map_or(lines.len(), |i| at + i + 1);
        output.write_all(&lines[start..end])?;
        pos = end;
    }
    Ok(())
}

/// The number of lines of the input, in decimal: its newlines, plus one for a last line
/// without a newline.
#[plugin_fn]
pub fn count_lines() -> FnResult<()> {
    let mut input = BufReader::with_capacity(CHUNK, stream::input_stream());
    let mut lines = 0u64;
    let mut last = b'\n';
    loop {
        let chunk = input.fill_buf()?;
        let Some(&end) = chunk.last() else {
            break;
        };
        // A word at a time: lines are short, so stopping at each newline would cost more.
        lines += bytecount::count(chunk, b'\n') as u64;
        last = end;
        let len = chunk.len();
        input.consume(len);
    }
    if last != b'\n' {
        lines += 1;
    }
    stream::output_stream().write_all(lines.to_string().as_bytes())?;
    Ok(())
}

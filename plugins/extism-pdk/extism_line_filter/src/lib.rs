//! `grep` on the whole input at once: keeps the lines that contain config key `pattern`
//! (default `ERROR`). Same matching as stream_filter's `grep`, with classic input and output.
use extism_pdk::*;
use memchr::memmem::Finder;

#[plugin_fn]
pub fn grep(input: Vec<u8>) -> FnResult<Vec<u8>> {
    let pattern = config::get("pattern")?.unwrap_or_else(|| "ERROR".to_string());
    if pattern.contains('\n') {
        return Err(Error::msg(
            "config key `pattern` contains a newline: grep matches within one line, so give a pattern without \\n",
        )
        .into());
    }
    let finder = Finder::new(pattern.as_bytes());
    let mut output = Vec::new();
    // Search the whole input for the pattern and take the line around each match, so lines
    // without a match cost only the search.
    let mut pos = 0;
    while pos < input.len() {
        let Some(found) = finder.find(&input[pos..]) else {
            break;
        };
        let at = pos + found;
        let start = memchr::memrchr(b'\n', &input[pos..at]).map_or(pos, |i| pos + i + 1);
        let end = memchr::memchr(b'\n', &input[at..]).map_or(input.len(), |i| at + i + 1);
        output.extend_from_slice(&input[start..end]);
        pos = end;
    }
    Ok(output)
}

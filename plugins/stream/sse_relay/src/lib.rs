//! A server-sent-events relay: `relay` reads the upstream at config key `upstream` (a stream of
//! JSON lines, say an order feed) as the server sends it, and writes each line to its output
//! stream as an event the moment it arrives:
//!
//! ```text
//! id: 1
//! event: order.paid          <- the line's "type" field, or "message"
//! data: {"type":"order.paid","id":"o-17"}
//! ```
//!
//! A line that is not JSON becomes an SSE comment (`: skipped ...`), so nothing the upstream
//! sends can break the event framing: every `data:` line is compact JSON, without newlines.
//! When the upstream ends, an `end` event says so. It holds one line at a time, whatever the
//! length of the feed.

use std::io::{BufRead, BufReader, Write};

use plinth_pdk::*;
use serde_json::Value;

/// Lines longer than this are skipped rather than held: the upstream is not trusted.
const MAX_LINE: usize = 64 * 1024;

#[plugin_fn]
pub fn relay() -> FnResult<()> {
    let url = config::get("upstream")?
        .ok_or_else(|| Error::msg("config key `upstream` is not set: give the feed's URL"))?;
    let mut upstream = HttpStream::start(&HttpRequest::new(url.clone()))?;
    let status = upstream.status()?;
    if status != 200 {
        return Err(Error::msg(format!("the upstream {url} answered status {status}")).into());
    }
    let mut lines = BufReader::new(upstream);
    let mut out = stream::output_stream();
    let mut line = Vec::new();
    let mut id = 0u64;
    loop {
        line.clear();
        if read_line(&mut lines, &mut line)? == 0 {
            break;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        // One write per event: the host delivers it at once.
        let event = match serde_json::from_slice::<Value>(text) {
            Ok(value) if text.len() <= MAX_LINE => {
                id += 1;
                let kind = value
                    .get("type")
                    .and_then(Value::as_str)
                    .filter(|t| is_event_name(t))
                    .unwrap_or("message");
                format!("id: {id}\nevent: {kind}\ndata: {value}\n\n")
            }
            _ => format!(": skipped a line of {} bytes that is not JSON\n\n", text.len()),
        };
        out.write_all(event.as_bytes())?;
    }
    out.write_all(format!("event: end\ndata: {{\"events\":{id}}}\n\n").as_bytes())?;
    Ok(())
}

/// Reads one line into `line` (its first `MAX_LINE + 1` bytes; the rest of a longer line is
/// read and dropped). The number of bytes read, 0 at the end.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(total);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_LINE + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..take.min(room)]);
        input.consume(take);
        total += take;
        if done {
            return Ok(total);
        }
    }
}

/// An event name the SSE framing keeps as it is: no line breaks, no colon, not too long.
fn is_event_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

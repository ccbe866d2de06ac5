//! Streaming behaviours for host tests and benchmarks: `echo` copies each chunk as it comes
//! (time to first byte), `never_reads` answers without reading its input, `flood` writes
//! until the host stops it (the output cap), `read_all_then_write` answers only at the end,
//! `stream_then_return` mixes a streamed output with a whole input and a returned output.

use std::io::{self, Read, Write};

use plinth_pdk::*;

const CHUNK: usize = 64 * 1024;

/// Writes each chunk it reads (up to 64 KiB) at once, unbuffered.
#[plugin_fn]
pub fn echo() -> FnResult<()> {
    let mut input = stream::input_stream();
    let mut output = stream::output_stream();
    let mut buf = vec![0; CHUNK];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        output.write_all(&buf[..n])?;
    }
}

/// Writes `done` and returns without reading any input.
#[plugin_fn]
pub fn never_reads() -> FnResult<()> {
    stream::output_stream().write_all(b"done")?;
    Ok(())
}

/// Writes 64 KiB chunks of `x` until a write fails (the host's output cap, or a closed
/// output), and fails with that error.
#[plugin_fn]
pub fn flood() -> FnResult<()> {
    let mut output = stream::output_stream();
    let chunk = vec![b'x'; CHUNK];
    loop {
        output.write_all(&chunk)?;
    }
}

/// Reads the whole input (one chunk at a time; nothing is kept) and only then writes its
/// length in bytes, in decimal.
#[plugin_fn]
pub fn read_all_then_write() -> FnResult<()> {
    let len = io::copy(&mut stream::input_stream(), &mut io::sink())?;
    stream::output_stream().write_all(len.to_string().as_bytes())?;
    Ok(())
}

/// Takes its input whole (a parameter: the PDK reads it through the stream), writes
/// `streamed:` to the output stream and returns the input: the output is `streamed:` followed
/// by the input, on every host.
#[plugin_fn]
pub fn stream_then_return(input: Vec<u8>) -> FnResult<Vec<u8>> {
    stream::output_stream().write_all(b"streamed:")?;
    Ok(input)
}

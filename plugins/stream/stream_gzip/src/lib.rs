//! gzip and gunzip as streams: `gzip` compresses its input (config key `level`, 0 to 9,
//! default 6), `gunzip` decompresses a gzip stream (several members, as `gunzip` does). Each
//! holds a 64 KiB chunk and flate2's window, whatever the size of the data.

use std::io::{self, BufReader, Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use plinth_pdk::*;

const CHUNK: usize = 64 * 1024;

#[plugin_fn]
pub fn gzip() -> FnResult<()> {
    let level = match config::get("level")? {
        None => Compression::default(),
        Some(text) => match text.trim().parse::<u32>() {
            Ok(level) if level <= 9 => Compression::new(level),
            _ => {
                return Err(Error::msg(format!(
                    "config key `level` is {text:?}: give a compression level from 0 (none) to 9 (smallest)"
                ))
                .into())
            }
        },
    };
    let mut input = stream::input_stream();
    // The encoder writes compressed blocks to the output as they are ready.
    let mut encoder = GzEncoder::new(stream::output_stream(), level);
    let mut buf = vec![0; CHUNK];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        encoder.write_all(&buf[..n])?;
    }
    encoder.finish()?;
    Ok(())
}

#[plugin_fn]
pub fn gunzip() -> FnResult<()> {
    let mut decoder = MultiGzDecoder::new(BufReader::with_capacity(CHUNK, stream::input_stream()));
    let mut output = stream::output_stream();
    let mut buf = vec![0; CHUNK];
    loop {
        let n = decoder.read(&mut buf).map_err(not_gzip)?;
        if n == 0 {
            return Ok(());
        }
        output.write_all(&buf[..n])?;
    }
}

/// flate2 reports bad data as these kinds; other errors (the host's stream) pass unchanged.
fn not_gzip(error: io::Error) -> Error {
    match error.kind() {
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
            Error::msg(format!(
                "the input is not valid gzip data ({error}): gunzip takes a gzip stream (RFC 1952), such as gzip's output"
            ))
        }
        _ => error.into(),
    }
}

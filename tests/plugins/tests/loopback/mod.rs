//! A loopback HTTP/1.1 server for the plug-in HTTP tests, so they need no network.
//! Routes: GET /hello → 200 "hello from loopback"; GET /missing → 404 "not here";
//! anything else → 200 "<METHOD> x-plinth=<that header> body=<request body>" (a chunked
//! request body is read too).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

/// Starts the server on a free port and returns its base URL, `http://127.0.0.1:PORT`.
/// It serves until the test process ends.
pub fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let base = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let _ = serve(stream);
            });
        }
    });
    base
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let (mut length, mut x_plinth, mut chunked) = (0usize, String::new(), false);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = value.trim().to_string();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "x-plinth" => x_plinth = value,
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    if chunked {
        // A streamed request body: hex size lines, each chunk, a 0-size chunk at the end.
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            if n == 0 {
                reader.read_line(&mut String::new())?;
                break;
            }
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let (status, text) = match (method.as_str(), path.as_str()) {
        ("GET", "/hello") => ("200 OK", "hello from loopback".to_string()),
        ("GET", "/missing") => ("404 Not Found", "not here".to_string()),
        _ => (
            "200 OK",
            format!(
                "{method} x-plinth={x_plinth} body={}",
                String::from_utf8_lossy(&body)
            ),
        ),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}

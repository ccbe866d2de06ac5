//! Test support: a WAT prelude that imports the whole Extism ABI, and a loopback HTTP server.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Every `extism:host/env` import, generated from the runtime's ABI table
/// ([`plinth::abi::wat_imports`]), plus helpers written in wasm:
/// `$copy_in(ptr, len) -> handle` copies linear memory into a new block,
/// `$copy_out(handle, dst)` copies a block into linear memory,
/// `$echo_input` copies the input to the output the way the PDKs do (8 bytes at a time),
/// `$output_i64(v)` outputs an 8-byte little-endian number,
/// `$output_block(h)` outputs a whole block,
/// `$fail(ptr, len)` sets an error message from linear memory.
pub const PRELUDE: Prelude = Prelude;

/// See [`PRELUDE`]: its text is its `Display`.
#[derive(Clone, Copy)]
pub struct Prelude;

impl std::fmt::Display for Prelude {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&plinth::abi::wat_imports(plinth::abi::ENV))?;
        f.write_str(HELPERS)
    }
}

/// The helpers of [`PRELUDE`], written in wasm over the ABI's imports.
const HELPERS: &str = r#"
  (func $copy_in (param $ptr i32) (param $len i32) (result i64)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $h))

  (func $copy_out (param $h i64) (param $dst i32)
    (local $i i64) (local $n i64)
    (local.set $n (call $length (local.get $h)))
    (block $d (loop $l
      (br_if $d (i64.ge_u (local.get $i) (local.get $n)))
      (i32.store8 (i32.add (local.get $dst) (i32.wrap_i64 (local.get $i)))
                  (call $load_u8 (i64.add (local.get $h) (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l))))

  (func $echo_input
    (local $len i64) (local $out i64) (local $i i64)
    (local.set $len (call $input_length))
    (local.set $out (call $alloc (local.get $len)))
    (block $d (loop $l
      (br_if $d (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $len)))
      (call $store_u64 (i64.add (local.get $out) (local.get $i)) (call $input_load_u64 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 8)))
      (br $l)))
    (block $d2 (loop $l2
      (br_if $d2 (i64.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $out) (local.get $i)) (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l2)))
    (call $output_set (local.get $out) (local.get $len)))

  (func $output_i64 (param $v i64) (local $h i64)
    (local.set $h (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $h) (local.get $v))
    (call $output_set (local.get $h) (i64.const 8)))

  (func $output_block (param $h i64)
    (call $output_set (local.get $h) (call $length (local.get $h))))

  (func $fail (param $ptr i32) (param $len i32)
    (call $error_set (call $copy_in (local.get $ptr) (local.get $len))))
"#;

/// Runs `f` on its own thread and fails the test if it has not finished within `limit`, so
/// that a hang shows as a failure instead of a stuck test run. The bounds are generous: they
/// detect hangs, they do not measure speed.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}: the host hangs"))
}

/// A plug-in module: the prelude, one page of linear memory, and `body`.
pub fn wat(body: &str) -> String {
    format!("(module {PRELUDE}\n (memory (export \"memory\") 1)\n {body})")
}

/// A module that echoes its input from export `echo`.
pub fn echo_wat() -> String {
    wat(r#"(func (export "echo") (result i32) (call $echo_input) (i32.const 0))"#)
}

/// What a request to [`HttpServer`] looked like.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A small HTTP/1.1 server on 127.0.0.1 for tests. Routes:
/// `/hello` 200 "hello from the server" (with header `x-test: yes`),
/// `/echo` 200 with the request body, `/status/NNN` that status,
/// `/big/N` N bytes of 'x', `/redirect-to/URL` 302 to URL (rest of the path),
/// `/slow` waits 5 s before answering,
/// `/sleep/MS` waits MS milliseconds, then 200 "slept",
/// `/sleep-redirect/MS/URL` waits MS milliseconds, then 302 to URL,
/// `/redirect/CODE/URL` answers status CODE with `location: URL`,
/// `/hold` answers a chunked body: "first\n" at once, "second\n" after [`HttpServer::release`].
/// Chunked request bodies are read as well as `content-length` ones.
pub struct HttpServer {
    pub port: u16,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    released: Arc<AtomicBool>,
}

impl HttpServer {
    pub fn start() -> HttpServer {
        Self::start_on("127.0.0.1:0")
    }

    /// The same server on the IPv6 loopback, `[::1]`.
    pub fn start_v6() -> HttpServer {
        Self::start_on("[::1]:0")
    }

    fn start_on(bind: &str) -> HttpServer {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let port = addr.port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let released = Arc::new(AtomicBool::new(false));
        let (stop2, seen2, released2) = (stop.clone(), seen.clone(), released.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = conn else { continue };
                let (seen, released) = (seen2.clone(), released2.clone());
                std::thread::spawn(move || serve(stream, seen, released));
            }
        });
        HttpServer {
            port,
            addr,
            stop,
            seen,
            released,
        }
    }

    /// Lets `/hold` send the rest of its answer.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// `http://127.0.0.1:PORT/path`, or `http://[::1]:PORT/path` for [`HttpServer::start_v6`].
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

fn serve(
    stream: std::net::TcpStream,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    released: Arc<AtomicBool>,
) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    let mut content_length = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-length" {
                content_length = v.parse().unwrap_or(0);
            }
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).ok();
    if chunked {
        body = read_chunked(&mut reader);
    }
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        headers,
        body: body.clone(),
    });
    let mut out = stream;
    let (status, extra, payload): (u16, String, Vec<u8>) = if path == "/hello" {
        (
            200,
            "x-test: yes\r\n".into(),
            b"hello from the server".to_vec(),
        )
    } else if path == "/echo" {
        (200, String::new(), body)
    } else if let Some(code) = path.strip_prefix("/status/") {
        (
            code.parse().unwrap_or(500),
            String::new(),
            format!("status {code}").into_bytes(),
        )
    } else if let Some(n) = path.strip_prefix("/big/") {
        (200, String::new(), vec![b'x'; n.parse().unwrap_or(0)])
    } else if let Some(to) = path.strip_prefix("/redirect-to/") {
        (302, format!("location: {to}\r\n"), Vec::new())
    } else if let Some(ms) = path.strip_prefix("/sleep/") {
        std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        (200, String::new(), b"slept".to_vec())
    } else if let Some(rest) = path.strip_prefix("/sleep-redirect/") {
        let (ms, to) = rest.split_once('/').unwrap_or((rest, ""));
        std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        (302, format!("location: {to}\r\n"), Vec::new())
    } else if let Some(rest) = path.strip_prefix("/redirect/") {
        let (code, to) = rest.split_once('/').unwrap_or((rest, ""));
        (
            code.parse().unwrap_or(500),
            format!("location: {to}\r\n"),
            Vec::new(),
        )
    } else if path == "/hold" {
        let _ = out.write_all(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n6\r\nfirst\n\r\n",
        );
        let _ = out.flush();
        let waited = std::time::Instant::now();
        while !released.load(Ordering::SeqCst) && waited.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = out.write_all(b"7\r\nsecond\n\r\n0\r\n\r\n");
        return;
    } else if path == "/slow" {
        std::thread::sleep(Duration::from_secs(5));
        (200, String::new(), b"late".to_vec())
    } else {
        (404, String::new(), b"not found".to_vec())
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
        payload.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&payload);
}

/// A chunked request body, decoded.
fn read_chunked(reader: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return body;
        }
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body;
        };
        if n == 0 {
            let _ = reader.read_line(&mut String::new());
            return body;
        }
        let mut chunk = vec![0; n + 2];
        if reader.read_exact(&mut chunk).is_err() {
            return body;
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

/// A log writer the tests can read back.
#[derive(Clone, Default)]
pub struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` and returns the warnings it logged on this thread.
pub fn warnings_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

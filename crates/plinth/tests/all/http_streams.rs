//! HTTP with streamed bodies (`plinth:host/env` `http_stream_*`): a response read in chunks as
//! the server sends it, a request body sent in chunks, and the same allow-list, cap, deadline
//! and handle checks as everywhere else.

use std::io::{self, Cursor, Write};
use std::sync::mpsc;
use std::time::Duration;

use plinth::{ErrorKind, Manifest, Plugin, Wasm};

use crate::common::{within, HttpServer, PRELUDE};

/// `fetch` streams the answer to the request in config `request` to the output stream;
/// `upload` sends the input stream as the request body first. Memory from 1024 on is the
/// answer's buffer, from 8192 on the body's.
fn wat() -> String {
    format!(
        r#"(module
  (import "plinth:host/env" "stream_read" (func $sread (param i32 i32) (result i32)))
  (import "plinth:host/env" "stream_write" (func $swrite (param i32 i32) (result i32)))
  (import "plinth:host/env" "http_stream_start" (func $hstart (param i64) (result i64)))
  (import "plinth:host/env" "http_stream_send" (func $hsend (param i64 i32 i32) (result i32)))
  (import "plinth:host/env" "http_stream_status" (func $hstatus (param i64) (result i32)))
  (import "plinth:host/env" "http_stream_read" (func $hread (param i64 i32 i32) (result i32)))
  (import "plinth:host/env" "http_stream_close" (func $hclose (param i64)))
  {PRELUDE}
  (memory (export "memory") 1)
  (data (i32.const 0) "request")
  (func $open (result i64)
    (call $hstart (call $config_get (call $copy_in (i32.const 0) (i32.const 7)))))
  (func $pump (param $h i64) (local $n i32)
    (block $d (loop $l
      (local.set $n (call $hread (local.get $h) (i32.const 1024) (i32.const 4096)))
      (br_if $d (i32.eqz (local.get $n)))
      (drop (call $swrite (i32.const 1024) (local.get $n)))
      (br $l))))
  (func (export "fetch") (result i32) (local $h i64)
    (local.set $h (call $open))
    (drop (call $hstatus (local.get $h)))
    (call $pump (local.get $h))
    (call $hclose (local.get $h))
    (i32.const 0))
  (func (export "upload") (result i32) (local $h i64) (local $n i32)
    (local.set $h (call $open))
    (block $d (loop $l
      (local.set $n (call $sread (i32.const 8192) (i32.const 4096)))
      (br_if $d (i32.le_s (local.get $n) (i32.const 0)))
      (drop (call $hsend (local.get $h) (i32.const 8192) (local.get $n)))
      (br $l)))
    (call $pump (local.get $h))
    (i32.const 0))
  (func (export "status") (result i32)
    (call $hstatus (call $open)))
  (func (export "bogus_handle") (result i32)
    (drop (call $hread (i64.const 999) (i32.const 1024) (i32.const 1))) (i32.const 0))
  (func (export "read_outside") (result i32)
    (drop (call $hread (call $open) (i32.const 65530) (i32.const 100))) (i32.const 0))
  (func (export "too_many") (result i32) (local $i i32)
    (loop $l
      (drop (call $open))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 9))))
    (i32.const 0))
  (func (export "leave_open") (result i32)
    (drop (call $hstatus (call $open))) (i32.const 0))
)"#
    )
}

fn plugin_for(server: &HttpServer, method: &str, path: &str) -> Plugin {
    let request = format!(r#"{{"url":"{}","method":"{method}"}}"#, server.url(path));
    let manifest = Manifest::new([Wasm::data(wat().into_bytes())])
        .with_allowed_host("127.0.0.1")
        .with_config_key("request", request)
        .with_timeout(Duration::from_secs(20));
    Plugin::new(manifest, [], false).unwrap()
}

#[test]
fn a_large_answer_streams_through_to_the_output() {
    let server = HttpServer::start();
    let mut plugin = plugin_for(&server, "GET", "/big/300000");
    let mut out = Vec::new();
    plugin.call_stream("fetch", io::empty(), &mut out).unwrap();
    assert_eq!(out, vec![b'x'; 300_000]);
    // The status is there before the body is read.
    let status: Vec<u8> = plugin_for(&server, "GET", "/status/418")
        .call("fetch", "")
        .unwrap();
    assert_eq!(status, b"status 418");
}

#[test]
fn the_first_chunk_reaches_the_output_before_the_server_has_sent_the_rest() {
    struct ToChannel(mpsc::Sender<Vec<u8>>);
    impl Write for ToChannel {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let server = HttpServer::start();
    let mut plugin = plugin_for(&server, "GET", "/hold");
    let (tx, rx) = mpsc::channel();
    let call = std::thread::spawn(move || plugin.call_stream("fetch", io::empty(), ToChannel(tx)));
    // The server holds "second" back until told: the plug-in must pass "first" on before.
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first, b"first\n");
    server.release();
    call.join().unwrap().unwrap();
    assert_eq!(rx.recv().unwrap(), b"second\n");
}

#[test]
fn a_request_body_streams_in_chunks_from_the_input() {
    let server = HttpServer::start();
    let mut plugin = plugin_for(&server, "POST", "/echo");
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    plugin
        .call_stream("upload", Cursor::new(&body), &mut out)
        .unwrap();
    assert_eq!(out, body);
    let seen = server.seen.lock().unwrap();
    let request = seen.last().unwrap();
    assert_eq!(request.method, "POST");
    assert!(request
        .headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked"));
    // Without a body chunk, the request goes out without a body.
    drop(seen);
    let out: Vec<u8> = plugin_for(&server, "POST", "/echo")
        .call("upload", "")
        .unwrap();
    assert!(out.is_empty());
}

#[test]
fn the_response_cap_the_allow_list_and_the_deadline_hold_for_streams() {
    let server = HttpServer::start();
    let request = format!(r#"{{"url":"{}"}}"#, server.url("/big/5000"));
    let manifest = Manifest::new([Wasm::data(wat().into_bytes())])
        .with_allowed_host("127.0.0.1")
        .with_config_key("request", request)
        .with_http_response_max(1000);
    let mut plugin = Plugin::new(manifest, [], false).unwrap();
    let err = plugin
        .call_stream("fetch", io::empty(), io::sink())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Http, "{err}");
    assert!(
        err.to_string().contains("max_http_response_bytes = 1000"),
        "{err}"
    );

    let request = format!(r#"{{"url":"{}"}}"#, server.url("/hello"));
    let manifest = Manifest::new([Wasm::data(wat().into_bytes())])
        .with_allowed_host("example.com")
        .with_config_key("request", request);
    let mut plugin = Plugin::new(manifest, [], false).unwrap();
    let err = plugin.call::<&str, &[u8]>("fetch", "").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HttpDenied, "{err}");

    let request = format!(r#"{{"url":"{}"}}"#, server.url("/slow"));
    let manifest = Manifest::new([Wasm::data(wat().into_bytes())])
        .with_allowed_host("127.0.0.1")
        .with_config_key("request", request)
        .with_timeout(Duration::from_millis(300));
    let mut plugin = Plugin::new(manifest, [], false).unwrap();
    let err = within(Duration::from_secs(20), move || {
        plugin.call::<&str, &[u8]>("fetch", "").unwrap_err()
    });
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[test]
fn bogus_handles_ranges_and_too_many_streams_fail_clearly_and_the_plugin_keeps_serving() {
    let server = HttpServer::start();
    let mut plugin = plugin_for(&server, "GET", "/hello");
    for (function, says) in [
        ("bogus_handle", "no open HTTP stream has handle 999"),
        ("read_outside", "http_stream_read of 100 bytes at 65530"),
        ("too_many", "8 HTTP streams open"),
    ] {
        let err = plugin.call::<&str, &[u8]>(function, "").unwrap_err();
        assert!(err.to_string().contains(says), "{function}: {err}");
    }
    // A stream left open is closed when its call ends; the next calls start afresh.
    for _ in 0..10 {
        plugin.call::<&str, &[u8]>("leave_open", "").unwrap();
    }
    let out: Vec<u8> = plugin.call("fetch", "").unwrap();
    assert_eq!(out, b"hello from the server");
}

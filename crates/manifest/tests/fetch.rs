//! Downloading `url` modules: only with the `fetch` feature (the default).
#![cfg(feature = "fetch")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use plinth_manifest::*;

const WASM_HEADER: &[u8] = b"\0asm\x01\0\0\0";

// ---------------------------------------------------------------- URLs

/// Serves `/ok.wasm` (needs header `x-token: secret` for `/private.wasm`, method POST for
/// `/post.wasm`) and 404 for everything else. Runs until the test process exits.
fn serve(body: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                headers.push(line.trim().to_ascii_lowercase());
            }
            let mut parts = request_line.split_whitespace();
            let method = parts.next().unwrap_or("");
            let path = parts.next().unwrap_or("");
            let found = match path {
                "/ok.wasm" => method == "GET",
                "/private.wasm" => headers.iter().any(|h| h == "x-token: secret"),
                "/post.wasm" => method == "POST",
                _ => false,
            };
            let (status, payload): (&str, &[u8]) = if found {
                ("200 OK", body)
            } else {
                ("404 Not Found", b"not found")
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(payload);
        }
    });
    format!("http://{addr}")
}

#[test]
fn url_fetch_success_404_and_hash() {
    let base = serve(WASM_HEADER);

    let modules = Manifest::new([Wasm::url(format!("{base}/ok.wasm"))])
        .resolve()
        .unwrap();
    assert_eq!(modules[0].bytes, WASM_HEADER);
    assert_eq!(modules[0].name, "main");

    let private = Wasm::url(format!("{base}/private.wasm"));
    assert!(Manifest::new([private.clone()]).resolve().is_err());
    let modules = Manifest::new([private.with_header("X-Token", "secret")])
        .resolve()
        .unwrap();
    assert_eq!(modules[0].bytes, WASM_HEADER);

    let post = Manifest::from_json(&format!(
        r#"{{"wasm": [{{"url": "{base}/post.wasm", "method": "POST"}}]}}"#
    ))
    .unwrap();
    assert_eq!(post.resolve().unwrap()[0].bytes, WASM_HEADER);

    let missing_url = format!("{base}/missing.wasm");
    let err = Manifest::new([Wasm::url(missing_url.clone())])
        .resolve()
        .unwrap_err();
    match &err {
        ManifestError::Fetch { url, message } => {
            assert_eq!(url, &missing_url);
            assert!(message.contains("404"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }

    let good = Wasm::url(format!("{base}/ok.wasm")).with_hash(sha256_hex(WASM_HEADER));
    assert!(Manifest::new([good]).resolve().is_ok());
    let bad = Wasm::url(format!("{base}/ok.wasm"))
        .with_name("remote")
        .with_hash(sha256_hex(b"x"));
    let err = Manifest::new([Wasm::data(vec![0]), bad])
        .resolve()
        .unwrap_err();
    match err {
        ManifestError::HashMismatch { name, actual, .. } => {
            assert_eq!(name, "remote");
            assert_eq!(actual, sha256_hex(WASM_HEADER));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unreachable_url_is_fetch_error() {
    // Bind then drop to get a port that refuses connections.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Manifest::new([Wasm::url(format!("http://127.0.0.1:{port}/x.wasm"))])
        .resolve()
        .unwrap_err();
    assert!(matches!(err, ManifestError::Fetch { .. }), "{err:?}");
}

/// Serves every connection with `answer` once the request head is read. Runs until the
/// test process exits.
fn serve_with(answer: fn(&mut std::net::TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                answer(&mut stream);
            });
        }
    });
    format!("http://{addr}/m.wasm")
}

/// Runs `f` on a thread and fails the test if it takes more than `limit` (instead of hanging).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("the download was not stopped by its time limit")
}

fn fetch_err(url: String, options: FetchOptions) -> String {
    let err = within(Duration::from_secs(20), move || {
        Manifest::new([Wasm::url(url)])
            .resolve_with(&options)
            .unwrap_err()
    });
    assert!(matches!(err, ManifestError::Fetch { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn url_fetch_from_a_server_that_never_answers_times_out() {
    let url = serve_with(|_| std::thread::sleep(Duration::from_secs(60)));
    let options = FetchOptions {
        idle_timeout: Duration::from_millis(300),
        ..FetchOptions::default()
    };
    let msg = fetch_err(url, options);
    assert!(
        msg.contains("stopped answering (nothing received for 0.3 s)"),
        "{msg}"
    );
}

#[test]
fn url_fetch_that_trickles_is_stopped_by_the_total_timeout() {
    // One byte every 100 ms: never idle, but never done either.
    let url = serve_with(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        for _ in 0..1000 {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let options = FetchOptions {
        timeout: Duration::from_millis(500),
        ..FetchOptions::default()
    };
    let msg = fetch_err(url, options);
    assert!(msg.contains("took longer than 0.5 s"), "{msg}");
}

#[test]
fn url_fetch_over_the_size_cap_is_refused() {
    let small = FetchOptions {
        max_bytes: 1000,
        ..FetchOptions::default()
    };
    // With a Content-Length, and without one (the body ends when the connection closes).
    let declared = serve_with(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n");
        let _ = s.write_all(&[0; 1001]);
    });
    let undeclared = serve_with(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let _ = s.write_all(&[0; 5000]);
    });
    for url in [declared, undeclared] {
        let msg = fetch_err(url, small.clone());
        assert!(msg.contains("larger than 1000 bytes"), "{msg}");
    }
    // At the cap is fine.
    let exact = serve_with(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        let _ = s.write_all(&[0; 1000]);
    });
    let modules = Manifest::new([Wasm::url(exact)])
        .resolve_with(&small)
        .unwrap();
    assert_eq!(modules[0].bytes.len(), 1000);
}

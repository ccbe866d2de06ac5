//! `http_request` against a loopback server: allow-list, redirects, statuses, headers, the
//! response cap and the call's timeout.

mod common;
use std::time::{Duration, Instant};

use common::{wat, HttpServer};
use plinth::{Error, Manifest, Plugin, Wasm};

/// The input is the request JSON. `fetch` outputs the body; `status` outputs the status code;
/// `headers` outputs the `http_headers` block; `post` sends the body "payload".
fn http_plugin() -> Wasm {
    Wasm::data(
        wat(r#"(data (i32.const 0) "payload")
          (func (export "fetch") (result i32)
            (call $output_block (call $http_request (call $input_offset) (i64.const 0))) (i32.const 0))
          (func (export "status") (result i32)
            (drop (call $http_request (call $input_offset) (i64.const 0)))
            (call $output_i64 (i64.extend_i32_u (call $http_status_code))) (i32.const 0))
          (func (export "headers") (result i32)
            (drop (call $http_request (call $input_offset) (i64.const 0)))
            (call $output_block (call $http_headers)) (i32.const 0))
          (func (export "post") (result i32)
            (call $output_block (call $http_request (call $input_offset) (call $copy_in (i32.const 0) (i32.const 7))))
            (i32.const 0))"#)
        .into_bytes(),
    )
}

fn req(url: &str) -> String {
    format!(r#"{{"url":"{url}"}}"#)
}

fn plugin(hosts: &[&str]) -> Plugin {
    let m = Manifest::new([http_plugin()]).with_allowed_hosts(hosts.iter().map(|h| h.to_string()));
    Plugin::new(m, [], false).unwrap()
}

#[test]
fn allowed_hosts_by_name_and_glob() {
    let s = HttpServer::start();
    for hosts in [&["127.0.0.1"][..], &["127.0.0.*"], &["*"]] {
        let mut p = plugin(hosts);
        assert_eq!(
            p.call::<_, &str>("fetch", req(&s.url("/hello")).as_str())
                .unwrap(),
            "hello from the server"
        );
    }
}

#[test]
fn other_hosts_are_denied() {
    let s = HttpServer::start();
    for hosts in [&[][..], &["example.com"], &["*.example.com"]] {
        let mut p = plugin(hosts);
        let err = p
            .call::<_, &[u8]>("fetch", req(&s.url("/hello")).as_str())
            .unwrap_err();
        match &err {
            Error::HttpDenied { host } => assert_eq!(host, "127.0.0.1"),
            e => panic!("{hosts:?}: {e:?}"),
        }
        assert!(err.to_string().contains("allowed_hosts"), "{err}");
    }
    assert!(
        s.seen.lock().unwrap().is_empty(),
        "no request reached the server"
    );
}

#[test]
fn statuses_are_not_errors() {
    let s = HttpServer::start();
    let mut p = plugin(&["127.0.0.1"]);
    assert_eq!(
        p.call::<_, u64>("status", req(&s.url("/status/404")).as_str())
            .unwrap(),
        404
    );
    assert_eq!(
        p.call::<_, u64>("status", req(&s.url("/hello")).as_str())
            .unwrap(),
        200
    );
    assert_eq!(
        p.call::<_, &str>("fetch", req(&s.url("/status/500")).as_str())
            .unwrap(),
        "status 500"
    );
}

#[test]
fn method_headers_and_body_are_sent() {
    let s = HttpServer::start();
    let mut p = plugin(&["127.0.0.1"]);
    let r = format!(
        r#"{{"url":"{}","method":"post","headers":{{"X-Plugin":"yes"}}}}"#,
        s.url("/echo")
    );
    assert_eq!(p.call::<_, &str>("post", r.as_str()).unwrap(), "payload");
    let seen = s.seen.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last.method, "POST");
    assert!(last.headers.contains(&("x-plugin".into(), "yes".into())));
    assert_eq!(last.body, b"payload");
}

#[test]
fn response_headers_only_when_enabled() {
    let s = HttpServer::start();
    let m = Manifest::new([http_plugin()]).with_allowed_host("127.0.0.1");
    let mut off = Plugin::new(m.clone(), [], false).unwrap();
    assert_eq!(
        off.call::<_, &[u8]>("headers", req(&s.url("/hello")).as_str())
            .unwrap(),
        b""
    );
    let mut on = Plugin::builder(m)
        .with_http_response_headers(true)
        .build()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(
        on.call::<_, &[u8]>("headers", req(&s.url("/hello")).as_str())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["x-test"], "yes");
}

#[test]
fn response_body_is_capped() {
    let s = HttpServer::start();
    let m = Manifest::new([http_plugin()])
        .with_allowed_host("127.0.0.1")
        .with_http_response_max(1000);
    let mut p = Plugin::new(m, [], false).unwrap();
    assert_eq!(
        p.call::<_, &[u8]>("fetch", req(&s.url("/big/1000")).as_str())
            .unwrap()
            .len(),
        1000
    );
    let err = p
        .call::<_, &[u8]>("fetch", req(&s.url("/big/5000")).as_str())
        .unwrap_err();
    assert!(err.to_string().contains("max_http_response_bytes"), "{err}");
}

#[test]
fn requests_get_the_remaining_call_time() {
    let s = HttpServer::start();
    let m = Manifest::new([http_plugin()])
        .with_allowed_host("127.0.0.1")
        .with_timeout(Duration::from_millis(300));
    let mut p = Plugin::new(m, [], false).unwrap();
    let start = Instant::now();
    let err = p
        .call::<_, &[u8]>("fetch", req(&s.url("/slow")).as_str())
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    // And the plug-in serves the next request.
    assert_eq!(
        p.call::<_, &str>("fetch", req(&s.url("/hello")).as_str())
            .unwrap(),
        "hello from the server"
    );
}

#[test]
fn redirects_are_followed_only_to_allowed_hosts() {
    let s = HttpServer::start();
    let mut p = plugin(&["127.0.0.1"]);
    let to_allowed = s.url(&format!("/redirect-to/{}", s.url("/hello")));
    assert_eq!(
        p.call::<_, &str>("fetch", req(&to_allowed).as_str())
            .unwrap(),
        "hello from the server"
    );
    let to_other = s.url(&format!("/redirect-to/http://localhost:{}/hello", s.port));
    let err = p
        .call::<_, &[u8]>("fetch", req(&to_other).as_str())
        .unwrap_err();
    assert!(
        matches!(&err, Error::HttpDenied { host } if host == "localhost"),
        "{err:?}"
    );
}

#[test]
fn bad_request_json_is_a_clear_error() {
    let mut p = plugin(&["*"]);
    let err = p.call::<_, &[u8]>("fetch", "not json").unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
}

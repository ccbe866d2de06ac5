//! `http_request` against a loopback server: allow-list, redirects, statuses, headers, the
//! response cap and the call's timeout.

use std::time::{Duration, Instant};

use crate::common::{wat, HttpServer, Seen};
use plinth::{Error, Manifest, Plugin, Wasm};

/// The input is the request JSON. `fetch` outputs the body; `status` outputs the status code;
/// `headers` outputs the `http_headers` block; `post` sends the body "payload";
/// `post_status` sends it and outputs the status; `last_status` and `last_headers` output
/// `http_status_code` and `http_headers` without a request.
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
            (i32.const 0))
          (func (export "post_status") (result i32)
            (drop (call $http_request (call $input_offset) (call $copy_in (i32.const 0) (i32.const 7))))
            (call $output_i64 (i64.extend_i32_u (call $http_status_code))) (i32.const 0))
          (func (export "last_status") (result i32)
            (call $output_i64 (i64.extend_i32_u (call $http_status_code))) (i32.const 0))
          (func (export "last_headers") (result i32)
            (call $output_block (call $http_headers)) (i32.const 0))"#)
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

/// The last request `server` saw.
fn last(server: &HttpServer) -> Seen {
    server
        .seen
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("a request")
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn req_with(url: &str, method: &str, headers: &[(&str, &str)]) -> String {
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), (*v).into()))
        .collect();
    serde_json::json!({"url": url, "method": method, "headers": headers}).to_string()
}

#[test]
fn one_deadline_covers_every_redirect_hop() {
    // Three hops of 400 ms under a 1 s call limit: the third hop runs out of time. (The
    // default limit without `timeout_ms` is the same deadline, tested in src/http.rs.)
    let s = HttpServer::start();
    let m = Manifest::new([http_plugin()])
        .with_allowed_host("127.0.0.1")
        .with_timeout(Duration::from_millis(1000));
    let mut p = Plugin::new(m, [], false).unwrap();
    let path = "/sleep-redirect/400//sleep-redirect/400//sleep-redirect/400//hello";
    let start = Instant::now();
    let err = p
        .call::<_, &[u8]>("fetch", req(&s.url(path)).as_str())
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        s.seen.lock().unwrap().iter().all(|r| r.path != "/hello"),
        "the chain never got to its end"
    );
}

#[test]
fn cancel_stops_a_call_blocked_in_http_request() {
    let s = HttpServer::start();
    let mut p = plugin(&["127.0.0.1"]);
    let cancel = p.cancel_handle();
    let seen = s.seen.clone();
    // Cancels once the server holds the request (it answers after 20 s).
    let canceller = std::thread::spawn(move || {
        while seen.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        cancel.cancel();
    });
    let start = Instant::now();
    let err = p
        .call::<_, &[u8]>("fetch", req(&s.url("/sleep/20000")).as_str())
        .unwrap_err();
    canceller.join().unwrap();
    assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the call waited for the server: {:?}",
        start.elapsed()
    );
    assert_eq!(
        p.call::<_, &str>("fetch", req(&s.url("/hello")).as_str())
            .unwrap(),
        "hello from the server"
    );
}

#[test]
fn a_guest_host_header_is_refused() {
    let s = HttpServer::start();
    let mut p = plugin(&["127.0.0.1"]);
    for name in ["Host", "host", "HOST"] {
        let r = req_with(&s.url("/hello"), "GET", &[(name, "internal.example")]);
        let err = p.call::<_, &[u8]>("fetch", r.as_str()).unwrap_err();
        assert!(matches!(err, Error::Http(_)), "{err:?}");
        assert!(err.to_string().contains("`Host` header"), "{err}");
    }
    assert!(s.seen.lock().unwrap().is_empty(), "nothing was sent");
}

#[test]
fn host_port_entries_allow_that_port_only() {
    let (a, b) = (HttpServer::start(), HttpServer::start());
    let mut p = plugin(&[&format!("127.0.0.1:{}", a.port)]);
    assert_eq!(
        p.call::<_, &str>("fetch", req(&a.url("/hello")).as_str())
            .unwrap(),
        "hello from the server"
    );
    let other_port = format!("127.0.0.1:{}", b.port);
    let err = p
        .call::<_, &[u8]>("fetch", req(&b.url("/hello")).as_str())
        .unwrap_err();
    assert!(
        matches!(&err, Error::HttpDenied { host } if *host == other_port),
        "{err:?}"
    );
    // Nor through a redirect.
    let hop = a.url(&format!("/redirect-to/{}", b.url("/hello")));
    let err = p.call::<_, &[u8]>("fetch", req(&hop).as_str()).unwrap_err();
    assert!(matches!(&err, Error::HttpDenied { .. }), "{err:?}");
    assert!(b.seen.lock().unwrap().is_empty());
}

#[test]
fn plain_host_entries_allow_every_port() {
    // The documented default (SECURITY.md), as in Extism.
    let (a, b) = (HttpServer::start(), HttpServer::start());
    let mut p = plugin(&["127.0.0.1"]);
    for s in [&a, &b] {
        assert_eq!(
            p.call::<_, &str>("fetch", req(&s.url("/hello")).as_str())
                .unwrap(),
            "hello from the server"
        );
    }
}

#[test]
fn bracketed_ipv6_entries_match_the_address() {
    let s = HttpServer::start_v6();
    let exact_port = format!("[::1]:{}", s.port);
    for hosts in ["[::1]", "[0:0:0:0:0:0:0:1]", exact_port.as_str()] {
        let mut p = plugin(&[hosts]);
        assert_eq!(
            p.call::<_, &str>("fetch", req(&s.url("/hello")).as_str())
                .unwrap(),
            "hello from the server",
            "{hosts}"
        );
    }
    for hosts in ["[::2]", "[::1]:1", "127.0.0.1"] {
        let mut p = plugin(&[hosts]);
        let err = p
            .call::<_, &[u8]>("fetch", req(&s.url("/hello")).as_str())
            .unwrap_err();
        assert!(matches!(&err, Error::HttpDenied { .. }), "{hosts}: {err:?}");
    }
}

#[test]
fn credentials_are_dropped_on_redirects_to_another_origin() {
    let a = HttpServer::start();
    let (other_host, other_port) = (HttpServer::start_v6(), HttpServer::start());
    let mut p = plugin(&["127.0.0.1", "[::1]"]);
    let headers = [
        ("Authorization", "Bearer secret"),
        ("Cookie", "session=secret"),
        ("Proxy-Authorization", "Basic secret"),
        ("X-Plugin", "yes"),
    ];
    for target in [&other_host, &other_port] {
        for code in [302, 307] {
            let hop = a.url(&format!("/redirect/{code}/{}", target.url("/echo")));
            p.call::<_, &[u8]>("fetch", req_with(&hop, "GET", &headers).as_str())
                .unwrap();
            let seen = last(target);
            assert_eq!(seen.path, "/echo");
            assert_eq!(header(&seen, "x-plugin"), Some("yes"), "{code}");
            for name in ["authorization", "cookie", "proxy-authorization"] {
                assert_eq!(header(&seen, name), None, "{code}: {name} was forwarded");
            }
        }
    }
    // The same origin gets them again, as in browsers.
    let hop = a.url(&format!("/redirect-to/{}", a.url("/echo")));
    p.call::<_, &[u8]>("fetch", req_with(&hop, "GET", &headers).as_str())
        .unwrap();
    assert_eq!(header(&last(&a), "authorization"), Some("Bearer secret"));
}

#[test]
fn bodies_are_dropped_on_301_302_303() {
    let s = HttpServer::start();
    let mut p = plugin(&["127.0.0.1"]);
    for code in [301, 302, 303] {
        for method in ["POST", "PUT"] {
            let hop = s.url(&format!("/redirect/{code}/{}", s.url("/echo")));
            let r = req_with(&hop, method, &[("Content-Type", "text/plain")]);
            assert_eq!(p.call::<_, &[u8]>("post", r.as_str()).unwrap(), b"");
            let seen = last(&s);
            assert_eq!(
                (seen.path.as_str(), seen.method.as_str()),
                ("/echo", "GET"),
                "{code} {method}"
            );
            assert!(seen.body.is_empty(), "{code} {method}: body re-sent");
            assert_eq!(header(&seen, "content-type"), None, "{code} {method}");
        }
    }
}

#[test]
fn a_body_is_not_sent_to_another_origin_on_307_308() {
    let (a, b) = (HttpServer::start(), HttpServer::start());
    let mut p = plugin(&["127.0.0.1"]);
    for code in [307, 308] {
        // To another origin: the plug-in gets the redirect, the other origin gets nothing.
        let hop = a.url(&format!("/redirect/{code}/{}", b.url("/echo")));
        let status = p
            .call::<_, u64>("post_status", req_with(&hop, "POST", &[]).as_str())
            .unwrap();
        assert_eq!(status, code);
        assert!(b.seen.lock().unwrap().is_empty(), "{code}: body re-sent");
        // To the same origin: the same request again, body included.
        let hop = a.url(&format!("/redirect/{code}/{}", a.url("/echo")));
        let out = p
            .call::<_, &str>("post", req_with(&hop, "POST", &[]).as_str())
            .unwrap();
        assert_eq!(out, "payload");
        assert_eq!(last(&a).method, "POST");
    }
}

#[test]
fn http_status_code_carries_over_to_the_next_call() {
    // As in Extism: before any request in a call, the previous call's status.
    let s = HttpServer::start();
    let mut p = plugin(&["127.0.0.1"]);
    assert_eq!(p.call::<_, u64>("last_status", "").unwrap(), 0);
    assert_eq!(
        p.call::<_, u64>("status", req(&s.url("/status/404")).as_str())
            .unwrap(),
        404
    );
    assert_eq!(p.call::<_, u64>("last_status", "").unwrap(), 404);
    // A request clears the previous answer as it starts, so a refused one leaves 0.
    let denied = format!(r#"{{"url":"http://localhost:{}/hello"}}"#, s.port);
    assert!(p.call::<_, u64>("status", denied.as_str()).is_err());
    assert_eq!(p.call::<_, u64>("last_status", "").unwrap(), 0);
}

#[test]
fn http_headers_carry_over_to_the_next_call() {
    // As in Extism: the last response's headers stay until the next request.
    let s = HttpServer::start();
    let m = Manifest::new([http_plugin()]).with_allowed_host("127.0.0.1");
    let mut p = Plugin::builder(m)
        .with_http_response_headers(true)
        .build()
        .unwrap();
    assert_eq!(p.call::<_, &[u8]>("last_headers", "").unwrap(), b"");
    p.call::<_, &[u8]>("headers", req(&s.url("/hello")).as_str())
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(p.call::<_, &[u8]>("last_headers", "").unwrap()).unwrap();
    assert_eq!(json["x-test"], "yes");
}

//! The Rust PDK's example plug-ins (plugins/rust/, plugins/stream/) give their documented
//! outputs on Plinth.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;

use plinth::{host_fn, Error, Function, Json, Manifest, Plugin, UserData, Wasm, PTR};
use plinth_plugin_tests::plugin;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

fn load(name: &str, manifest: impl FnOnce(Manifest) -> Manifest) -> Plugin {
    Plugin::new(
        manifest(Manifest::new([Wasm::file(plugin(name))])),
        [],
        false,
    )
    .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

// --- checkout ---------------------------------------------------------------------------

#[derive(Serialize)]
struct Cart {
    cart_total: i32,
    is_new_customer: bool,
    provided_email: bool,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Discount {
    discount_percent: f32,
}

fn discount(p: &mut Plugin, cart_total: i32, is_new_customer: bool) -> f32 {
    let cart = Cart {
        cart_total,
        is_new_customer,
        provided_email: true,
    };
    let Json(d): Json<Discount> = p.call("before_checkout_finalize", Json(cart)).unwrap();
    d.discount_percent
}

#[test]
fn checkout_gives_new_customers_with_big_carts_20_percent() {
    let mut p = load("checkout", |m| m);
    assert_eq!(discount(&mut p, 12000, true), 20.0);
    assert_eq!(discount(&mut p, 12000, false), 0.0, "returning customer");
    assert_eq!(discount(&mut p, 9999, true), 0.0, "small cart");
    assert_eq!(discount(&mut p, 10000, true), 20.0, "the threshold counts");
    let raw: String = p
        .call(
            "before_checkout_finalize",
            r#"{"cart_total":12000,"is_new_customer":true,"provided_email":false}"#,
        )
        .unwrap();
    assert_eq!(raw, r#"{"discount_percent":20.0}"#);
}

#[test]
fn checkout_rejects_input_of_the_wrong_shape() {
    let mut p = load("checkout", |m| m);
    match p.call::<_, &[u8]>("before_checkout_finalize", r#"{"cart_total":"lots"}"#) {
        Err(Error::Guest { code, message, .. }) => {
            assert_eq!(code, 1);
            assert!(message.contains("cannot decode the input"), "{message}");
            assert!(message.contains("invalid type"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A clean error keeps the instance usable.
    assert_eq!(discount(&mut p, 12000, true), 20.0);
}

// --- count_vowels -----------------------------------------------------------------------

fn count(p: &mut Plugin, text: &str) -> Value {
    let out: String = p.call("count_vowels", text).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out:?} is not JSON: {e}"))
}

#[test]
fn count_vowels_counts_with_the_default_vowels() {
    let mut p = load("count_vowels", |m| m);
    assert_eq!(
        count(&mut p, "Hello, World!"),
        json!({"count": 3, "total": 3, "vowels": "aeiouAEIOU"})
    );
}

#[test]
fn count_vowels_takes_the_vowels_from_config() {
    let mut p = load("count_vowels", |m| m.with_config_key("vowels", "o"));
    assert_eq!(
        count(&mut p, "Hello, World!"),
        json!({"count": 2, "total": 2, "vowels": "o"})
    );
}

#[test]
fn count_vowels_keeps_a_running_total_per_instance() {
    let mut p = load("count_vowels", |m| m);
    for total in [3, 6, 9] {
        assert_eq!(count(&mut p, "Hello, World!")["total"], total);
    }
    assert_eq!(p.var_get("total"), Some(&9u64.to_le_bytes()[..]));
    let mut fresh = load("count_vowels", |m| m);
    assert_eq!(
        count(&mut fresh, "aaa"),
        json!({"count": 3, "total": 3, "vowels": "aeiouAEIOU"})
    );
}

#[test]
fn count_vowels_reads_inputs_of_every_length() {
    // Lengths around the 8-byte steps of the input reads, and a large one.
    let mut p = load("count_vowels", |m| m);
    let mut total = 0;
    for n in [0, 1, 7, 8, 9, 15, 16, 17, 1 << 20] {
        let text = "ab".repeat(n / 2) + if n % 2 == 1 { "a" } else { "" };
        let expect = text.matches('a').count();
        total += expect;
        let out = count(&mut p, &text);
        assert_eq!(out["count"], expect, "length {n}");
        assert_eq!(out["total"], total, "length {n}");
    }
}

#[test]
fn count_vowels_refuses_input_that_is_not_utf8() {
    let mut p = load("count_vowels", |m| m);
    let err = p
        .call::<_, &[u8]>("count_vowels", &[0xff, 0xfe][..])
        .unwrap_err();
    assert!(
        matches!(&err, Error::Guest { code: 1, message, .. } if message.contains("UTF-8")),
        "{err:?}"
    );
}

// --- http_fetch -------------------------------------------------------------------------

/// A loopback server: `/hello` answers 200 "hello from the test", anything else 404.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // GET requests have no body: skip the headers up to the blank line.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let (status, body) = if line.starts_with("GET /hello ") {
                ("200 OK", "hello from the test")
            } else {
                ("404 Not Found", "no such page")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

#[test]
fn http_fetch_outputs_the_body_from_an_allowed_host() {
    let base = serve();
    let mut p = load("http_fetch", |m| m.with_allowed_host("127.0.0.1"));
    let body: String = p
        .call("http_get", format!("{base}/hello").as_str())
        .unwrap();
    assert_eq!(body, "hello from the test");
}

#[test]
fn http_fetch_is_denied_hosts_outside_the_allow_list() {
    let base = serve();
    let mut p = load("http_fetch", |m| m.with_allowed_host("example.com"));
    match p.call::<_, &[u8]>("http_get", format!("{base}/hello").as_str()) {
        Err(Error::HttpDenied { host }) => assert_eq!(host, "127.0.0.1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn http_fetch_reports_an_error_status_as_its_return_code() {
    let base = serve();
    let mut p = load("http_fetch", |m| m.with_allowed_host("127.0.0.1"));
    let url = format!("{base}/nope");
    match p.call::<_, &[u8]>("http_get", url.as_str()) {
        Err(Error::Guest { code, message, .. }) => {
            assert_eq!(code, 404);
            assert_eq!(message, format!("GET {url} returned HTTP status 404"));
        }
        other => panic!("{other:?}"),
    }
}

// --- host_greet -------------------------------------------------------------------------

host_fn!(greet(calls: u32; name: String) -> String {
    *calls.lock() += 1;
    Ok(format!("Hello, {name}!"))
});

#[test]
fn host_greet_outputs_what_the_host_function_returns() {
    let calls = UserData::new(0u32);
    let f = Function::new("greet", [PTR], [PTR], calls.clone(), greet);
    let m = Manifest::new([Wasm::file(plugin("host_greet"))]);
    let mut p = Plugin::new(m, [f], false).unwrap();
    for name in ["Ada", "Grace", ""] {
        let out: String = p.call("call_greet", name).unwrap();
        assert_eq!(out, format!("Hello, {name}!"));
    }
    assert_eq!(*calls.lock(), 3);
}

#[test]
fn host_greet_fails_the_call_when_the_host_function_fails() {
    let f = Function::new("greet", [PTR], [PTR], UserData::new(()), |_, _, _, _| {
        Err(plinth::anyhow::anyhow!("no greetings today"))
    });
    let m = Manifest::new([Wasm::file(plugin("host_greet"))]);
    let mut p = Plugin::new(m, [f], false).unwrap();
    let err = p.call::<_, &[u8]>("call_greet", "Ada").unwrap_err();
    assert!(err.to_string().contains("no greetings today"), "{err}");
}

// --- wasi_files -------------------------------------------------------------------------

#[test]
fn wasi_files_copies_a_file_inside_the_preopen() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "some text\n").unwrap();
    let m = Manifest::new([Wasm::file(plugin("wasi_files"))])
        .with_allowed_path(dir.path().to_str().unwrap(), "/data");
    let mut p = Plugin::new(m, [], true).unwrap();
    let out: String = p.call("copy_file", "/data/in.txt").unwrap();
    assert_eq!(out, "/data/in.txt.out");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("in.txt.out")).unwrap(),
        "some text\n"
    );
}

#[test]
fn wasi_files_cannot_reach_outside_the_preopen() {
    let root = tempfile::tempdir().unwrap();
    let inside = root.path().join("inside");
    std::fs::create_dir(&inside).unwrap();
    std::fs::write(root.path().join("secret.txt"), "secret").unwrap();
    let m = Manifest::new([Wasm::file(plugin("wasi_files"))])
        .with_allowed_path(inside.to_str().unwrap(), "/data");
    let mut p = Plugin::new(m, [], true).unwrap();
    let outside = root.path().join("secret.txt");
    for path in ["/data/../secret.txt", outside.to_str().unwrap()] {
        match p.call::<_, &[u8]>("copy_file", path) {
            Err(Error::Guest { code, message, .. }) => {
                assert_eq!(code, 1);
                assert!(message.contains("cannot read"), "{message}");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    assert!(!root.path().join("secret.txt.out").exists());
}

// --- fail_with_code ---------------------------------------------------------------------

#[test]
fn fail_with_code_reports_its_code_and_message() {
    let mut p = load("fail_with_code", |m| m);
    for _ in 0..2 {
        match p.call::<_, &[u8]>("fail_with_code", "") {
            Err(Error::Guest {
                function,
                code,
                message,
            }) => {
                assert_eq!(function, "fail_with_code");
                assert_eq!(code, 42);
                assert_eq!(message, "custom failure");
            }
            other => panic!("{other:?}"),
        }
    }
}

// --- pdk_checks: the rest of the PDK's surface ------------------------------------------

host_fn!(add(_none: (); a: u32; b: u32) -> u32 { Ok(a + b) });
host_fn!(record(seen: Vec<String>; message: String) -> () {
    seen.lock().push(message);
    Ok(())
});
host_fn!(raw(_none: ()) -> &'static str { Ok("a block from the host") });
host_fn!(nothing(_none: ()) -> String { Ok(String::new()) });

/// The host functions pdk_checks imports from namespace `plinth:test`; `record` keeps its
/// messages in `seen`.
fn test_functions(seen: UserData<Vec<String>>) -> [Function; 4] {
    let ns = "plinth:test";
    [
        Function::new("add", [PTR, PTR], [PTR], UserData::new(()), add).with_namespace(ns),
        Function::new("record", [PTR], [], seen, record).with_namespace(ns),
        Function::new("raw", [], [PTR], UserData::new(()), raw).with_namespace(ns),
        Function::new("nothing", [], [PTR], UserData::new(()), nothing).with_namespace(ns),
    ]
}

fn load_checks(manifest: impl FnOnce(Manifest) -> Manifest) -> Plugin {
    let m = manifest(Manifest::new([Wasm::file(plugin("pdk_checks"))]));
    Plugin::new(m, test_functions(UserData::default()), false).unwrap()
}

#[test]
fn pdk_input_and_output_keep_every_byte() {
    let mut p = load_checks(|m| m);
    for n in [0usize, 1, 7, 8, 9, 63, 64, 65, 100_003] {
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        for f in ["echo", "echo_memory"] {
            let out: Vec<u8> = p.call(f, &data[..]).unwrap();
            assert_eq!(out, data, "{f}, {n} bytes");
        }
    }
}

#[test]
fn pdk_memory_vars_and_config() {
    let mut p = load_checks(|m| m.with_config_key("colour", "teal"));
    assert_eq!(p.call::<_, &str>("memory_api", "").unwrap(), "ok");
    assert_eq!(p.call::<_, &str>("vars", "").unwrap(), "ok");
    assert_eq!(p.var_get("n"), Some(&41u32.to_le_bytes()[..]));
    assert_eq!(p.var_get("word"), None);
    assert_eq!(p.call::<_, &str>("config_value", "colour").unwrap(), "teal");
    assert_eq!(
        p.call::<_, &str>("config_value", "size").unwrap(),
        "<unset>"
    );
}

#[test]
fn pdk_encodings_msgpack_and_derived_json() {
    #[derive(Serialize)]
    struct Pair {
        left: String,
        right: u32,
    }
    let mut p = load_checks(|m| m);
    let plinth::Msgpack(out): plinth::Msgpack<(u32, String)> = p
        .call(
            "swap_msgpack",
            plinth::Msgpack(Pair {
                left: "l".into(),
                right: 9,
            }),
        )
        .unwrap();
    assert_eq!(out, (9, "l".to_string()));
    let out: &str = p.call("flip", r#"{"x":1,"y":2}"#).unwrap();
    assert_eq!(out, r#"{"x":2,"y":1}"#);
}

#[test]
fn pdk_errors_keep_their_context_chain() {
    let mut p = load_checks(|m| m);
    match p.call::<_, &[u8]>("context_chain", "") {
        Err(Error::Guest { code, message, .. }) => {
            assert_eq!(code, 1);
            assert_eq!(message, "reading the count: invalid digit found in string");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pdk_log_level_follows_the_host() {
    // This test binary installs no tracing subscriber, so the host's logging is off and the
    // log macros skip their import calls.
    let mut p = load_checks(|m| m);
    assert_eq!(p.call::<_, &str>("log_level_name", "").unwrap(), "off");
}

#[test]
fn pdk_http_post_sends_method_headers_and_body() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/submit", listener.local_addr().unwrap());
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let (mut length, mut x_test) = (0, String::new());
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "x-test" => x_test = value.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        std::io::Read::read_exact(&mut reader, &mut body).unwrap();
        let answer = format!(
            "{} {x_test} {}",
            request_line.trim(),
            String::from_utf8_lossy(&body)
        );
        write!(
            stream,
            "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
    });
    let m = Manifest::new([Wasm::file(plugin("pdk_checks"))]).with_allowed_host("127.0.0.1");
    let mut p = Plugin::builder(m)
        .with_functions(test_functions(UserData::default()))
        .with_http_response_headers(true)
        .build()
        .unwrap();
    let Json(reply): Json<Value> = p
        .call("post", Json(json!({"url": url, "body": "payload"})))
        .unwrap();
    server.join().unwrap();
    assert_eq!(
        reply,
        json!({
            "status": 201,
            "body": "POST /submit HTTP/1.1 yes payload",
            "content_type": "text/plain",
        })
    );
}

#[test]
fn pdk_host_fn_namespaces_arguments_and_results() {
    let seen = UserData::new(Vec::new());
    let m = Manifest::new([Wasm::file(plugin("pdk_checks"))]);
    let mut p = Plugin::new(m, test_functions(seen.clone()), false).unwrap();
    for _ in 0..3 {
        assert_eq!(
            p.call::<_, &str>("host_calls", "").unwrap(),
            "a block from the host"
        );
    }
    assert_eq!(*seen.lock(), ["recorded"; 3]);
}

// --- echo and echo_bulk (the benchmark plug-in, without and with the bulk-copy feature) --

host_fn!(reflect(_none: (); input: Vec<u8>) -> Vec<u8> { Ok(input) });

fn echo_plugin(name: &str) -> Plugin {
    let f = Function::new("reflect", [PTR], [PTR], UserData::new(()), reflect);
    Plugin::new(Manifest::new([Wasm::file(plugin(name))]), [f], false)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

#[test]
fn echo_and_echo_bulk_return_every_input_unchanged() {
    for name in ["echo", "echo_bulk"] {
        let mut p = echo_plugin(name);
        // Every tail length around the 8-byte steps, and sizes that grow memory.
        let mut sizes: Vec<usize> = (0..=70).collect();
        sizes.extend([4095, 65536, 1 << 20, (1 << 20) + 3]);
        for n in sizes {
            let input: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let out: Vec<u8> = p.call("echo", &input[..]).unwrap();
            assert_eq!(out, input, "{name} echo of {n} bytes");
            let out: Vec<u8> = p.call("reflect", &input[..]).unwrap();
            assert_eq!(out, input, "{name} reflect of {n} bytes");
        }
        let out: &[u8] = p.call("empty", "ignored").unwrap();
        assert!(out.is_empty());
    }
}

#[test]
fn only_the_bulk_copy_build_needs_a_plinth_host() {
    let imports = |name: &str| -> Vec<String> {
        plinth::inspect(Wasm::file(plugin(name)), false, &[])
            .unwrap()
            .into_iter()
            .flat_map(|m| m.imports)
            .map(|i| format!("{}::{}", i.module, i.name))
            .collect()
    };
    let plain = imports("echo");
    assert!(
        plain.iter().all(|i| !i.starts_with("plinth:")),
        "the default build runs on Extism hosts: {plain:?}"
    );
    let bulk = imports("echo_bulk");
    for f in ["input_read", "write"] {
        assert!(
            bulk.contains(&format!("plinth:host/env::{f}")),
            "{f} missing from {bulk:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Streaming plug-ins (plugins/stream/, the PDK's `stream` feature) on Plinth's call_stream

/// Gives at most `step` bytes per read, so that chunk boundaries fall inside lines and
/// multi-byte characters.
struct Trickle<'a>(&'a [u8], usize);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(buf.len()).min(self.1);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn streamed(p: &mut Plugin, function: &str, input: &[u8], step: usize) -> Vec<u8> {
    let mut out = Vec::new();
    p.call_stream(function, Trickle(input, step), &mut out)
        .unwrap_or_else(|e| panic!("{function}: {e}"));
    out
}

fn log_lines() -> Vec<u8> {
    let mut text = String::new();
    for i in 0..3000 {
        let level = if i % 7 == 0 { "ERROR" } else { "ok" };
        text.push_str(&format!("{i} {level} défaut 日本\n"));
    }
    text.into_bytes()
}

fn lines_with(data: &[u8], pattern: &[u8]) -> Vec<u8> {
    data.split_inclusive(|&b| b == b'\n')
        .filter(|l| l.windows(pattern.len()).any(|w| w == pattern))
        .flatten()
        .copied()
        .collect()
}

#[test]
fn streaming_plugins_give_the_same_bytes_whatever_the_chunk_boundaries() {
    let data = log_lines();
    let errors = lines_with(&data, b"ERROR");
    let japanese = lines_with(&data, "日本".as_bytes());
    let mut grep = load("stream_filter", |m| m);
    let mut grep_jp = load("stream_filter", |m| m.with_config_key("pattern", "日本"));
    let mut echo = load("stream_echo", |m| m);
    let mut gzip = load("stream_gzip", |m| m);
    for step in [1, 3, 7, 4096, 1 << 20] {
        assert_eq!(
            streamed(&mut grep, "grep", &data, step),
            errors,
            "step {step}"
        );
        assert_eq!(streamed(&mut grep_jp, "grep", &data, step), japanese);
        assert_eq!(streamed(&mut grep, "count_lines", &data, step), b"3000");
        assert_eq!(streamed(&mut echo, "echo", &data, step), data);
        let packed = streamed(&mut gzip, "gzip", &data, step);
        assert!(
            packed.len() < data.len() / 4,
            "gzip made {} bytes",
            packed.len()
        );
        assert_eq!(streamed(&mut gzip, "gunzip", &packed, step), data);
    }
    // A streaming plug-in called the classic way reads the call's input as its stream.
    let out: Vec<u8> = grep.call("grep", &data[..]).unwrap();
    assert_eq!(out, errors);
    assert_eq!(
        streamed(&mut echo, "read_all_then_write", &data, 10),
        data.len().to_string().as_bytes()
    );
    assert_eq!(streamed(&mut echo, "never_reads", &data, 10), b"done");
    assert_eq!(
        streamed(&mut echo, "stream_then_return", b"whole input", 3),
        b"streamed:whole input"
    );
}

#[test]
fn streaming_plugin_failures_are_clear() {
    let mut gzip = load("stream_gzip", |m| m);
    let err = gzip
        .call_stream("gunzip", Trickle(b"not gzip at all", 3), std::io::sink())
        .unwrap_err();
    assert!(matches!(err, Error::Guest { .. }), "{err}");
    assert!(err.to_string().contains("not valid gzip data"), "{err}");
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let mut echo = load("stream_echo", |m| m);
    let err = echo
        .call_stream("echo", Broken, std::io::sink())
        .unwrap_err();
    assert_eq!(err.kind(), plinth::ErrorKind::Stream, "{err}");
    assert!(err.to_string().contains("disk on fire"), "{err}");
    // A plug-in that does not stream (count_vowels) gets its whole input from a stream.
    let mut vowels = load("count_vowels", |m| m);
    let out = streamed(&mut vowels, "count_vowels", b"Hello, World!", 2);
    let value: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(value["count"], 3);
}

#[test]
fn a_bulk_copy_plugin_forgets_the_last_input_at_the_next_call() {
    // The input buffer the host wrote into (plinth_input_buffer) belongs to one call: an empty
    // input after a longer one is empty, not the old bytes again.
    let mut p = echo_plugin("echo_bulk");
    for (input, want) in [
        (&b"abc"[..], &b"abc"[..]),
        (b"", b""),
        (b"xy", b"xy"),
        (b"", b""),
    ] {
        let out: Vec<u8> = p.call("echo", input).unwrap();
        assert_eq!(out, want);
    }
}

//! The C PDK (pdk/c/plinth-pdk.h) and its examples (plugins/c/) on Plinth: the same checks as
//! the extism-pdk plug-ins, and the same outputs as the Extism-built count_vowels.

mod loopback;

use plinth::{host_fn, Error, Function, Manifest, Plugin, UserData, Wasm, PTR};
use plinth_plugin_tests::{call_json, load, plugin};
use serde_json::json;

#[test]
fn count_vowels_c_counts_hello_world() {
    let mut p = load("count_vowels_c", |m| m);
    assert_eq!(
        call_json(&mut p, "count_vowels", "Hello, World!"),
        json!({"count": 3, "total": 3, "vowels": "aeiouAEIOU"})
    );
}

#[test]
fn count_vowels_c_total_accumulates_as_8_byte_le() {
    let mut p = load("count_vowels_c", |m| m);
    for total in [3, 6, 9] {
        assert_eq!(
            call_json(&mut p, "count_vowels", "Hello, World!")["total"],
            total
        );
    }
    assert_eq!(p.var_get("total"), Some(&9u64.to_le_bytes()[..]));
    // A total the host stored is continued.
    p.var_set("total", Some(&100u64.to_le_bytes())).unwrap();
    assert_eq!(call_json(&mut p, "count_vowels", "a")["total"], 101);
}

#[test]
fn count_vowels_c_config_changes_the_vowels() {
    let mut p = load("count_vowels_c", |m| m.with_config_key("vowels", "o"));
    assert_eq!(
        call_json(&mut p, "count_vowels", "Hello, World!"),
        json!({"count": 2, "total": 2, "vowels": "o"})
    );
}

#[test]
fn count_vowels_c_matches_the_extism_pdk_build() {
    // Same contract, so the same outputs, including non-ASCII vowels, JSON escapes, empty
    // input and inputs longer than one 8-byte load.
    let cases = [
        ("aeiouAEIOU", "Hello, World!"),
        ("aeiouAEIOU", ""),
        (
            "aeiouAEIOU",
            "a quick brown fox jumps over the lazy dog, again and again",
        ),
        ("éö", "Héllö wörld, ça va?"),
        ("\"\\\n", "quote \" backslash \\ newline \n"),
    ];
    for (vowels, input) in cases {
        let mut c = load("count_vowels_c", |m| m.with_config_key("vowels", vowels));
        let mut r = load("extism_count_vowels", |m| {
            m.with_config_key("vowels", vowels)
        });
        for _ in 0..2 {
            assert_eq!(
                call_json(&mut c, "count_vowels", input),
                call_json(&mut r, "count_vowels", input),
                "vowels {vowels:?}, input {input:?}"
            );
        }
    }
}

host_fn!(greet(seen: Vec<String>; name: String) -> String {
    seen.lock().push(name.clone());
    Ok(format!("Hello, {name}!"))
});

#[test]
fn host_greet_c_round_trip() {
    let seen = UserData::new(Vec::new());
    let f = Function::new("greet", [PTR], [PTR], seen.clone(), greet);
    let m = Manifest::new([Wasm::file(plugin("host_greet_c"))]);
    let mut p = Plugin::new(m, [f], false).unwrap();
    assert_eq!(
        p.call::<_, &str>("call_greet", "Ada").unwrap(),
        "Hello, Ada!"
    );
    let long = "x".repeat(1000);
    assert_eq!(
        p.call::<_, String>("call_greet", long.as_str()).unwrap(),
        format!("Hello, {long}!")
    );
    assert_eq!(seen.lock()[0], "Ada");
}

#[test]
fn host_greet_c_with_greet_written_in_wasm() {
    // greeter_c supplies `greet` as the module extism:host/user, as the README's
    // `plinth call ... call_greet --link extism:host/user=greeter_c.wasm` does.
    let m = Manifest::new([
        Wasm::file(plugin("host_greet_c")).with_name("main"),
        Wasm::file(plugin("greeter_c")).with_name("extism:host/user"),
    ]);
    let mut p = Plugin::new(m, [], false).unwrap();
    assert_eq!(
        p.call::<_, &str>("call_greet", "World").unwrap(),
        "Hello, World!"
    );
}

#[test]
fn host_greet_c_needs_its_host_function() {
    let m = Manifest::new([Wasm::file(plugin("host_greet_c"))]);
    let err = Plugin::new(m, [], false).unwrap_err();
    assert!(err.to_string().contains("greet"), "{err}");
}

#[test]
fn c_http_get_status_and_post() {
    let base = loopback::start();
    let mut p = load("pdk_checks_c", |m| m.with_allowed_host("127.0.0.1"));
    let url = format!("{base}/hello");
    assert_eq!(
        p.call::<_, &str>("http_get", url.as_str()).unwrap(),
        "hello from loopback"
    );
    let url = format!("{base}/missing");
    assert_eq!(
        p.call::<_, &str>("http_status", url.as_str()).unwrap(),
        "404"
    );
    // The request JSON the header builds carries method, an escaped header and the body.
    let url = format!("{base}/echo");
    assert_eq!(
        p.call::<_, &str>("http_post", url.as_str()).unwrap(),
        "POST x-plinth=c \"pdk\" body=payload from C"
    );
}

#[test]
fn c_http_denied_without_allowed_hosts() {
    let base = loopback::start();
    let mut p = load("pdk_checks_c", |m| m);
    let url = format!("{base}/hello");
    assert!(matches!(
        p.call::<_, &str>("http_get", url.as_str()).unwrap_err(),
        Error::HttpDenied { .. }
    ));
}

#[test]
fn c_config_values_and_missing_keys() {
    let mut p = load("pdk_checks_c", |m| {
        m.with_config_key("greeting", "hi there")
    });
    assert_eq!(
        p.call::<_, &str>("get_config", "greeting").unwrap(),
        "hi there"
    );
    assert_eq!(p.call::<_, &str>("get_config", "nope").unwrap(), "missing");
}

#[test]
fn c_vars_keep_a_counter() {
    let mut p = load("pdk_checks_c", |m| m);
    for n in ["1", "2", "3"] {
        assert_eq!(p.call::<_, &str>("increment", "").unwrap(), n);
    }
    assert_eq!(p.var_get("count"), Some(&3u32.to_le_bytes()[..]));
    p.call::<_, &[u8]>("reset", "").unwrap();
    assert_eq!(p.var_get("count"), None);
    assert_eq!(p.call::<_, &str>("increment", "").unwrap(), "1");
}

#[test]
fn c_errors_message_and_codes() {
    let mut p = load("pdk_checks_c", |m| m);
    match p.call::<_, &str>("fail", "x").unwrap_err() {
        Error::Guest { code, message, .. } => {
            assert_eq!((code, message.as_str()), (1, "failed on purpose: x"))
        }
        e => panic!("expected a guest error, got {e:?}"),
    }
    let err = p.call::<_, &str>("fail_with_code", "").unwrap_err();
    assert_eq!(err.code(), 7, "{err}");
    assert!(err.to_string().contains("failed with code 7"), "{err}");
    // An error set with return code 0 still fails the call.
    let err = p.call::<_, &str>("error_only", "").unwrap_err();
    assert!(err.to_string().contains("error set, code 0"), "{err}");
    // The instance stays usable.
    assert_eq!(p.call::<_, &str>("get_config", "k").unwrap(), "missing");
}

#[test]
fn c_logging_runs_at_every_level() {
    let mut p = load("pdk_checks_c", |m| m);
    let level: String = p.call("log_all", "hello").unwrap();
    let level: i64 = level.parse().unwrap();
    assert!(
        (0..=4).contains(&level) || level == i32::MAX as i64,
        "{level}"
    );
}

#[test]
fn the_c_pdk_streams_whatever_the_chunk_boundaries() {
    struct Trickle<'a>(&'a [u8], usize);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 128) as u8).collect();
    let mut p = load("stream_upper_c", |m| m);
    for step in [1, 999, 1 << 20] {
        for function in ["upper", "upper_whole"] {
            let mut out = Vec::new();
            p.call_stream(function, Trickle(&data, step), &mut out)
                .unwrap_or_else(|e| panic!("{function}: {e}"));
            assert_eq!(out, data.to_ascii_uppercase(), "{function}, step {step}");
        }
    }
    let out: Vec<u8> = p.call("upper", &data[..]).unwrap();
    assert_eq!(out, data.to_ascii_uppercase());
}

#[test]
fn the_c_pdk_streams_http_bodies_both_ways() {
    let base = loopback::start();
    let plugin = |request: String| {
        load("stream_fetch_c", |m| {
            m.with_allowed_host("127.0.0.1")
                .with_config_key("request", request)
        })
    };
    let mut fetch = plugin(format!(r#"{{"url":"{base}/hello"}}"#));
    let mut out = Vec::new();
    fetch
        .call_stream("fetch", std::io::empty(), &mut out)
        .unwrap();
    assert_eq!(out, b"200\nhello from loopback");
    let mut missing = plugin(format!(r#"{{"url":"{base}/missing"}}"#));
    let out: Vec<u8> = missing.call("fetch", "").unwrap();
    assert_eq!(out, b"404\nnot here");
    // The input stream becomes the request body, sent in chunks.
    let body: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut upload = plugin(format!(r#"{{"url":"{base}/echo","method":"POST"}}"#));
    let mut out = Vec::new();
    upload
        .call_stream("upload", body.as_bytes(), &mut out)
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("200\nPOST x-plinth= body={body}")
    );
    // A host the manifest does not allow ends the call.
    let mut denied = load("stream_fetch_c", |m| {
        m.with_allowed_host("example.com")
            .with_config_key("request", format!(r#"{{"url":"{base}/hello"}}"#))
    });
    let err = denied.call::<&str, &[u8]>("fetch", "").unwrap_err();
    assert_eq!(err.kind(), plinth::ErrorKind::HttpDenied, "{err}");
}

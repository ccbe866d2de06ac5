//! Plug-ins written against the published `extism-pdk` crate (plugins/extism-pdk/) run on
//! Plinth unmodified and give the outputs Extism's documentation promises.

mod loopback;

use plinth::{host_fn, Error, Function, Manifest, Plugin, UserData, Wasm, PTR};
use plinth_plugin_tests::{call_json, load, plugin};
use serde_json::json;

#[test]
fn count_vowels_counts_hello_world() {
    let mut p = load("extism_count_vowels", |m| m);
    assert_eq!(
        call_json(&mut p, "count_vowels", "Hello, World!"),
        json!({"count": 3, "total": 3, "vowels": "aeiouAEIOU"})
    );
}

#[test]
fn count_vowels_total_accumulates_in_a_var() {
    let mut p = load("extism_count_vowels", |m| m);
    for total in [3, 6, 9] {
        assert_eq!(
            call_json(&mut p, "count_vowels", "Hello, World!")["total"],
            total
        );
    }
    // The var is the 8-byte little-endian u64 extism-convert writes.
    assert_eq!(p.var_get("total"), Some(&9u64.to_le_bytes()[..]));
    // A fresh plug-in starts again.
    let mut q = load("extism_count_vowels", |m| m);
    assert_eq!(call_json(&mut q, "count_vowels", "aaa")["total"], 3);
}

#[test]
fn count_vowels_config_changes_the_vowels() {
    let mut p = load("extism_count_vowels", |m| m.with_config_key("vowels", "o"));
    assert_eq!(
        call_json(&mut p, "count_vowels", "Hello, World!"),
        json!({"count": 2, "total": 2, "vowels": "o"})
    );
    // Config set between calls applies from the next call.
    p.set_config("vowels", "lW");
    assert_eq!(
        call_json(&mut p, "count_vowels", "Hello, World!"),
        json!({"count": 4, "total": 6, "vowels": "lW"})
    );
}

host_fn!(greet(seen: Vec<String>; name: String) -> String {
    seen.lock().push(name.clone());
    Ok(format!("Hello, {name}!"))
});

#[test]
fn host_function_round_trip() {
    let seen = UserData::new(Vec::new());
    let f = Function::new("greet", [PTR], [PTR], seen.clone(), greet);
    let m = Manifest::new([Wasm::file(plugin("extism_host_fn"))]);
    let mut p = Plugin::new(m, [f], false).unwrap();
    assert_eq!(
        p.call::<_, &str>("call_greet", "Ada").unwrap(),
        "Hello, Ada!"
    );
    assert_eq!(
        p.call::<_, &str>("call_greet", "Grace").unwrap(),
        "Hello, Grace!"
    );
    assert_eq!(*seen.lock(), ["Ada", "Grace"]);
}

#[test]
fn host_function_error_fails_the_call() {
    let f = Function::new("greet", [PTR], [PTR], UserData::new(()), |_, _, _, _| {
        plinth::anyhow::bail!("no greetings today")
    });
    let m = Manifest::new([Wasm::file(plugin("extism_host_fn"))]);
    let mut p = Plugin::new(m, [f], false).unwrap();
    let err = p.call::<_, &str>("call_greet", "Ada").unwrap_err();
    assert!(err.to_string().contains("no greetings today"), "{err}");
}

#[test]
fn missing_host_function_fails_at_load_naming_it() {
    let m = Manifest::new([Wasm::file(plugin("extism_host_fn"))]);
    let err = Plugin::new(m, [], false).unwrap_err();
    assert!(err.to_string().contains("greet"), "{err}");
}

#[test]
fn http_get_returns_the_body() {
    let base = loopback::start();
    let mut p = load("extism_http", |m| m.with_allowed_host("127.0.0.1"));
    let url = format!("{base}/hello");
    assert_eq!(
        p.call::<_, &str>("http_get", url.as_str()).unwrap(),
        "hello from loopback"
    );
    // Non-2xx is not an error: the status reaches the plug-in.
    let url = format!("{base}/missing");
    assert_eq!(
        p.call::<_, &str>("http_status", url.as_str()).unwrap(),
        "404"
    );
    assert_eq!(
        p.call::<_, &str>("http_get", url.as_str()).unwrap(),
        "not here"
    );
}

#[test]
fn http_to_a_host_not_allowed_is_denied() {
    let base = loopback::start();
    let mut p = load("extism_http", |m| m.with_allowed_host("example.com"));
    let url = format!("{base}/hello");
    match p.call::<_, &str>("http_get", url.as_str()).unwrap_err() {
        Error::HttpDenied { host } => assert_eq!(host, "127.0.0.1"),
        e => panic!("expected HttpDenied, got {e:?}"),
    }
}

#[test]
fn vars_keep_a_counter() {
    let mut p = load("extism_vars", |m| m);
    for n in ["1", "2", "3"] {
        assert_eq!(p.call::<_, &str>("increment", "").unwrap(), n);
    }
    assert_eq!(p.var_get("count"), Some(&3u32.to_le_bytes()[..]));
    p.call::<_, &[u8]>("reset", "").unwrap();
    assert_eq!(p.var_get("count"), None);
    assert_eq!(p.call::<_, &str>("increment", "").unwrap(), "1");
    // A var the host sets is what the plug-in reads.
    p.var_set("count", Some(&41u32.to_le_bytes())).unwrap();
    assert_eq!(p.call::<_, &str>("increment", "").unwrap(), "42");
}

#[test]
fn config_values_and_missing_keys() {
    let mut p = load("extism_config", |m| {
        m.with_config_key("greeting", "hi there")
            .with_config_key("empty", "")
    });
    assert_eq!(
        p.call::<_, &str>("get_config", "greeting").unwrap(),
        "hi there"
    );
    assert_eq!(p.call::<_, &str>("get_config", "nope").unwrap(), "missing");
    // extism-pdk reads an empty block as no value.
    assert_eq!(p.call::<_, &str>("get_config", "empty").unwrap(), "missing");
}

#[test]
fn an_error_fails_the_call_with_its_message() {
    let mut p = load("extism_errors", |m| m);
    match p.call::<_, &str>("fail", "x").unwrap_err() {
        Error::Guest { code, message, .. } => {
            assert_eq!(message, "failed on purpose: x");
            assert_eq!(code, -1);
        }
        e => panic!("expected a guest error, got {e:?}"),
    }
    // A clean failure keeps the instance usable.
    assert_eq!(p.call::<_, &str>("succeed", "y").unwrap(), "ok: y");
}

#[test]
fn with_return_code_reports_code_7() {
    let mut p = load("extism_errors", |m| m);
    let err = p.call::<_, &str>("fail_with_code", "x").unwrap_err();
    assert_eq!(err.code(), 7, "{err}");
    match err {
        Error::Guest { message, .. } => assert_eq!(message, "failed with code 7: x"),
        e => panic!("expected a guest error, got {e:?}"),
    }
}

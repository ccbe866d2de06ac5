//! `call` with typed inputs and outputs (the `convert` encodings and derives), errors as
//! Extism reports them, the ways of loading a plug-in, `CompiledPlugin` and `typed_plugin!`.

use extism::convert::{Base64, Json, Msgpack, Raw};
use extism::*;
use serde::{Deserialize, Serialize};

use crate::{module, plugin};

// The echo plug-in also exports `reflect`, which calls this host function.
host_fn!(reflect(input: Vec<u8>) -> Vec<u8> { Ok(input) });

fn reflect_fn() -> Function {
    Function::new("reflect", [PTR], [PTR], UserData::new(()), reflect)
}

fn echo() -> Plugin {
    // extism-pdk's `echo(input: Vec<u8>) -> Vec<u8>`: the output is the input's bytes.
    Plugin::new(
        Manifest::new([Wasm::file(plugin("extism_echo"))]),
        [reflect_fn()],
        false,
    )
    .unwrap()
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, ToBytes, FromBytes)]
#[encoding(Json)]
struct Order {
    id: u64,
    items: Vec<String>,
}

#[derive(
    Debug, PartialEq, Serialize, Deserialize, extism::convert::ToBytes, extism::convert::FromBytes,
)]
#[encoding(Msgpack)]
struct Packed {
    name: String,
}

extism::convert::encoding!(Yaml, serde_json::to_vec_pretty, serde_json::from_slice);

#[test]
fn json_in_and_out() {
    let mut plugin = echo();
    let Json(p) = plugin
        .call::<Json<Point>, Json<Point>>("echo", Json(Point { x: 1, y: -2 }))
        .unwrap();
    assert_eq!(p, Point { x: 1, y: -2 });
    let raw = plugin
        .call::<Json<Point>, &str>("echo", Json(Point { x: 3, y: 4 }))
        .unwrap();
    assert_eq!(raw, r#"{"x":3,"y":4}"#);
    let value = plugin
        .call::<serde_json::Value, serde_json::Value>("echo", serde_json::json!({"a": [1, 2]}))
        .unwrap();
    assert_eq!(value, serde_json::json!({"a": [1, 2]}));
}

#[test]
fn msgpack_is_encoded_as_extism_encodes_it() {
    let mut plugin = echo();
    let bytes = plugin
        .call::<Msgpack<Point>, Vec<u8>>("echo", Msgpack(Point { x: 1, y: 2 }))
        .unwrap();
    // rmp_serde::to_vec: a struct is a 2-element array, as extism-convert writes it.
    assert_eq!(bytes, [0x92, 0x01, 0x02]);
    let Msgpack(p) = plugin
        .call::<Msgpack<Point>, Msgpack<Point>>("echo", Msgpack(Point { x: 5, y: 6 }))
        .unwrap();
    assert_eq!(p, Point { x: 5, y: 6 });
}

#[test]
fn base64_raw_numbers_and_bytes() {
    let mut plugin = echo();
    assert_eq!(
        plugin
            .call::<Base64<&[u8]>, &str>("echo", Base64(b"hi!".as_slice()))
            .unwrap(),
        "aGkh"
    );
    let Base64(back): Base64<Vec<u8>> = plugin.call("echo", Base64(vec![0u8, 255])).unwrap();
    assert_eq!(back, [0, 255]);

    assert_eq!(plugin.call::<u64, u64>("echo", 42).unwrap(), 42);
    assert_eq!(plugin.call::<f64, f64>("echo", 2.5).unwrap(), 2.5);
    assert_eq!(plugin.call::<i32, i32>("echo", -2).unwrap(), -2);
    assert_eq!(
        plugin.call::<u32, Vec<u8>>("echo", 0x0102_0304).unwrap(),
        [4, 3, 2, 1]
    );
    assert!(plugin.call::<bool, bool>("echo", true).unwrap());
    assert_eq!(
        plugin
            .call::<Option<&str>, Option<String>>("echo", None)
            .unwrap(),
        None
    );
    assert_eq!(
        plugin
            .call::<Option<&str>, Option<String>>("echo", Some("x"))
            .unwrap()
            .as_deref(),
        Some("x")
    );
    let rgb = [7u8, 9, 11];
    let Raw(back) = plugin
        .call::<Raw<[u8; 3]>, Raw<[u8; 3]>>("echo", Raw(&rgb))
        .unwrap();
    assert_eq!(*back, [7, 9, 11]);
    // Numbers need their exact size.
    let err = plugin.call::<&str, u64>("echo", "abc").unwrap_err();
    assert!(err.to_string().contains("8 bytes"), "{err}");
}

#[test]
fn derived_encodings_and_the_encoding_macro() {
    let mut plugin = echo();
    let order = Order {
        id: 9,
        items: vec!["tea".into()],
    };
    assert_eq!(
        order.to_bytes().unwrap(),
        br#"{"id":9,"items":["tea"]}"#.to_vec()
    );
    let back: Order = plugin.call("echo", &order).unwrap();
    assert_eq!(back, order);

    let packed: Packed = plugin.call("echo", Packed { name: "n".into() }).unwrap();
    assert_eq!(packed, Packed { name: "n".into() });

    let pretty = plugin
        .call::<Yaml<Point>, String>("echo", Yaml(Point { x: 1, y: 2 }))
        .unwrap();
    assert_eq!(pretty, "{\n  \"x\": 1,\n  \"y\": 2\n}");
    let Yaml(p) = plugin.call::<&str, Yaml<Point>>("echo", &pretty).unwrap();
    assert_eq!(p, Point { x: 1, y: 2 });
}

#[test]
fn prost_messages() {
    let mut plugin = echo();
    // prost implements `Message` for the protobuf wrapper types, `String` among them.
    let extism::convert::Prost(back): extism::convert::Prost<String> = plugin
        .call("echo", extism::convert::Prost("proto".to_string()))
        .unwrap();
    assert_eq!(back, "proto");
}

#[test]
fn plugin_errors_read_as_in_extism() {
    let manifest = Manifest::new([Wasm::file(plugin("extism_errors"))]);
    let mut plugin = Plugin::new(&manifest, [], false).unwrap();

    let err = plugin.call::<&str, &str>("fail", "x").unwrap_err();
    assert_eq!(err.to_string(), "failed on purpose: x");

    let (err, code) = plugin
        .call_get_error_code::<&str, &str>("fail_with_code", "y")
        .unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), code),
        ("failed with code 7: y", 7)
    );
    // Plinth's error is underneath, for hosts that want the kind of failure.
    match err.downcast_ref::<plinth::Error>() {
        Some(plinth::Error::Guest {
            code: 7, function, ..
        }) => {
            assert_eq!(function, "fail_with_code")
        }
        other => panic!("expected a Guest error, got {other:?}"),
    }

    let err = plugin.call::<&str, &str>("nope", "").unwrap_err();
    assert_eq!(err.to_string(), "Function not found: nope");
    assert!(
        format!("{err:#}").contains("succeed"),
        "the full message lists the exports: {err:#}"
    );
    assert_eq!(plugin.call::<&str, &str>("succeed", "z").unwrap(), "ok: z");
    assert_eq!(
        plugin
            .call_get_error_code::<&str, String>("succeed", "w")
            .unwrap(),
        "ok: w"
    );
}

#[test]
fn nonzero_return_code_without_a_message() {
    let wat = module("", r#"(func (export "three") (result i32) (i32.const 3))"#);
    let mut plugin = Plugin::new(wat.as_str(), [], false).unwrap();
    let err = plugin.call::<&str, &str>("three", "").unwrap_err();
    assert_eq!(err.to_string(), "Returned non-zero exit code: 3");
    let (_, code) = plugin
        .call_get_error_code::<&str, &str>("three", "")
        .unwrap_err();
    assert_eq!(code, 3);
}

#[test]
fn loading_from_bytes_and_manifests() {
    let path = plugin("extism_echo");
    let bytes = std::fs::read(&path).unwrap();
    let from_vec = Plugin::new(bytes.clone(), [reflect_fn()], false).unwrap();
    let from_slice = Plugin::new(bytes.as_slice(), [reflect_fn()], false).unwrap();
    let from_vec_ref = Plugin::new(&bytes, [reflect_fn()], false).unwrap();
    let mut manifest = Manifest::new([Wasm::data(bytes.clone())]);
    let from_mut_ref = Plugin::new(&mut manifest, [reflect_fn()], false).unwrap();
    let json = format!(r#"{{"wasm": [{{"path": "{}"}}]}}"#, path.display());
    let from_json = Plugin::new(json.as_str(), [reflect_fn()], false).unwrap();
    for mut p in [from_vec, from_slice, from_vec_ref, from_mut_ref, from_json] {
        assert!(p.function_exists("echo"));
        assert!(!p.function_exists("missing"));
        assert!(!p.has_wasi());
        assert_eq!(p.call::<&str, &str>("echo", "same").unwrap(), "same");
        assert_eq!(p.call::<&str, &str>("reflect", "back").unwrap(), "back");
        p.reset().unwrap();
    }
    assert!(Plugin::new(bytes, [reflect_fn()], true).unwrap().has_wasi());
    let err = Plugin::new(b"not wasm".as_slice(), [], false).unwrap_err();
    assert!(format!("{err:#}").contains("compile"), "{err:#}");
}

#[test]
fn compiled_plugin_makes_independent_instances() {
    let compiled = PluginBuilder::new(Manifest::new([Wasm::file(plugin("extism_vars"))]))
        .with_wasi(false)
        .with_cache_disabled()
        .compile()
        .unwrap();
    let mut a = Plugin::new_from_compiled(&compiled).unwrap();
    let mut b = Plugin::new_from_compiled(&compiled).unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.call::<(), &str>("increment", ()).unwrap(), "1");
    assert_eq!(a.call::<(), &str>("increment", ()).unwrap(), "2");
    assert_eq!(b.call::<(), &str>("increment", ()).unwrap(), "1");
    a.call::<(), ()>("reset", ()).unwrap();
    assert_eq!(a.call::<(), &str>("increment", ()).unwrap(), "1");
}

#[test]
fn modules_linked_by_name() {
    // As in Extism's `linking` example: the manifest names a module, and the main module
    // imports from it by that name.
    let math = "(module (func (export \"add_one\") (param i32) (result i32)
                   (i32.add (local.get 0) (i32.const 1))))";
    let main = module(
        r#"(import "math" "add_one" (func $add_one (param i32) (result i32)))"#,
        r#"(func (export "run") (result i32)
             (call $output_i64 (i64.extend_i32_u (call $add_one (i32.const 41))))
             (i32.const 0))"#,
    );
    let manifest = Manifest::new([
        Wasm::Data {
            data: math.as_bytes().to_vec(),
            meta: WasmMetadata {
                name: Some("math".to_string()),
                hash: None,
            },
        },
        Wasm::Data {
            data: main.into_bytes(),
            meta: WasmMetadata {
                name: Some("main".to_string()),
                hash: None,
            },
        },
    ]);
    let mut plugin = PluginBuilder::new(manifest).build().unwrap();
    assert_eq!(plugin.call::<&str, u64>("run", "").unwrap(), 42);
}

extism::typed_plugin!(VowelCounter {
    count_vowels(&str) -> Json<serde_json::Value>;
});

extism::typed_plugin!(pub Missing {
    count_vowels(&str) -> String;
    not_there(&str) -> String;
});

#[test]
fn typed_plugin_wraps_exports() {
    let load = || {
        Plugin::new(
            Manifest::new([Wasm::file(plugin("extism_count_vowels"))]),
            [],
            false,
        )
        .unwrap()
    };
    let mut counter: VowelCounter = load().try_into().unwrap();
    let Json(out) = counter.count_vowels("aaa").unwrap();
    assert_eq!(out["count"], 3);
    let Json(out) = counter.count_vowels("e").unwrap();
    assert_eq!(out["total"], 4);
    let plugin: Plugin = counter.into();
    assert!(plugin.function_exists("count_vowels"));

    let err = Missing::try_from(load())
        .err()
        .expect("not_there is missing");
    assert_eq!(err.to_string(), "Invalid function: not_there");
    // (Named so that the unused methods do not warn.)
    let _ = (Missing::count_vowels, Missing::not_there);
}

#[test]
fn plugins_and_pools_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Plugin>();
    send_sync::<CompiledPlugin>();
    send_sync::<CancelHandle>();
    send_sync::<Pool>();
    send_sync::<Function>();
    send_sync::<UserData<Vec<u8>>>();
    assert_eq!(EXTISM_ENV_MODULE, "extism:host/env");
    assert_eq!(EXTISM_USER_MODULE, "extism:host/user");
    assert!(!extism_version().is_empty());
}

//! The Extism Rust SDK's README, step by step, with the plug-in it loads from the web
//! replaced by the same plug-in built from `plugins/extism-pdk/extism_count_vowels` (and, for
//! the key-value store, a WAT plug-in with `count_vowels_kvstore`'s imports).

use extism::convert::Json;
use extism::*;

use crate::{module, plugin};

#[derive(Debug, serde::Deserialize)]
struct VowelCount {
    count: usize,
    total: usize,
    vowels: String,
}

#[test]
fn creating_and_calling_a_plugin() {
    let url = Wasm::file(plugin("extism_count_vowels"));
    let manifest = Manifest::new([url]);
    let mut plugin = Plugin::new(&manifest, [], true).unwrap();
    let res = plugin
        .call::<&str, &str>("count_vowels", "Hello, world!")
        .unwrap();
    assert_eq!(res, r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#);
}

#[test]
fn json_output_into_a_struct() {
    let manifest = Manifest::new([Wasm::file(plugin("extism_count_vowels"))]);
    let mut plugin = Plugin::new(&manifest, [], true).unwrap();
    let Json(res) = plugin
        .call::<&str, Json<VowelCount>>("count_vowels", "Hello, world!")
        .unwrap();
    assert_eq!((res.count, res.total), (3, 3));
    assert_eq!(res.vowels, "aeiouAEIOU");
}

#[test]
fn plugin_state_persists_between_calls() {
    let manifest = Manifest::new([Wasm::file(plugin("extism_count_vowels"))]);
    let mut plugin = Plugin::new(&manifest, [], true).unwrap();
    for total in [3, 6, 9] {
        let Json(res) = plugin
            .call::<&str, Json<VowelCount>>("count_vowels", "Hello, world!")
            .unwrap();
        assert_eq!(res.total, total);
    }
    // "These variables will persist until this plug-in is freed or you initialize a new one."
    let mut fresh = Plugin::new(&manifest, [], true).unwrap();
    let Json(res) = fresh
        .call::<&str, Json<VowelCount>>("count_vowels", "Hello, world!")
        .unwrap();
    assert_eq!(res.total, 3);
}

#[test]
fn configuration_changes_the_vowels() {
    let url = Wasm::file(plugin("extism_count_vowels"));
    let manifest = Manifest::new([url.clone()]);
    let mut plugin = Plugin::new(&manifest, [], true).unwrap();
    let res = plugin
        .call::<&str, &str>("count_vowels", "Yellow, world!")
        .unwrap();
    assert_eq!(res, r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#);
    let manifest = Manifest::new([url]).with_config_key("vowels", "aeiouyAEIOUY");
    let mut plugin = Plugin::new(&manifest, [], true).unwrap();
    let res = plugin
        .call::<&str, &str>("count_vowels", "Yellow, world!")
        .unwrap();
    assert_eq!(res, r#"{"count":4,"total":4,"vowels":"aeiouyAEIOUY"}"#);
}

#[test]
fn plinth_pdk_plugin_behaves_the_same() {
    // Plinth's own PDK build of count_vowels answers the README's calls the same way.
    let manifest = Manifest::new([Wasm::file(plugin("count_vowels"))]);
    let mut plugin = Plugin::new(&manifest, [], false).unwrap();
    for total in [3, 6] {
        let Json(res) = plugin
            .call::<&str, Json<VowelCount>>("count_vowels", "Hello, world!")
            .unwrap();
        assert_eq!((res.count, res.total), (3, total));
    }
}

/// count_vowels_kvstore: counts the vowels of the input, adds them to the u32 the host keeps
/// under "count-vowels" (`kv_read`, `kv_write`), and outputs
/// `{"count": N, "total": M, "vowels": "aeiouAEIOU"}`.
pub fn count_vowels_kvstore() -> Wasm {
    let imports = r#"
      (import "extism:host/user" "kv_read" (func $kv_read (param i64) (result i64)))
      (import "extism:host/user" "kv_write" (func $kv_write (param i64 i64)))"#;
    let body = r#"
      (data (i32.const 0) "count-vowels")
      (data (i32.const 16) "aeiouAEIOU")
      (data (i32.const 32) "{\"count\": ")
      (data (i32.const 48) ", \"total\": ")
      (data (i32.const 64) ", \"vowels\": \"aeiouAEIOU\"}")
      (func $is_vowel (param $c i32) (result i32) (local $i i32)
        (block $no (loop $l
          (br_if $no (i32.ge_u (local.get $i) (i32.const 10)))
          (if (i32.eq (local.get $c) (i32.load8_u (i32.add (i32.const 16) (local.get $i))))
            (then (return (i32.const 1))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l)))
        (i32.const 0))
      ;; Writes `v` in decimal at `dst`; returns the end.
      (func $itoa (param $v i32) (param $dst i32) (result i32) (local $t i32) (local $end i32)
        (local.set $t (local.get $v))
        (local.set $end (i32.add (local.get $dst) (i32.const 1)))
        (block $d (loop $l
          (br_if $d (i32.lt_u (local.get $t) (i32.const 10)))
          (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
          (local.set $end (i32.add (local.get $end) (i32.const 1)))
          (br $l)))
        (local.set $t (local.get $end))
        (loop $w
          (local.set $t (i32.sub (local.get $t) (i32.const 1)))
          (i32.store8 (local.get $t) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
          (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
          (br_if $w (i32.gt_u (local.get $t) (local.get $dst))))
        (local.get $end))
      (func $write (param $dst i32) (param $src i32) (param $len i32) (result i32)
        (memory.copy (local.get $dst) (local.get $src) (local.get $len))
        (i32.add (local.get $dst) (local.get $len)))
      (func (export "count_vowels") (result i32)
        (local $len i64) (local $i i64) (local $count i32) (local $total i32) (local $p i32)
        (local.set $len (call $input_length))
        (block $d (loop $l
          (br_if $d (i64.ge_u (local.get $i) (local.get $len)))
          (local.set $count (i32.add (local.get $count)
            (call $is_vowel (call $input_load_u8 (local.get $i)))))
          (local.set $i (i64.add (local.get $i) (i64.const 1)))
          (br $l)))
        (call $copy_out (call $kv_read (call $copy_in (i32.const 0) (i32.const 12))) (i32.const 1024))
        (local.set $total (i32.add (local.get $count) (i32.load (i32.const 1024))))
        (i32.store (i32.const 1024) (local.get $total))
        (call $kv_write (call $copy_in (i32.const 0) (i32.const 12))
                        (call $copy_in (i32.const 1024) (i32.const 4)))
        (local.set $p (call $write (i32.const 2048) (i32.const 32) (i32.const 10)))
        (local.set $p (call $itoa (local.get $count) (local.get $p)))
        (local.set $p (call $write (local.get $p) (i32.const 48) (i32.const 11)))
        (local.set $p (call $itoa (local.get $total) (local.get $p)))
        (local.set $p (call $write (local.get $p) (i32.const 64) (i32.const 25)))
        (call $output_block (call $copy_in (i32.const 2048) (i32.sub (local.get $p) (i32.const 2048))))
        (i32.const 0))"#;
    Wasm::data(module(imports, body))
}

// pretend this is redis or something :)
type KVStore = std::collections::BTreeMap<String, Vec<u8>>;

// When a first argument separated with a semicolon is provided to `host_fn` it is used as the
// variable name and type for the `UserData` parameter
host_fn!(kv_read(user_data: KVStore; key: String) -> u32 {
    let kv = user_data.get()?;
    let kv = kv.lock().unwrap();
    let value = kv
        .get(&key)
        .map(|x| u32::from_le_bytes(x.clone().try_into().unwrap()))
        .unwrap_or_else(|| 0u32);
    Ok(value)
});

host_fn!(kv_write(user_data: KVStore; key: String, value: u32) {
    let kv = user_data.get()?;
    let mut kv = kv.lock().unwrap();
    kv.insert(key, value.to_le_bytes().to_vec());
    Ok(())
});

#[test]
fn host_functions_keep_a_persistent_kv_store() {
    let kv_store = UserData::new(KVStore::default());

    let manifest = Manifest::new([count_vowels_kvstore()]);
    let mut plugin = PluginBuilder::new(manifest.clone())
        .with_wasi(true)
        .with_function("kv_read", [PTR], [PTR], kv_store.clone(), kv_read)
        .with_function("kv_write", [PTR, PTR], [], kv_store.clone(), kv_write)
        .build()
        .unwrap();

    for i in 1..=5 {
        let res = plugin
            .call::<&str, &str>("count_vowels", "Hello, world!")
            .unwrap();
        assert_eq!(
            res,
            format!(
                r#"{{"count": 3, "total": {}, "vowels": "aeiouAEIOU"}}"#,
                3 * i
            )
        );
    }
    let kv = kv_store.get().unwrap();
    assert_eq!(kv.lock().unwrap()["count-vowels"], 15u32.to_le_bytes());

    // The store outlives the plug-in: a new one carries on from it.
    let mut again = Plugin::new(
        &manifest,
        [
            Function::new("kv_read", [PTR], [PTR], kv_store.clone(), kv_read),
            Function::new("kv_write", [PTR, PTR], [], kv_store.clone(), kv_write),
        ],
        true,
    )
    .unwrap();
    let res = again.call::<&str, &str>("count_vowels", "aaaa").unwrap();
    assert_eq!(res, r#"{"count": 4, "total": 19, "vowels": "aeiouAEIOU"}"#);
}

#[derive(serde::Serialize)]
struct Cart {
    cart_total: i32,
    is_new_customer: bool,
    provided_email: bool,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Discount {
    discount_percent: f32,
}

#[test]
fn checkout_example() {
    // The shop host of Plinth's README (examples/checkout), written against Extism's API.
    let manifest = Manifest::new([Wasm::file(plugin("checkout"))]);
    let mut plugin = Plugin::new(&manifest, [], false).unwrap();
    let mut discount = |is_new_customer| {
        let cart = Cart {
            cart_total: 12000,
            is_new_customer,
            provided_email: true,
        };
        let Json(d) = plugin
            .call::<Json<Cart>, Json<Discount>>("before_checkout_finalize", Json(cart))
            .unwrap();
        d.discount_percent
    };
    assert_eq!(discount(true), 20.0);
    assert_eq!(discount(false), 0.0);
}

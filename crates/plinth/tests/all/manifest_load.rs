//! Loading plug-ins through manifests: raw bytes of each kind, files, hashes and the fields
//! the runtime applies.

use crate::common::{echo_wat, wat};
use plinth::manifest::sha256_hex;
use plinth::{Error, Manifest, ManifestError, Plugin, Wasm};

#[test]
fn raw_input_may_be_wasm_wat_or_a_manifest() {
    let wat_text = echo_wat();
    let binary = wat::parse_str(&wat_text).unwrap();
    let mut p = Plugin::new(binary.clone(), [], false).unwrap();
    assert_eq!(p.call::<_, &str>("echo", "bin").unwrap(), "bin");
    let mut p = Plugin::new(wat_text.as_bytes(), [], false).unwrap();
    assert_eq!(p.call::<_, &str>("echo", "wat").unwrap(), "wat");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.wasm");
    std::fs::write(&path, &binary).unwrap();
    let json = format!(
        r#"{{"wasm":[{{"path":"{}"}}],"config":{{"k":"v"}}}}"#,
        path.display()
    );
    let mut p = Plugin::new(json.as_bytes(), [], false).unwrap();
    assert_eq!(p.call::<_, &str>("echo", "json").unwrap(), "json");
    assert_eq!(p.config().get("k").map(String::as_str), Some("v"));
    let toml = format!(
        "[[wasm]]\npath = \"{}\"\n[config]\nk = \"t\"\n",
        path.display()
    );
    let mut p = Plugin::new(toml.as_bytes(), [], false).unwrap();
    assert_eq!(p.call::<_, &str>("echo", "toml").unwrap(), "toml");
    assert_eq!(p.config().get("k").map(String::as_str), Some("t"));
}

#[test]
fn hashes_are_checked() {
    let bytes = echo_wat().into_bytes();
    let good = sha256_hex(&bytes);
    let m = Manifest::new([Wasm::data(bytes.clone()).with_hash(good.clone())]);
    assert!(Plugin::new(m, [], false).is_ok());
    let bad = "0".repeat(64);
    let m = Manifest::new([Wasm::data(bytes).with_hash(bad.clone())]);
    let err = Plugin::new(m, [], false).unwrap_err();
    assert!(
        matches!(err, Error::Manifest(ManifestError::HashMismatch { .. })),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&good) && msg.contains(&bad),
        "names both hashes: {msg}"
    );
}

#[test]
fn manifest_errors_come_through() {
    let err = Plugin::new(
        &br#"{"wasm":[{"path":"x.wasm"}],"colour":"red"}"#[..],
        [],
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
    let err = Plugin::new(&br#"{"wasm":[]}"#[..], [], false).unwrap_err();
    assert!(matches!(err, Error::Manifest(_)), "{err:?}");
    let err = Plugin::new(
        Manifest::new([Wasm::file("/no/such/plugin.wasm")]),
        [],
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("/no/such/plugin.wasm"), "{err}");
    let err = Plugin::new(
        Manifest::new([Wasm::data(echo_wat().into_bytes())]).with_allowed_host("[unclosed"),
        [],
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("[unclosed"), "{err}");
}

#[test]
fn config_from_the_manifest_reaches_the_plugin() {
    let m = Manifest::new([Wasm::data(
        wat(r#"(data (i32.const 0) "who")
               (func (export "who") (result i32)
                 (call $output_block (call $config_get (call $copy_in (i32.const 0) (i32.const 3)))) (i32.const 0))"#)
        .into_bytes(),
    )])
    .with_config([("who", "manifest")]);
    let mut p = Plugin::builder(m).with_wasi(false).build().unwrap();
    assert_eq!(p.call::<_, String>("who", "").unwrap(), "manifest");
}

#[test]
fn json_values_round_trip_through_a_plugin() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Cart {
        cart_total: i32,
        is_new_customer: bool,
    }
    let mut p = Plugin::new(echo_wat().as_bytes(), [], false).unwrap();
    let cart = Cart {
        cart_total: 12000,
        is_new_customer: true,
    };
    let plinth::Json(back): plinth::Json<Cart> = p.call("echo", plinth::Json(&cart)).unwrap();
    assert_eq!(back, cart);
    let n: u32 = p.call("echo", 7u32).unwrap();
    assert_eq!(n, 7);
    let err = p
        .call::<_, plinth::Json<Cart>>("echo", "not json")
        .unwrap_err();
    assert!(matches!(err, Error::Convert(_)), "{err:?}");
}

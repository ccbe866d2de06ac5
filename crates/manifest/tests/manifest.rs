use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plinth_manifest::*;

const FULL_JSON: &str = r#"{
  "wasm": [
    {"path": "lib/a.wasm", "name": "a", "hash": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
    {"data": "AGFzbQEAAAA=", "name": "b"},
    {"url": "https://example.com/m.wasm", "headers": {"Authorization": "Bearer x"}, "method": "POST", "name": "main"}
  ],
  "memory": {"max_pages": 16, "max_http_response_bytes": 4096, "max_var_bytes": 2048},
  "config": {"key": "value", "other": "thing"},
  "allowed_hosts": ["example.com", "*.example.org"],
  "allowed_paths": {"host/dir": "/guest/dir", "ro:host/other": "/data"},
  "timeout_ms": 1000
}"#;

const FULL_TOML: &str = r#"
allowed_hosts = ["example.com", "*.example.org"]
timeout_ms = 1000

[[wasm]]
path = "lib/a.wasm"
name = "a"
hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

[[wasm]]
data = "AGFzbQEAAAA="
name = "b"

[[wasm]]
url = "https://example.com/m.wasm"
headers = { Authorization = "Bearer x" }
method = "POST"
name = "main"

[memory]
max_pages = 16
max_http_response_bytes = 4096
max_var_bytes = 2048

[config]
key = "value"
other = "thing"

[allowed_paths]
"host/dir" = "/guest/dir"
"ro:host/other" = "/data"
"#;

const WASM_HEADER: &[u8] = b"\0asm\x01\0\0\0";

fn full_expected() -> Manifest {
    Manifest::new([
        Wasm::file("lib/a.wasm")
            .with_name("a")
            .with_hash("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
        Wasm::data(WASM_HEADER).with_name("b"),
        Wasm::url("https://example.com/m.wasm")
            .with_header("Authorization", "Bearer x")
            .with_method("POST")
            .with_name("main"),
    ])
    .with_memory_max(16)
    .with_http_response_max(4096)
    .with_var_max(2048)
    .with_config_key("key", "value")
    .with_config([("other", "thing")])
    .with_allowed_host("example.com")
    .with_allowed_hosts(["*.example.org"])
    .with_allowed_path("host/dir", "/guest/dir")
    .with_allowed_path("ro:host/other", "/data")
    .with_timeout(Duration::from_secs(1))
}

fn json_err(text: &str) -> String {
    match Manifest::from_json(text) {
        Err(ManifestError::Json(msg)) => msg,
        other => panic!("expected a JSON error, got {other:?}"),
    }
}

fn toml_err(text: &str) -> String {
    match Manifest::from_toml(text) {
        Err(ManifestError::Toml(msg)) => msg,
        other => panic!("expected a TOML error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- parsing

#[test]
fn json_every_field_parses_and_round_trips() {
    let parsed = Manifest::from_json(FULL_JSON).unwrap();
    assert_eq!(parsed, full_expected());
    let again = Manifest::from_json(&parsed.to_json()).unwrap();
    assert_eq!(again, parsed);
    // Serde path (derive) agrees with the typed parser.
    let via_serde: Manifest = serde_json::from_str(FULL_JSON).unwrap();
    assert_eq!(via_serde, parsed);
}

#[test]
fn toml_every_field_parses_and_round_trips() {
    let parsed = Manifest::from_toml(FULL_TOML).unwrap();
    assert_eq!(parsed, full_expected());
    let text = parsed.to_toml().unwrap();
    assert_eq!(Manifest::from_toml(&text).unwrap(), parsed);
    // And across formats.
    assert_eq!(Manifest::from_json(&parsed.to_json()).unwrap(), parsed);
}

#[test]
fn minimal_manifest_has_defaults() {
    let m = Manifest::from_json(r#"{"wasm": [{"path": "x.wasm"}]}"#).unwrap();
    assert_eq!(m, Manifest::new([Wasm::file("x.wasm")]));
    assert_eq!(m.memory, MemoryOptions::default());
    assert!(m.config.is_empty());
    assert_eq!(m.allowed_hosts, None);
    assert_eq!(m.allowed_paths, None);
    assert_eq!(m.timeout(), None);
    assert_eq!(m.max_var_bytes(), DEFAULT_MAX_VAR_BYTES);
    assert_eq!(m.max_http_response_bytes(), DEFAULT_MAX_HTTP_RESPONSE_BYTES);
    assert_eq!(DEFAULT_MAX_VAR_BYTES, 1024 * 1024);
    assert_eq!(DEFAULT_MAX_HTTP_RESPONSE_BYTES, 50 * 1024 * 1024);
    // Compact output: absent fields are not written.
    let json: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
    assert_eq!(json, serde_json::json!({"wasm": [{"path": "x.wasm"}]}));
}

#[test]
fn limits_and_timeout_accessors() {
    let m = Manifest::new([Wasm::file("x.wasm")])
        .with_var_max(7)
        .with_http_response_max(9)
        .with_timeout(Duration::from_millis(250));
    assert_eq!(m.max_var_bytes(), 7);
    assert_eq!(m.max_http_response_bytes(), 9);
    assert_eq!(m.timeout(), Some(Duration::from_millis(250)));
}

#[test]
fn unknown_top_level_field_is_named() {
    let msg = json_err(r#"{"wasm": [{"path": "x.wasm"}], "wasi": true}"#);
    assert!(msg.contains("wasi"), "{msg}");
    let msg = toml_err("wasi = true\n[[wasm]]\npath = \"x.wasm\"\n");
    assert!(msg.contains("wasi"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn unknown_memory_field_is_named() {
    let msg = json_err(r#"{"wasm": [{"path": "x.wasm"}], "memory": {"max_page": 3}}"#);
    assert!(msg.contains("max_page"), "{msg}");
    let msg = toml_err("[[wasm]]\npath = \"x.wasm\"\n[memory]\nmax_page = 3\n");
    assert!(msg.contains("max_page"), "{msg}");
    assert!(msg.contains("line 4"), "{msg}");
}

#[test]
fn unknown_wasm_entry_field_is_named() {
    let msg = json_err(r#"{"wasm": [{"path": "x.wasm", "nmae": "a"}]}"#);
    assert!(msg.contains("nmae"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
    let msg = toml_err("[[wasm]]\npath = \"x.wasm\"\nnmae = \"a\"\n");
    assert!(msg.contains("nmae"), "{msg}");
    // The serde path reports it too.
    let err = serde_json::from_str::<Wasm>(r#"{"path": "x.wasm", "nmae": "a"}"#).unwrap_err();
    assert!(err.to_string().contains("nmae"), "{err}");
}

#[test]
fn wrong_types_are_errors() {
    let msg = json_err(r#"{"wasm": [{"path": "x.wasm"}], "timeout_ms": "soon"}"#);
    assert!(msg.contains("invalid type"), "{msg}");
    let msg = json_err(r#"{"wasm": {"path": "x.wasm"}}"#);
    assert!(msg.contains("invalid type"), "{msg}");
    json_err(r#"{"wasm": [{"path": "x.wasm"}], "memory": {"max_pages": -1}}"#);
    json_err(r#"{"wasm": [{"path": "x.wasm"}], "config": {"k": 1}}"#);
    json_err(r#"{"wasm": [{"path": "x.wasm"}], "allowed_hosts": "example.com"}"#);
    json_err(r#"{"wasm": [{"data": 5}]}"#);
    json_err(r#"{"wasm": [{"data": [1, 300]}]}"#);
    toml_err("timeout_ms = \"soon\"\n[[wasm]]\npath = \"x.wasm\"\n");
    json_err(r#"{"config": {}}"#);
    json_err("{not json");
    toml_err("wasm = [");
}

#[test]
fn empty_wasm_is_an_error() {
    assert!(matches!(
        Manifest::from_json(r#"{"wasm": []}"#),
        Err(ManifestError::EmptyWasm)
    ));
    assert!(matches!(
        Manifest::from_toml("wasm = []"),
        Err(ManifestError::EmptyWasm)
    ));
    assert!(matches!(
        Manifest::default().resolve(),
        Err(ManifestError::EmptyWasm)
    ));
}

#[test]
fn entry_needs_exactly_one_source() {
    let err = Manifest::from_json(r#"{"wasm": [{"path": "x.wasm", "data": "AA=="}]}"#).unwrap_err();
    match &err {
        ManifestError::InvalidWasmEntry(msg) => {
            assert!(msg.contains("exactly one of path, data or url"), "{msg}");
            assert!(msg.contains("path and data"), "{msg}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = Manifest::from_toml("[[wasm]]\nname = \"a\"\n").unwrap_err();
    assert!(matches!(err, ManifestError::InvalidWasmEntry(_)), "{err:?}");
    let err =
        Manifest::from_json(r#"{"wasm": [{"path": "x.wasm", "method": "GET"}]}"#).unwrap_err();
    assert!(matches!(err, ManifestError::InvalidWasmEntry(_)), "{err:?}");
    // Serde path gives the same message.
    let err = serde_json::from_str::<Wasm>(r#"{"url": "u", "data": "AA=="}"#).unwrap_err();
    assert!(
        err.to_string().contains("exactly one of path, data or url"),
        "{err}"
    );
}

#[test]
fn base64_and_byte_array_data_decode() {
    let m = Manifest::from_json(r#"{"wasm": [{"data": "AGFzbQEAAAA="}]}"#).unwrap();
    assert_eq!(m.wasm[0], Wasm::data(WASM_HEADER));
    let m = Manifest::from_json(r#"{"wasm": [{"data": [0, 97, 115, 109, 1, 0, 0, 0]}]}"#).unwrap();
    assert_eq!(m.wasm[0], Wasm::data(WASM_HEADER));
    let m = Manifest::from_toml("[[wasm]]\ndata = [0, 97, 115, 109, 1, 0, 0, 0]\n").unwrap();
    assert_eq!(m.wasm[0], Wasm::data(WASM_HEADER));
    // Written back as base64.
    assert!(m.to_json().contains("\"AGFzbQEAAAA=\""), "{}", m.to_json());
}

#[test]
fn bad_base64_is_an_error() {
    let err =
        Manifest::from_json(r#"{"wasm": [{"data": "not base64!", "name": "lib"}]}"#).unwrap_err();
    match &err {
        ManifestError::Base64 { name, .. } => assert_eq!(name, "lib"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("base64"), "{err}");
    let err = Manifest::from_toml("[[wasm]]\ndata = \"AGFzbQEAAAA\"\n").unwrap_err();
    assert!(matches!(err, ManifestError::Base64 { .. }), "{err:?}");
}

#[test]
fn non_utf8_and_format_detection() {
    assert!(matches!(
        Manifest::parse(b"\xff\xfe{"),
        Err(ManifestError::NotUtf8)
    ));
    let m = Manifest::parse(b"  \n {\"wasm\": [{\"path\": \"x.wasm\"}]}").unwrap();
    assert_eq!(m.wasm[0], Wasm::file("x.wasm"));
    let m = Manifest::parse(b"# comment\n[[wasm]]\npath = \"x.wasm\"\n").unwrap();
    assert_eq!(m.wasm[0], Wasm::file("x.wasm"));
    assert!(matches!(
        Manifest::parse(b"{oops"),
        Err(ManifestError::Json(_))
    ));
    assert!(matches!(
        Manifest::parse(b"oops = "),
        Err(ManifestError::Toml(_))
    ));
}

#[test]
fn looks_like_manifest_tells_inputs_apart() {
    assert!(Manifest::looks_like_manifest(b"{\"wasm\": []}"));
    assert!(Manifest::looks_like_manifest(b"\n\t  {"));
    assert!(Manifest::looks_like_manifest(
        b"# plug-in\n[[wasm]]\npath = \"x.wasm\"\n"
    ));
    assert!(Manifest::looks_like_manifest(b"wasm = [{ url = \"u\" }]"));
    assert!(!Manifest::looks_like_manifest(b"timeout_ms = 5"));
    assert!(!Manifest::looks_like_manifest(WASM_HEADER));
    assert!(!Manifest::looks_like_manifest(b"(module)"));
    assert!(!Manifest::looks_like_manifest(
        b"  ;; a comment\n(module (func (export \"f\")))"
    ));
    assert!(!Manifest::looks_like_manifest(b"(; block ;) (module)"));
    assert!(!Manifest::looks_like_manifest(b""));
    assert!(!Manifest::looks_like_manifest(b"\xff\xfe"));
}

// ---------------------------------------------------------------- builders

#[test]
fn builders_produce_expected_struct() {
    let m = Manifest::new([PathBuf::from("a.wasm")])
        .with_wasm(Path::new("b.wasm"))
        .with_wasm(vec![1u8, 2, 3])
        .with_wasm(&[4u8][..])
        .with_wasm(Wasm::url("https://x/y.wasm").with_name("net"))
        .with_config_key("a", "1")
        .with_config([("b", "2"), ("c", "3")])
        .with_allowed_host("a.com")
        .with_allowed_hosts(vec!["b.com".to_string()])
        .with_allowed_path("ro:/srv", "/srv")
        .with_allowed_path(PathBuf::from("/tmp"), "/tmp")
        .with_timeout(Duration::from_millis(1500))
        .with_memory_max(4)
        .with_http_response_max(100)
        .with_var_max(200);
    let expected = Manifest {
        wasm: vec![
            Wasm::File {
                path: "a.wasm".into(),
                meta: WasmMetadata::default(),
            },
            Wasm::File {
                path: "b.wasm".into(),
                meta: WasmMetadata::default(),
            },
            Wasm::Data {
                data: vec![1, 2, 3],
                meta: WasmMetadata::default(),
            },
            Wasm::Data {
                data: vec![4],
                meta: WasmMetadata::default(),
            },
            Wasm::Url {
                req: HttpRequest {
                    url: "https://x/y.wasm".into(),
                    headers: BTreeMap::new(),
                    method: None,
                },
                meta: WasmMetadata {
                    name: Some("net".into()),
                    hash: None,
                },
            },
        ],
        memory: MemoryOptions {
            max_pages: Some(4),
            max_http_response_bytes: Some(100),
            max_var_bytes: Some(200),
        },
        config: BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("c".to_string(), "3".to_string()),
        ]),
        allowed_hosts: Some(vec!["a.com".into(), "b.com".into()]),
        allowed_paths: Some(BTreeMap::from([
            ("ro:/srv".to_string(), PathBuf::from("/srv")),
            ("/tmp".to_string(), PathBuf::from("/tmp")),
        ])),
        timeout_ms: Some(1500),
    };
    assert_eq!(m, expected);
    assert_eq!(m.wasm[4].name(), Some("net"));
    assert_eq!(m.wasm[4].meta().hash, None);
    let hashed = Wasm::data(vec![1]).with_hash("ab");
    assert_eq!(hashed.meta().hash.as_deref(), Some("ab"));
    assert_eq!(hashed.name(), None);
}

#[test]
fn preopens_parse_ro_prefix() {
    let m = Manifest::new([Wasm::file("x.wasm")])
        .with_allowed_path("ro:/data/in", "/in")
        .with_allowed_path("/data/out", "/out");
    let mut preopens = m.preopens();
    preopens.sort_by(|a, b| a.guest.cmp(&b.guest));
    assert_eq!(
        preopens,
        vec![
            Preopen {
                host: "/data/in".into(),
                guest: "/in".into(),
                read_only: true,
            },
            Preopen {
                host: "/data/out".into(),
                guest: "/out".into(),
                read_only: false,
            },
        ]
    );
    assert!(Manifest::new([Wasm::file("x.wasm")]).preopens().is_empty());
}

// ---------------------------------------------------------------- files

#[test]
fn from_file_resolves_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("plugins");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("m.wasm"), WASM_HEADER).unwrap();
    let manifest_path = sub.join("manifest.json");
    std::fs::write(
        &manifest_path,
        r#"{
          "wasm": [{"path": "m.wasm"}, {"path": "/abs/lib.wasm", "name": "lib"}],
          "allowed_paths": {"data": "/data", "ro:ro-data": "/ro", "/abs/dir": "/abs", "ro:/abs/ro": "/absro"}
        }"#,
    )
    .unwrap();
    let m = Manifest::from_file(&manifest_path).unwrap();
    assert_eq!(m.wasm[0], Wasm::file(sub.join("m.wasm")));
    assert_eq!(m.wasm[1], Wasm::file("/abs/lib.wasm").with_name("lib"));
    let paths = m.allowed_paths.clone().unwrap();
    let key = |p: PathBuf| p.to_string_lossy().into_owned();
    assert_eq!(
        paths.get(&key(sub.join("data"))),
        Some(&PathBuf::from("/data"))
    );
    assert_eq!(
        paths.get(&format!("ro:{}", key(sub.join("ro-data")))),
        Some(&PathBuf::from("/ro"))
    );
    assert_eq!(paths.get("/abs/dir"), Some(&PathBuf::from("/abs")));
    assert_eq!(paths.get("ro:/abs/ro"), Some(&PathBuf::from("/absro")));
    let ro = m.preopens().into_iter().find(|p| p.guest == "/ro").unwrap();
    assert!(ro.read_only);
    assert_eq!(ro.host, sub.join("ro-data"));

    // TOML file, loaded and resolved from another working directory.
    let toml_path = sub.join("plugin.toml");
    std::fs::write(&toml_path, "[[wasm]]\npath = \"m.wasm\"\n").unwrap();
    let m = Manifest::from_file(&toml_path).unwrap();
    let modules = m.resolve().unwrap();
    assert_eq!(modules[0].bytes, WASM_HEADER);

    let missing = sub.join("nope.json");
    let err = Manifest::from_file(&missing).unwrap_err();
    assert!(err.to_string().contains("nope.json"), "{err}");
}

#[test]
fn file_read_ok_and_missing_file_names_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.wasm");
    std::fs::write(&path, WASM_HEADER).unwrap();
    let modules = Manifest::new([path.clone()]).resolve().unwrap();
    assert_eq!(
        modules,
        vec![ResolvedModule {
            name: MAIN_MODULE.into(),
            bytes: WASM_HEADER.to_vec(),
        }]
    );

    let missing = dir.path().join("missing.wasm");
    let err = Manifest::new([missing.clone()]).resolve().unwrap_err();
    match &err {
        ManifestError::Read { path, .. } => assert_eq!(path, &missing),
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.starts_with("cannot read wasm file "), "{msg}");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
}

// ---------------------------------------------------------------- hashes

#[test]
fn sha256_hex_is_lowercase_hex() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn hash_match_mismatch_and_malformed() {
    let hash = sha256_hex(WASM_HEADER);
    let ok = Manifest::new([Wasm::data(WASM_HEADER).with_hash(hash.clone())]);
    assert_eq!(ok.resolve().unwrap()[0].bytes, WASM_HEADER);
    // Case-insensitive comparison.
    let upper = Manifest::new([Wasm::data(WASM_HEADER).with_hash(hash.to_uppercase())]);
    assert!(upper.resolve().is_ok());

    let wrong = sha256_hex(b"other");
    let err = Manifest::new([Wasm::data(WASM_HEADER)
        .with_name("lib")
        .with_hash(wrong.clone())])
    .resolve()
    .unwrap_err();
    match &err {
        ManifestError::HashMismatch {
            name,
            expected,
            actual,
        } => {
            assert_eq!(name, "main");
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &hash);
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&wrong) && msg.contains(&hash), "{msg}");

    for bad in ["abc", "zz", &"g".repeat(64), &format!("{hash}00")] {
        let err = Manifest::new([Wasm::data(WASM_HEADER).with_hash(bad)])
            .resolve()
            .unwrap_err();
        match err {
            ManifestError::InvalidHash { name, hash } => {
                assert_eq!(name, "main");
                assert_eq!(hash, bad);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- naming

fn names(m: &Manifest) -> Vec<String> {
    m.resolve().unwrap().into_iter().map(|r| r.name).collect()
}

#[test]
fn single_module_is_main() {
    assert_eq!(names(&Manifest::new([Wasm::data(vec![1])])), ["main"]);
    assert_eq!(
        names(&Manifest::new([Wasm::data(vec![1]).with_name("solo")])),
        ["main"]
    );
}

#[test]
fn unnamed_module_is_main_and_goes_last() {
    let m = Manifest::new([
        Wasm::data(vec![0]),
        Wasm::data(vec![1]).with_name("a"),
        Wasm::data(vec![2]).with_name("b"),
    ]);
    let modules = m.resolve().unwrap();
    let got: Vec<(&str, u8)> = modules
        .iter()
        .map(|r| (r.name.as_str(), r.bytes[0]))
        .collect();
    assert_eq!(got, [("a", 1), ("b", 2), ("main", 0)]);
}

#[test]
fn explicit_main_wins_over_position() {
    let m = Manifest::new([
        Wasm::data(vec![0]).with_name("main"),
        Wasm::data(vec![1]).with_name("lib"),
    ]);
    assert_eq!(names(&m), ["lib", "main"]);
}

#[test]
fn last_module_is_main_when_none_is_named_main() {
    let m = Manifest::new([
        Wasm::data(vec![0]).with_name("a"),
        Wasm::data(vec![1]).with_name("b"),
        Wasm::data(vec![2]).with_name("c"),
    ]);
    assert_eq!(m.module_names().unwrap(), ["a", "b", "main"]);
    let modules = m.resolve().unwrap();
    assert_eq!(modules[2].name, "main");
    assert_eq!(modules[2].bytes, [2]);
}

#[test]
fn duplicate_names_are_errors() {
    let dup = |m: Manifest| match m.resolve() {
        Err(ManifestError::DuplicateName(name)) => name,
        other => panic!("expected DuplicateName, got {other:?}"),
    };
    assert_eq!(
        dup(Manifest::new([
            Wasm::data(vec![0]).with_name("a"),
            Wasm::data(vec![1]).with_name("a"),
        ])),
        "a"
    );
    // Two unnamed modules would both be "main".
    assert_eq!(
        dup(Manifest::new([Wasm::data(vec![0]), Wasm::data(vec![1])])),
        "main"
    );
    assert_eq!(
        dup(Manifest::new([
            Wasm::data(vec![0]).with_name("main"),
            Wasm::data(vec![1]),
        ])),
        "main"
    );
    let err = Manifest::new([Wasm::data(vec![0]).with_name("")])
        .resolve()
        .unwrap_err();
    assert!(matches!(err, ManifestError::InvalidWasmEntry(_)), "{err:?}");
}

#[cfg(not(feature = "fetch"))]
#[test]
fn without_the_fetch_feature_a_url_module_is_a_fetch_error_saying_so() {
    let err = Manifest::new([Wasm::url("http://127.0.0.1:9/x.wasm")])
        .resolve()
        .unwrap_err();
    match err {
        ManifestError::Fetch { url, message } => {
            assert_eq!(url, "http://127.0.0.1:9/x.wasm");
            assert!(message.contains("`fetch` feature"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

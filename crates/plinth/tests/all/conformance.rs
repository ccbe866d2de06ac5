//! The cross-SDK fixtures of tests/conformance, run on the Rust API: every SDK runs the same
//! cases and must give the same answers.

use std::path::{Path, PathBuf};

use plinth::{ErrorKind, Plugin, Source};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

#[test]
fn every_error_case_has_its_kind_and_code() {
    let dir = fixtures().join("errors");
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let function = case["function"].as_str().unwrap();
        let loaded = Plugin::builder(Source::file(dir.join(file)))
            .with_wasi(false)
            .build();
        let err = match (case["stage"].as_str().unwrap(), loaded) {
            ("load", Ok(_)) => panic!("{file} loaded, but the case expects a load failure"),
            ("load", Err(e)) => e,
            (_, Err(e)) => panic!("{file} failed to load: {e}"),
            (_, Ok(mut plugin)) => plugin
                .call::<&[u8], &[u8]>(function, b"")
                .map(|_| ())
                .expect_err(file),
        };
        let kind = err.kind();
        assert_eq!(kind.name(), case["kind"].as_str().unwrap(), "{file}: {err}");
        assert_eq!(
            i64::from(kind.number()),
            case["kind_code"].as_i64().unwrap(),
            "{file}"
        );
        assert_eq!(
            i64::from(err.code()),
            case["code"].as_i64().unwrap(),
            "{file}: {err}"
        );
        assert_eq!(ErrorKind::from_number(kind.number()), Some(kind));
    }
}

#[test]
fn kind_numbers_and_names_are_unique_and_stable() {
    let mut seen = std::collections::HashSet::new();
    for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
        assert_eq!(
            kind.number(),
            i as i32 + 1,
            "numbers run 1, 2, 3 ... in ALL's order"
        );
        assert!(seen.insert(kind.name()), "{kind} twice");
    }
    // Numbers users may have stored: these never change.
    assert_eq!(ErrorKind::Trap.number(), 7);
    assert_eq!(ErrorKind::Timeout.number(), 10);
    assert_eq!(ErrorKind::from_number(0), None);
}

#[test]
fn a_manifest_file_resolves_its_paths_against_its_own_folder() {
    let wasm =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugins/wasi_files.wasm");
    if !wasm.exists() {
        panic!(
            "{} is missing; run scripts/build-plugins.sh",
            wasm.display()
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("paths");
    std::fs::create_dir(tmp.path().join("data")).unwrap();
    std::fs::copy(src.join("manifest.json"), tmp.path().join("manifest.json")).unwrap();
    std::fs::copy(
        src.join("data/hello.txt"),
        tmp.path().join("data/hello.txt"),
    )
    .unwrap();
    std::fs::copy(&wasm, tmp.path().join("wasi_files.wasm")).unwrap();
    // The working directory (this crate's folder) has neither wasi_files.wasm nor data/.
    let mut plugin = Plugin::builder(Source::file(tmp.path().join("manifest.json")))
        .with_wasi(true)
        .build()
        .unwrap();
    let out: String = plugin.call("copy_file", "/data/hello.txt").unwrap();
    assert_eq!(out, "/data/hello.txt.out");
    assert_eq!(
        std::fs::read(tmp.path().join("data/hello.txt.out")).unwrap(),
        std::fs::read(src.join("data/hello.txt")).unwrap()
    );
}

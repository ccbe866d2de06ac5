//! Precompiled artifacts (`PluginBuilder::compile_artifact`, `from_artifact`, `with_artifact`):
//! native code loads only when signed with the host's key and compiled from the module the
//! host names; an artifact for another engine is compiled from its wasm instead.

use plinth::{ArtifactKey, Error, ErrorKind, Manifest, Plugin, PluginBuilder, Wasm};

use crate::common::{echo_wat, wat};

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

fn artifact_of(wasm: &[u8], key: &ArtifactKey) -> Vec<u8> {
    Plugin::builder(wasm)
        .with_cache_dir(None::<&str>)
        .compile_artifact(key)
        .unwrap()
}

fn load(artifact: &[u8], key: &ArtifactKey) -> plinth::Result<plinth::CompiledPlugin> {
    PluginBuilder::from_artifact(artifact, key)
        .with_cache_dir(None::<&str>)
        .compile()
}

fn echo(compiled: &plinth::CompiledPlugin, input: &str) -> String {
    compiled.call_fresh("echo", input).unwrap()
}

#[test]
fn an_artifact_loads_without_compiling_and_runs_the_same() {
    let key = ArtifactKey::generate().unwrap();
    let bytes = artifact_of(&wasm(&echo_wat()), &key);
    let compiled = load(&bytes, &key).unwrap();
    assert!(compiled.is_precompiled());
    assert_eq!(echo(&compiled, "hello artifact"), "hello artifact");
    assert_eq!(compiled.functions(), ["echo"]);
}

#[test]
fn an_altered_artifact_or_another_key_is_refused_with_an_artifact_error() {
    let key = ArtifactKey::generate().unwrap();
    let bytes = artifact_of(&wasm(&echo_wat()), &key);
    // One flipped bit anywhere: in the header, the wasm, the native code or the tag.
    for at in [
        0,
        20,
        40,
        90,
        bytes.len() / 2,
        bytes.len() - 100,
        bytes.len() - 1,
    ] {
        let mut altered = bytes.clone();
        altered[at] ^= 1;
        let err = load(&altered, &key)
            .err()
            .expect("an altered artifact loaded");
        assert_eq!(err.kind(), ErrorKind::Artifact, "byte {at}: {err}");
    }
    let err = load(&bytes, &ArtifactKey::generate().unwrap())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Artifact);
    assert!(err.to_string().contains("another key"), "{err}");
    // Not an artifact at all: wasm, text, nothing.
    for junk in [wasm(&echo_wat()), b"hello".to_vec(), Vec::new()] {
        let err = load(&junk, &key).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Artifact, "{err}");
        assert!(
            err.to_string().contains("plinth compile"),
            "says what to do: {err}"
        );
    }
    // Cut short.
    let err = load(&bytes[..bytes.len() - 7], &key).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Artifact);
}

#[test]
fn an_artifact_is_bound_to_the_module_it_was_compiled_from() {
    let key = ArtifactKey::generate().unwrap();
    let module = wasm(&echo_wat());
    let bytes = artifact_of(&module, &key);
    // Beside the manifest of the same module: precompiled.
    let same = PluginBuilder::new(Manifest::new([Wasm::data(module.clone())]))
        .with_artifact(bytes.clone(), &key)
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap();
    assert!(same.is_precompiled());
    assert_eq!(echo(&same, "same"), "same");
    // Beside another module: refused, naming both hashes.
    let other = wasm(&wat(r#"(func (export "echo") (result i32) (i32.const 1))"#));
    let err = PluginBuilder::new(Manifest::new([Wasm::data(other)]))
        .with_artifact(bytes, &key)
        .with_cache_dir(None::<&str>)
        .compile()
        .err()
        .expect("an artifact of another module was used");
    assert!(matches!(err, Error::Artifact(_)), "{err:?}");
    assert!(err.to_string().contains("another module"), "{err}");
}

#[test]
fn an_artifact_for_another_engine_is_compiled_from_its_wasm() {
    let key = ArtifactKey::generate().unwrap();
    let bytes = artifact_of(&wasm(&echo_wat()), &key);
    // Made without fuel metering, loaded by a host that meters fuel: another engine.
    let compiled = PluginBuilder::from_artifact(bytes.clone(), &key)
        .with_fuel_limit(1_000_000)
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap();
    assert!(!compiled.is_precompiled());
    assert_eq!(echo(&compiled, "compiled instead"), "compiled instead");
    // And the other way round.
    let fueled = Plugin::builder(wasm(&echo_wat()))
        .with_fuel_limit(1_000_000)
        .with_cache_dir(None::<&str>)
        .compile_artifact(&key)
        .unwrap();
    let unmetered = load(&fueled, &key).unwrap();
    assert!(!unmetered.is_precompiled());
    assert_eq!(echo(&unmetered, "x"), "x");
}

#[test]
fn artifact_keys_are_secrets_kept_in_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plinth.key");
    let key = ArtifactKey::generate().unwrap();
    key.write_new_file(&path).unwrap();
    // An existing key is never overwritten.
    assert!(ArtifactKey::generate()
        .unwrap()
        .write_new_file(&path)
        .is_err());
    let read = ArtifactKey::from_file(&path).unwrap();
    let bytes = artifact_of(&wasm(&echo_wat()), &key);
    assert!(load(&bytes, &read).unwrap().is_precompiled());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ArtifactKey::from_file(&path).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Artifact);
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    assert!(ArtifactKey::new(b"short".to_vec()).is_err());
    assert!(ArtifactKey::from_file(dir.path().join("missing")).is_err());
}

#[test]
fn an_artifact_holds_one_module() {
    let key = ArtifactKey::generate().unwrap();
    let dep = Wasm::data(wasm(r#"(module (func (export "f")))"#)).with_name("dep");
    let main = Wasm::data(wasm(&echo_wat()));
    let err = Plugin::builder(Manifest::new([dep, main]))
        .with_cache_dir(None::<&str>)
        .compile_artifact(&key)
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Artifact);
    assert!(err.to_string().contains("one module"), "{err}");
}

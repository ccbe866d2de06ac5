//! Support for the tests that run real plug-ins built from source.

use std::path::PathBuf;

use plinth::{Manifest, Plugin, Wasm};
use serde_json::Value;

/// Path of a plug-in built by `scripts/build-plugins.sh`. Panics with what to run when the
/// plug-in has not been built, so that a missing build is never a silent skip.
pub fn plugin(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm-plugins")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/install-wasm-toolchain.sh && bash scripts/build-plugins.sh` first",
        path.display()
    );
    path
}

/// Loads a built plug-in through a manifest that `manifest` may extend.
pub fn load(name: &str, manifest: impl FnOnce(Manifest) -> Manifest) -> Plugin {
    Plugin::new(
        manifest(Manifest::new([Wasm::file(plugin(name))])),
        [],
        false,
    )
    .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// Calls `function` and parses its output as JSON.
pub fn call_json(p: &mut Plugin, function: &str, input: &str) -> Value {
    let out: String = p.call(function, input).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out:?} is not JSON: {e}"))
}

//! Support for the tests that run real plug-ins built from source.

use std::path::PathBuf;

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

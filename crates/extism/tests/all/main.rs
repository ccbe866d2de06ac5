//! Rust hosts written the way Extism's README and docs write them (`use extism::*;`),
//! compiled unchanged against plinth-extism under the name `extism` (a host gets that name
//! from its one-line `Cargo.toml` switch; Cargo ignores a package's dependency on itself, so
//! here it comes from `extern crate`). They run the plug-ins built from `plugins/` and
//! hand-written WAT, and check the outputs. One test binary, one module per topic, so that
//! wasmtime is linked once.

extern crate plinth_extism as extism;

// The WAT prelude (every Extism ABI import and helpers) that Plinth's own tests use.
#[path = "../../../plinth/tests/all/common.rs"]
mod wat;

mod calls;
mod host_functions;
mod limits;
mod logging;
mod pool;
mod readme;

use std::path::PathBuf;

/// A plug-in built by `scripts/build-plugins.sh`; says what to run when it is missing, so a
/// missing build is never a silent skip.
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

/// A WAT module: host function imports (which must come first), the prelude, one page of
/// memory, then `body`.
pub fn module(host_imports: &str, body: &str) -> String {
    format!(
        "(module {host_imports}\n{}\n(memory (export \"memory\") 1)\n{body})",
        wat::PRELUDE
    )
}

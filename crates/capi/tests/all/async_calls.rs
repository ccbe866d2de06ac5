//! Compiles tests/c/async_calls.c (async calls and async host functions through the C API)
//! against include/plinth.h and the library, and runs it.

use std::process::Command;

use crate::cc;

#[test]
fn c_async_calls_pass() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("async_calls");
    cc::compile(
        "async_calls.c",
        &exe,
        &["-D_DEFAULT_SOURCE"],
        "compiling tests/c/async_calls.c failed",
    );
    // The library of this build: cargo's LD_LIBRARY_PATH can put an older one of
    // target/debug before the rpath.
    let out = Command::new(&exe)
        .env("LD_LIBRARY_PATH", cc::deps_dir())
        .output()
        .expect("runs");
    let text = cc::text(&out);
    println!("{text}");
    assert!(out.status.success(), "C async tests failed:\n{text}");
    assert!(text.ends_with("all passed\n"), "{text}");
}

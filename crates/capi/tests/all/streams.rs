//! Compiles tests/c/streams.c (streaming calls through callbacks, the output limit,
//! `PLINTH_ERROR_KIND_STREAM`) against include/plinth.h and the library, runs it, and runs it
//! again under valgrind (when installed) with leak checking.

use std::process::Command;

use crate::cc;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    let text = cc::text(&out);
    assert!(out.status.success(), "C stream tests failed:\n{text}");
    text
}

#[test]
fn stream_c_tests_pass() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("streams");
    cc::compile(
        "streams.c",
        &exe,
        &["-D_DEFAULT_SOURCE"],
        "compiling the C stream tests failed",
    );
    // The library of this build: cargo's LD_LIBRARY_PATH can put an older one first.
    let text = run(Command::new(&exe).env("LD_LIBRARY_PATH", cc::deps_dir()));
    println!("{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");

    if Command::new("valgrind").arg("--version").output().is_ok() {
        let text = run(Command::new("valgrind")
            .args([
                "--quiet",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--error-exitcode=99",
            ])
            .arg(&exe)
            .env("LD_LIBRARY_PATH", cc::deps_dir())
            .env("ITERATIONS", "1")
            .env("MIB", "1"));
        assert!(!text.contains("definitely lost"), "{text}");
        assert!(text.contains(" passed, 0 failed"), "{text}");
        println!("valgrind: no errors, no definite leaks");
    }
}

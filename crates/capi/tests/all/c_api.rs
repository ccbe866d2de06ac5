//! Compiles tests/c/test_capi.c against include/plinth.h and the library, runs it, and runs
//! it again under valgrind (when installed) with leak checking.

use std::path::Path;
use std::process::Command;

use crate::cc;

fn build(out: &Path) {
    cc::compile(
        "test_capi.c",
        out,
        &["-D_DEFAULT_SOURCE"],
        "compiling the C tests failed",
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    let text = cc::text(&out);
    assert!(out.status.success(), "C tests failed:\n{text}");
    text
}

#[test]
fn c_tests_pass() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("test_capi");
    build(&exe);
    let text = run(&mut Command::new(&exe));
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
            .env("ITERATIONS", "50"));
        assert!(!text.contains("definitely lost"), "{text}");
        println!("valgrind: no errors, no definite leaks");
    }
}

//! Compiles tests/c/artifacts.c (precompiled artifacts, fresh calls, `plinth_buffer_free`,
//! `PLINTH_ERROR_KIND_ARTIFACT`) against include/plinth.h and the library, runs it, and runs
//! it again under valgrind (when installed) with leak checking.

use std::process::Command;

use crate::cc;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    let text = cc::text(&out);
    assert!(out.status.success(), "C artifact tests failed:\n{text}");
    text
}

#[test]
fn artifact_and_fresh_call_c_tests_pass() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("artifacts");
    cc::compile(
        "artifacts.c",
        &exe,
        &["-D_DEFAULT_SOURCE"],
        "compiling the C artifact tests failed",
    );
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
            .env("ITERATIONS", "5"));
        assert!(!text.contains("definitely lost"), "{text}");
        println!("valgrind: no errors, no definite leaks");
    }
}

//! Compiles tests/c/test_capi.c against include/plinth.h and the library, runs it, and runs
//! it again under valgrind (when installed) with leak checking.

use std::path::{Path, PathBuf};
use std::process::Command;

/// target/<profile>/deps, where cargo put libplinth_capi.so (installed as libplinth.so) for
/// this test run.
fn deps_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn build(out: &Path) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deps = deps_dir();
    assert!(
        deps.join("libplinth_capi.so").exists(),
        "libplinth_capi.so not built in {}",
        deps.display()
    );
    let status = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-D_DEFAULT_SOURCE",
            "-g",
        ])
        .arg("-I")
        .arg(dir.join("include"))
        .arg(dir.join("tests/c/test_capi.c"))
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", deps.display()))
        .arg(format!("-Wl,-rpath,{}", deps.display()))
        .args(["-lplinth_capi", "-lpthread"])
        .status()
        .expect("cc runs");
    assert!(status.success(), "compiling the C tests failed");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

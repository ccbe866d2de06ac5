//! Building the C programs of tests/c: each compiles against `include/` with warnings as
//! errors and links against the libplinth that cargo built for this test run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// target/<profile>/deps, where cargo put libplinth_capi.so (installed as libplinth.so).
pub fn deps_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The output of one run of a program: stdout, then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Compiles tests/c/`source` into `exe` with the given extra `cc` flags; fails the test with
/// cc's errors, prefixed by `what_failed`, when it does not compile.
pub fn compile(source: &str, exe: &Path, flags: &[&str], what_failed: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deps = deps_dir();
    assert!(
        deps.join("libplinth_capi.so").exists(),
        "libplinth_capi.so not built in {}",
        deps.display()
    );
    let cc = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .args(flags)
        .arg("-I")
        .arg(dir.join("include"))
        .arg(dir.join("tests/c").join(source))
        .arg("-o")
        .arg(exe)
        .arg(format!("-L{}", deps.display()))
        .arg(format!("-Wl,-rpath,{}", deps.display()))
        .args(["-lplinth_capi", "-lpthread"])
        .output()
        .expect("cc runs");
    assert!(
        cc.status.success(),
        "{what_failed}:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
}

//! Source compatibility with Extism's extism.h: tests/c/extism_host.c, a C host written the way
//! Extism's docs write one, compiles against include/extism.h (the file the install script
//! installs as extism.h) with warnings as errors, links against libplinth and runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// target/<profile>/deps, where cargo put libplinth_capi.so for this test run.
fn deps_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn a_c_host_written_for_extism_h_builds_and_runs_against_the_installed_header() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deps = deps_dir();
    assert!(deps.join("libplinth_capi.so").exists());
    let out = tempfile::tempdir().unwrap();
    let exe = out.path().join("extism_host");
    let cc = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(dir.join("include"))
        .arg(dir.join("tests/c/extism_host.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", deps.display()))
        .arg(format!("-Wl,-rpath,{}", deps.display()))
        .args(["-lplinth_capi", "-lpthread"])
        .output()
        .expect("cc runs");
    assert!(
        cc.status.success(),
        "a host written for Extism's extism.h does not compile against ours:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let run = Command::new(&exe).output().expect("the host runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success() && text.trim() == "ok", "{text}");
}

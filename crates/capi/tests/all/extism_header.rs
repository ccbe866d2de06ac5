//! Source compatibility with Extism's extism.h: tests/c/extism_host.c, a C host written the way
//! Extism's docs write one, compiles against include/extism.h (the file the install script
//! installs as extism.h) with warnings as errors, links against libplinth and runs.

use std::process::Command;

use crate::cc;

#[test]
fn a_c_host_written_for_extism_h_builds_and_runs_against_the_installed_header() {
    let out = tempfile::tempdir().unwrap();
    let exe = out.path().join("extism_host");
    cc::compile(
        "extism_host.c",
        &exe,
        &[],
        "a host written for Extism's extism.h does not compile against ours",
    );
    let run = Command::new(&exe).output().expect("the host runs");
    let text = cc::text(&run);
    assert!(run.status.success() && text.trim() == "ok", "{text}");
}

//! Compiles tests/c/test_capi.c against include/plinth.h and the library, runs it, and runs
//! it again under valgrind (when installed) with leak checking.

use std::path::Path;

use crate::cc;

fn build(out: &Path) {
    cc::compile(
        "test_capi.c",
        out,
        &["-D_DEFAULT_SOURCE"],
        "compiling the C tests failed",
    );
}

#[test]
fn c_tests_pass() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("test_capi");
    build(&exe);
    cc::run_checked(&exe, "the C tests", &[], &[("ITERATIONS", "50")]);
}

//! Compiles tests/c/artifacts.c (precompiled artifacts, fresh calls, `plinth_buffer_free`,
//! `PLINTH_ERROR_KIND_ARTIFACT`) against include/plinth.h and the library, runs it, and runs
//! it again under valgrind (when installed) with leak checking.

use crate::cc;

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
    cc::run_checked(&exe, "the C artifact tests", &[], &[("ITERATIONS", "5")]);
}

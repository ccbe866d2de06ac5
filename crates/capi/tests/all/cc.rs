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

/// Runs `exe` with `env`, then (when valgrind is installed) again under valgrind with leak
/// checking and `valgrind_env` on top; fails the test, naming `what`, when a run fails, a
/// check in it fails, or memory is definitely lost.
pub fn run_checked(exe: &Path, what: &str, env: &[(&str, &str)], valgrind_env: &[(&str, &str)]) {
    let run = |cmd: &mut Command| -> String {
        let out = cmd.output().expect("runs");
        let text = text(&out);
        assert!(out.status.success(), "{what} failed:\n{text}");
        assert!(text.contains(" passed, 0 failed"), "{what}:\n{text}");
        text
    };
    let pairs = |e: &[(&str, &str)]| {
        e.iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<Vec<_>>()
    };
    println!("{}", run(Command::new(exe).envs(pairs(env))));
    if Command::new("valgrind").arg("--version").output().is_ok() {
        let text = run(Command::new("valgrind")
            .args([
                "--quiet",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--error-exitcode=99",
            ])
            .arg(exe)
            .envs(pairs(env))
            .envs(pairs(valgrind_env)));
        assert!(!text.contains("definitely lost"), "{text}");
        println!("valgrind: no errors, no definite leaks");
    }
}

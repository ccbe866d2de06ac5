//! Rows per second through a plug-in SQL function in SQLite (extensions/sqlite), against the
//! same logic as a native SQL expression and as a Python UDF: builds the extension with
//! extensions/sqlite/build.sh (against the installed libplinth), runs extensions/sqlite/bench.py
//! with Debian's Python and writes its figures to `<criterion dir>/sqlite_rows.json`.
//!
//! Needs libplinth installed (scripts/install-libplinth.sh), gcc, libsqlite3-dev and
//! /usr/bin/python3 with an sqlite3 module that loads extensions. The JSON records whether the
//! installed libplinth is the release or the debug build: only release figures mean anything.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(what: &str, cmd: &mut Command) {
    match cmd.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("sqlite_rows: {what} failed ({status}); see its output above"),
        Err(e) => panic!("sqlite_rows: cannot run {what}: {e}"),
    }
}

/// "release" or "debug" when the installed libplinth.a has the size of that build's
/// libplinth_capi.a in target/ (install-libplinth.sh copies one of them), else "unknown".
fn libplinth_profile(root: &Path) -> &'static str {
    let libdir = Command::new("pkg-config")
        .args(["--variable=libdir", "plinth"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(libdir) = libdir else {
        return "unknown";
    };
    let size = |p: PathBuf| std::fs::metadata(p).ok().map(|m| m.len());
    let installed = size(Path::new(&libdir).join("libplinth.a"));
    if installed.is_none() {
        return "unknown";
    }
    if installed == size(root.join("target/release/libplinth_capi.a")) {
        "release"
    } else if installed == size(root.join("target/debug/deps/libplinth_capi.a")) {
        "debug"
    } else {
        "unknown"
    }
}

fn main() {
    // `cargo test --benches` runs benches with --test-less args too; a bench run gets --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("sqlite_rows: run with `cargo bench -p plinth-bench --bench sqlite_rows`");
        return;
    }
    let root = repo_root();
    // Builds the plug-ins if they are missing.
    plinth_bench::wasm_plugin("checkout");
    let out_dir = root.join("target/sqlite");
    run(
        "extensions/sqlite/build.sh",
        Command::new("bash")
            .arg(root.join("extensions/sqlite/build.sh"))
            .arg(&out_dir),
    );
    let dir = plinth_bench::criterion_dir();
    std::fs::create_dir_all(&dir).expect("create the criterion dir");
    let json = dir.join("sqlite_rows.json");
    let profile = libplinth_profile(&root);
    if profile != "release" {
        eprintln!(
            "sqlite_rows: the installed libplinth is {profile}, not release: its figures are not \
             Plinth's (install it with `bash scripts/install-libplinth.sh`)"
        );
    }
    run(
        "extensions/sqlite/bench.py",
        Command::new("/usr/bin/python3")
            .arg(root.join("extensions/sqlite/bench.py"))
            .arg(&json)
            .env(
                "PLINTH_SQLITE_EXTENSION",
                out_dir.join("libplinth_sqlite.so"),
            )
            .env("PLINTH_WASM_PLUGINS", plinth_bench::wasm_plugins_dir())
            .env("PLINTH_LIBPLINTH_PROFILE", profile),
    );
    println!("sqlite_rows: wrote {}", json.display());
}

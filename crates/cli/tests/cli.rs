//! Runs the real `plinth` binary and checks what it prints and how it exits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

#[path = "cli/streaming.rs"]
mod streaming;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins/count_vowels.wat")
}

fn plinth(args: &[&str]) -> Output {
    plinth_with_stdin(args, None)
}

fn plinth_with_stdin(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run plinth");
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "plinth failed: {:?}\nstderr: {}",
        o.status,
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts exit status 1 with an `Error:` line and returns stderr.
fn fails(o: Output) -> String {
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        stdout(&o)
    );
    assert!(err.contains("Error: "), "no Error line in: {err}");
    err
}

fn write(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn call_example(extra: &[&str]) -> Output {
    let path = example();
    let mut args = vec!["call", path.to_str().unwrap(), "count_vowels"];
    args.extend_from_slice(extra);
    plinth(&args)
}

/// A plug-in whose `run` copies the string constant `text` (no escaping: keep it simple) into a
/// block `$h`, passes it to the ABI import `import` of type `sig` as `(call $sink ARGS)`, and
/// returns `code`.
fn text_plugin(import: &str, sig: &str, args: &str, text: &str, code: i32) -> String {
    format!(
        r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "{import}" (func $sink {sig}))
  (memory 1)
  (data (i32.const 0) "{text}")
  (func (export "run") (result i32)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.const {len})))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (i32.const {len})))
      (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $sink {args})
    (i32.const {code})))"#,
        len = text.len()
    )
}

/// A plug-in whose `run` outputs `text`.
fn output_plugin(text: &str) -> String {
    let args = format!("(local.get $h) (i64.const {})", text.len());
    text_plugin("output_set", "(param i64 i64)", &args, text, 0)
}

#[test]
fn calls_the_example() {
    let out = ok(call_example(&["--input", "Hello, world"]));
    assert_eq!(out, "{\"count\":3,\"total\":3,\"vowels\":\"aeiouAEIOU\"}\n");
    let out = ok(call_example(&["-i", "aaa"]));
    assert_eq!(out, "{\"count\":3,\"total\":3,\"vowels\":\"aeiouAEIOU\"}\n");
}

#[test]
fn loop_reuses_the_instance() {
    let out = ok(call_example(&["--input", "Hello, world", "--loop", "3"]));
    assert_eq!(
        out,
        "{\"count\":3,\"total\":3,\"vowels\":\"aeiouAEIOU\"}\n\n\
         {\"count\":3,\"total\":6,\"vowels\":\"aeiouAEIOU\"}\n\n\
         {\"count\":3,\"total\":9,\"vowels\":\"aeiouAEIOU\"}\n\n"
    );
}

#[test]
fn config_flags() {
    let out = ok(call_example(&[
        "-i",
        "Hello, world",
        "--config",
        "vowels=o",
    ]));
    assert_eq!(out, "{\"count\":2,\"total\":2,\"vowels\":\"o\"}\n");

    // `K` alone is the empty string, which the ABI cannot tell from "not set" (a block of 0
    // bytes is handle 0), so the plug-in falls back to its default set, as under Extism.
    let out = ok(call_example(&["-i", "Hello, world", "--config", "vowels"]));
    assert_eq!(out, "{\"count\":3,\"total\":3,\"vowels\":\"aeiouAEIOU\"}\n");

    let out = ok(call_example(&[
        "-i",
        "Hello, world",
        "--set-config",
        r#"{"vowels":"lw"}"#,
    ]));
    assert_eq!(out, "{\"count\":4,\"total\":4,\"vowels\":\"lw\"}\n");

    // --config wins over --set-config.
    let out = ok(call_example(&[
        "-i",
        "Hello, world",
        "--set-config",
        r#"{"vowels":"lw"}"#,
        "--config",
        "vowels=H",
    ]));
    assert_eq!(out, "{\"count\":1,\"total\":1,\"vowels\":\"H\"}\n");

    let err = fails(call_example(&["--set-config", r#"{"vowels":1}"#]));
    assert!(err.contains("--set-config"), "{err}");
}

#[test]
fn input_from_stdin() {
    // Streamed: the output is the plug-in's bytes, with no newline added (more in streaming.rs).
    let path = example();
    let o = plinth_with_stdin(
        &["call", path.to_str().unwrap(), "count_vowels", "--stdin"],
        Some(b"aeiou xyz\n"),
    );
    assert_eq!(ok(o), "{\"count\":5,\"total\":5,\"vowels\":\"aeiouAEIOU\"}");
}

#[test]
fn wat_plugin_in_a_temp_dir() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "hello.wat", &output_plugin("hello there"));
    assert_eq!(ok(plinth(&["call", &path, "run"])), "hello there\n");
}

#[test]
fn json_and_toml_manifests() {
    let dir = TempDir::new().unwrap();
    let wasm = example();
    let json = serde_json::json!({
        "wasm": [{"path": wasm}],
        "config": {"vowels": "o"},
    });
    let path = write(&dir, "plugin.json", &json.to_string());
    let o = plinth(&["call", &path, "count_vowels", "-i", "Hello, world"]);
    assert_eq!(ok(o), "{\"count\":2,\"total\":2,\"vowels\":\"o\"}\n");

    // A flag overrides the manifest's config.
    let o = plinth(&[
        "call",
        &path,
        "count_vowels",
        "-i",
        "Hello, world",
        "--config",
        "vowels=l",
    ]);
    assert_eq!(ok(o), "{\"count\":3,\"total\":3,\"vowels\":\"l\"}\n");

    let toml = format!(
        "wasm = [{{ path = '{}' }}]\n\n[config]\nvowels = \"eo\"\n",
        wasm.display()
    );
    let path = write(&dir, "plugin.toml", &toml);
    let o = plinth(&["call", &path, "count_vowels", "-i", "Hello, world"]);
    assert_eq!(ok(o), "{\"count\":3,\"total\":3,\"vowels\":\"eo\"}\n");

    // -m makes a manifest of a file whatever it looks like; this one is not valid.
    let path = write(&dir, "odd.txt", "(not a manifest)");
    let err = fails(plinth(&["call", "-m", &path, "count_vowels"]));
    assert!(err.contains("manifest"), "{err}");
}

#[test]
fn link_adds_a_module() {
    let dir = TempDir::new().unwrap();
    let lib = write(&dir, "lib.wat", &output_plugin("from the lib"));
    let main = write(
        &dir,
        "main.wat",
        r#"(module
  (import "lib" "run" (func $lib_run (result i32)))
  (func (export "go") (result i32) (call $lib_run)))"#,
    );
    let link = format!("lib={lib}");
    assert_eq!(
        ok(plinth(&["call", &main, "go", "--link", &link])),
        "from the lib\n"
    );

    // Without the link the import is missing, and the error names it.
    let err = fails(plinth(&["call", &main, "go"]));
    assert!(err.contains("lib::run"), "{err}");

    let err = fails(plinth(&[
        "call",
        &main,
        "go",
        "--link",
        &format!("main={lib}"),
    ]));
    assert!(err.contains("main"), "{err}");
}

/// A plug-in whose `spin` never returns.
const SPIN: &str =
    r#"(module (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0)))"#;

#[test]
fn timeout_stops_an_infinite_loop() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "spin.wat", SPIN);
    let err = fails(plinth(&["call", &path, "spin", "--timeout", "100"]));
    assert!(err.contains("timed out"), "{err}");
    // The runtime's message names the manifest field; the command adds its own flag.
    assert!(
        err.contains("`timeout_ms` in the manifest (or --timeout MS)"),
        "{err}"
    );
}

#[test]
fn fuel_stops_an_infinite_loop() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "spin.wat", SPIN);
    let err = fails(plinth(&["call", &path, "spin", "--fuel", "10000"]));
    assert!(err.contains("fuel"), "{err}");
}

#[test]
fn memory_max_limits_growth() {
    let dir = TempDir::new().unwrap();
    // Grows by 64 pages (4 MiB) and traps if that is refused.
    let path = write(
        &dir,
        "grow.wat",
        r#"(module
  (memory 1)
  (func (export "grow") (result i32)
    (if (i32.eq (memory.grow (i32.const 64)) (i32.const -1)) (then unreachable))
    (i32.const 0)))"#,
    );
    assert_eq!(ok(plinth(&["call", &path, "grow"])), "\n");
    let err = fails(plinth(&["call", &path, "grow", "--memory-max", "8"]));
    assert!(err.contains("out of memory"), "{err}");
    assert!(err.contains("(or --memory-max PAGES)"), "{err}");
}

#[test]
fn missing_function_lists_the_available_ones() {
    let err = fails(call_example(&["count_consonants"]));
    assert!(err.contains("count_consonants"), "{err}");
    let err = fails(plinth(&[
        "call",
        example().to_str().unwrap(),
        "count_consonants",
    ]));
    assert!(err.contains("not found"), "{err}");
    assert!(err.contains("count_vowels"), "{err}");
}

#[test]
fn trap_fails_the_call() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "trap.wat",
        r#"(module (func (export "boom") (result i32) unreachable))"#,
    );
    let o = plinth(&["call", &path, "boom"]);
    assert!(o.stdout.is_empty());
    let err = fails(o);
    assert!(err.contains("trapped"), "{err}");
    assert!(err.contains("boom"), "{err}");
}

#[test]
fn loop_keeps_earlier_outputs_when_a_later_call_fails() {
    let dir = TempDir::new().unwrap();
    // Succeeds once, then traps: a global remembers the first call.
    let path = write(
        &dir,
        "once.wat",
        r#"(module
  (global $called (mut i32) (i32.const 0))
  (func (export "once") (result i32)
    (if (global.get $called) (then unreachable))
    (global.set $called (i32.const 1))
    (i32.const 0)))"#,
    );
    let o = plinth(&["call", &path, "once", "--loop", "3"]);
    assert_eq!(stdout(&o), "\n\n");
    fails(o);
}

#[test]
fn missing_file_and_malformed_wasm() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nope.wasm");
    let err = fails(plinth(&["call", missing.to_str().unwrap(), "f"]));
    assert!(err.contains("nope.wasm"), "{err}");

    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x01\0\0\0garbage").unwrap();
    let err = fails(plinth(&["call", bad.to_str().unwrap(), "f"]));
    assert!(err.contains("cannot compile"), "{err}");

    let err = fails(plinth(&["info", bad.to_str().unwrap()]));
    assert!(err.contains("cannot compile"), "{err}");
}

#[test]
fn bad_usage_is_an_error_line() {
    let err = fails(plinth(&["call", "--no-such-flag"]));
    assert!(err.starts_with("Error: "), "{err}");
    let err = fails(call_example(&["--loop", "many"]));
    assert!(err.contains("--loop"), "{err}");
}

#[test]
fn info_reports_a_missing_import() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "needs.wat",
        r#"(module
  (import "extism:host/env" "alloc" (func (param i64) (result i64)))
  (import "acme" "frobnicate" (func))
  (func (export "run") (result i32) (i32.const 0)))"#,
    );
    let o = plinth(&["info", &path]);
    let out = stdout(&o);
    assert!(
        out.contains("extism:host/env::alloc (i64) -> (i64): provided (Extism ABI)"),
        "{out}"
    );
    assert!(out.contains("acme::frobnicate () -> (): MISSING"), "{out}");
    let err = fails(o);
    assert!(err.contains("acme::frobnicate"), "{err}");
}

#[test]
fn info_on_the_example() {
    let o = plinth(&["info", example().to_str().unwrap()]);
    let out = ok(o);
    assert!(out.starts_with("module main\n"), "{out}");
    assert!(out.contains("    count_vowels\n"), "{out}");
    assert!(
        out.contains("extism:host/env::var_set (i64, i64) -> (): provided (Extism ABI)"),
        "{out}"
    );
}

#[test]
fn info_knows_wasi_and_linked_modules() {
    let dir = TempDir::new().unwrap();
    let lib = write(&dir, "lib.wat", &output_plugin("x"));
    let main = write(
        &dir,
        "main.wat",
        r#"(module
  (import "lib" "run" (func (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))"#,
    );
    let err = fails(plinth(&["info", &main]));
    assert!(err.contains("2 imports are missing"), "{err}");

    let link = format!("lib={lib}");
    let out = ok(plinth(&["info", "--wasi", &main, "--link", &link]));
    assert!(out.contains("lib::run () -> (i32): module lib"), "{out}");
    assert!(
        out.contains("wasi_snapshot_preview1::proc_exit (i32) -> (): WASI"),
        "{out}"
    );
    assert!(out.contains("module lib\n"), "{out}");
}

/// Writes "preopen <name of fd 3>\n" to stdout with fd_write, or fails with the errno.
const WASI_PLUGIN: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
    (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; "preopen " right before the name, so that one iovec holds the whole line
  ;; (fd_write may write only the first iovec).
  (data (i32.const 248) "preopen ")
  (func (export "hello") (result i32)
    (local $err i32)
    (local $len i32)
    ;; prestat at 32: tag, name length
    (local.set $err (call $fd_prestat_get (i32.const 3) (i32.const 32)))
    (if (local.get $err) (then (return (i32.add (i32.const 100) (local.get $err)))))
    (local.set $len (i32.load (i32.const 36)))
    (local.set $err (call $fd_prestat_dir_name (i32.const 3) (i32.const 256) (local.get $len)))
    (if (local.get $err) (then (return (i32.add (i32.const 200) (local.get $err)))))
    (i32.store8 (i32.add (i32.const 256) (local.get $len)) (i32.const 10))
    (i32.store (i32.const 64) (i32.const 248))
    (i32.store (i32.const 68) (i32.add (local.get $len) (i32.const 9)))
    (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 96))))"#;

#[test]
fn wasi_with_allowed_path() {
    let dir = TempDir::new().unwrap();
    let data = TempDir::new().unwrap();
    let path = write(&dir, "wasi.wat", WASI_PLUGIN);
    let mount = format!("{}:/data", data.path().display());
    let out = ok(plinth(&[
        "call",
        &path,
        "hello",
        "--wasi",
        "--allow-path",
        &mount,
    ]));
    assert_eq!(out, "preopen /data\n\n");

    // Read-only and same-path forms mount too.
    let mount = format!("ro:{}", data.path().display());
    let out = ok(plinth(&[
        "call",
        &path,
        "hello",
        "--wasi",
        "--allow-path",
        &mount,
    ]));
    assert_eq!(out, format!("preopen {}\n\n", data.path().display()));

    // Without --wasi the plug-in cannot even load.
    let err = fails(plinth(&["call", &path, "hello"]));
    assert!(err.contains("WASI"), "{err}");

    // A directory that does not exist is reported, not a panic.
    let gone = format!("{}/missing:/data", data.path().display());
    fails(plinth(&[
        "call",
        &path,
        "hello",
        "--wasi",
        "--allow-path",
        &gone,
    ]));
}

#[test]
fn log_level_shows_plugin_logs() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "log.wat",
        &text_plugin(
            "log_info",
            "(param i64)",
            "(local.get $h)",
            "hello from the log",
            0,
        ),
    );
    let o = plinth(&["call", &path, "run", "--log-level", "info"]);
    let err = stderr(&o);
    assert_eq!(ok(o), "\n");
    assert!(err.contains("hello from the log"), "{err}");

    // The default level is error.
    let o = plinth(&["call", &path, "run"]);
    let err = stderr(&o);
    ok(o);
    assert!(!err.contains("hello from the log"), "{err}");
}

#[test]
fn guest_error_is_reported() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "err.wat",
        &text_plugin(
            "error_set",
            "(param i64)",
            "(local.get $h)",
            "the input is unacceptable",
            1,
        ),
    );
    let o = plinth(&["call", &path, "run"]);
    assert!(o.stdout.is_empty());
    let err = fails(o);
    assert!(err.contains("the input is unacceptable"), "{err}");
}

#[test]
fn version_and_help() {
    let out = ok(plinth(&["--version"]));
    assert_eq!(out, format!("plinth {}\n", env!("CARGO_PKG_VERSION")));
    let out = ok(plinth(&["call", "--help"]));
    for flag in [
        "--input",
        "--stdin",
        "--max-output",
        "--loop",
        "--wasi",
        "--allow-path",
        "--allow-host",
        "--enable-http-response-headers",
        "--timeout",
        "--memory-max",
        "--http-response-max",
        "--var-max",
        "--config",
        "--set-config",
        "--manifest",
        "--log-level",
        "--link",
        "--fuel",
        "--raw",
    ] {
        assert!(out.contains(flag), "{flag} missing from help:\n{out}");
    }
}

/// `bytes` as the text of a WAT data string.
fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A plug-in whose `run` copies `bytes` into a block and passes it to the one-argument ABI
/// import `import` (`output_set` gets the length too), then returns `code`.
fn bytes_plugin(import: &str, bytes: &[u8], code: i32) -> String {
    let (sig, args) = if import == "output_set" {
        (
            "(param i64 i64)",
            format!("(local.get $h) (i64.const {})", bytes.len()),
        )
    } else {
        ("(param i64)", "(local.get $h)".to_string())
    };
    format!(
        r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "{import}" (func $sink {sig}))
  (memory 1)
  (data (i32.const 0) "{data}")
  (func (export "run") (result i32)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.const {len})))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (i32.const {len})))
      (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $sink {args})
    (i32.const {code})))"#,
        data = wat_bytes(bytes),
        len = bytes.len()
    )
}

/// What a plug-in puts on the screen to clear it, move the cursor home and print a line that
/// looks like plinth's own, after a line break and a carriage return.
const HOSTILE: &[u8] = b"oops\n\x1b[2J\x1b[H\rError: forged \x07\x9b\xc2\x9b\xe2\x80\xae";

#[test]
fn an_error_message_cannot_send_terminal_escapes_or_forge_lines() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "err.wat", &bytes_plugin("error_set", HOSTILE, 1));
    let o = plinth(&["call", &path, "run"]);
    assert!(!o.stderr.contains(&0x1b), "ESC reached the terminal");
    assert!(!o.stderr.contains(&b'\r') && !o.stderr.contains(&0x07));
    let err = fails(o);
    assert_eq!(err.lines().count(), 1, "one error, one line: {err}");
    assert!(
        // The runtime reads the message as UTF-8, so the lone 0x9b arrives as U+FFFD.
        err.contains("oops\\n\\x1b[2J\\x1b[H\\rError: forged \\x07\u{fffd}\\u{9b}\\u{202e}"),
        "{err}"
    );
}

#[test]
fn a_huge_error_message_is_cut_with_a_note() {
    const SIZE: u64 = 16 << 20;
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "huge.wat",
        &format!(
            r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (memory 1)
  (func (export "run") (result i32) (local $h i64) (local $i i64)
    (local.set $h (call $alloc (i64.const {SIZE})))
    (block $d (loop $l (br_if $d (i64.ge_u (local.get $i) (i64.const {SIZE})))
      (call $store_u64 (i64.add (local.get $h) (local.get $i)) (i64.const 0x4141414141414141))
      (local.set $i (i64.add (local.get $i) (i64.const 8))) (br $l)))
    (call $error_set (local.get $h)) (i32.const 1)))"#
        ),
    );
    let err = fails(plinth(&["call", &path, "run"]));
    assert!(err.len() < 9 * 1024, "{} bytes of error", err.len());
    assert!(err.contains("AAAAAAAA"), "{err}");
    let note = err.trim_end().rsplit_once(" [truncated: ").map(|(_, n)| n);
    let left: u64 = note
        .and_then(|n| n.strip_suffix(" more bytes not shown]"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no truncation note in {}", &err[err.len() - 100..]));
    assert!(left > SIZE - 9 * 1024 && left < SIZE, "{left}");
}

#[test]
fn info_escapes_names_from_the_module() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "names.wat",
        r#"(module
  (import "evil\0a\1b[2J" "f\0d" (func))
  (func (export "run\1b]0;title\07") (result i32) (i32.const 0)))"#,
    );
    let o = plinth(&["info", &path]);
    assert!(!o.stdout.contains(&0x1b) && !o.stdout.contains(&b'\r'));
    assert!(!o.stderr.contains(&0x1b) && !o.stderr.contains(&b'\r'));
    let out = stdout(&o);
    assert!(out.contains(r"run\x1b]0;title\x07"), "{out}");
    assert!(out.contains(r"evil\n\x1b[2J::f\r"), "{out}");
    assert!(stderr(&o).contains(r"evil\n\x1b[2J"), "{}", stderr(&o));
}

#[test]
fn output_to_a_pipe_is_the_plugins_bytes_unchanged() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "out.wat", &bytes_plugin("output_set", HOSTILE, 0));
    let o = plinth(&["call", &path, "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, [HOSTILE, b"\n"].concat());
}

/// A plug-in whose `run` outputs `len` zero bytes.
fn zeros_plugin(len: u64) -> String {
    format!(
        r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1)
  (func (export "run") (result i32)
    (call $output_set (call $alloc (i64.const {len})) (i64.const {len}))
    (i32.const 0)))"#
    )
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    // `plinth call big.wat run | head -c1`: the reader takes one byte and closes the pipe.
    // The output (1 MiB) is more than a pipe holds, so plinth is still writing, or blocked
    // writing, when the pipe closes, and the write fails with EPIPE. Like `cat` and ripgrep,
    // plinth then stops quietly, with status 0.
    use std::io::Read;
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "big.wat", &zeros_plugin(1 << 20));
    let mut child = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["call", &path, "run", "--loop", "3"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run plinth");
    let mut reader = child.stdout.take().unwrap();
    let mut first = [1u8];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(first, [0]);
    drop(reader);
    let o = child.wait_with_output().unwrap();
    assert_eq!(stderr(&o), "", "nothing on stderr");
    assert_eq!(o.status.code(), Some(0), "a quiet exit");
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_to_stdout_is_still_an_error() {
    // Only a reader that went away is quiet: a full disk is reported.
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "big.wat", &zeros_plugin(1 << 20));
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["call", &path, "run"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .expect("run plinth");
    let err = fails(o);
    assert!(
        err.contains("Error: cannot write to stdout: No space left on device"),
        "{err}"
    );
}

#[cfg(target_os = "linux")]
mod terminal {
    use std::ffi::{c_char, c_int, CStr};
    use std::fs::{File, OpenOptions};
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;
    use std::process::{Command, Stdio};

    use super::*;

    extern "C" {
        fn posix_openpt(flags: c_int) -> c_int;
        fn grantpt(fd: c_int) -> c_int;
        fn unlockpt(fd: c_int) -> c_int;
        fn ptsname_r(fd: c_int, buf: *mut c_char, len: usize) -> c_int;
    }
    const O_RDWR: c_int = 2;
    const O_NOCTTY: c_int = 0o400;

    /// Runs plinth with stdout on a new pseudo-terminal; returns what reached the terminal
    /// (the terminal turns "\n" into "\r\n") and the exit status.
    fn plinth_on_a_terminal(args: &[&str]) -> (Vec<u8>, bool) {
        let (master, slave) = unsafe {
            let fd = posix_openpt(O_RDWR | O_NOCTTY);
            assert!(fd >= 0, "no pseudo-terminal");
            let master = File::from(OwnedFd::from_raw_fd(fd));
            assert_eq!(grantpt(fd), 0);
            assert_eq!(unlockpt(fd), 0);
            let mut name = [0 as c_char; 128];
            assert_eq!(ptsname_r(fd, name.as_mut_ptr(), name.len()), 0);
            let path = CStr::from_ptr(name.as_ptr()).to_str().unwrap().to_string();
            let slave = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(O_NOCTTY)
                .open(path)
                .unwrap();
            (master, slave)
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_plinth"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(slave.try_clone().unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        drop(slave);
        let reader = std::thread::spawn(move || {
            let mut master = master;
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // EIO once the last writer of the terminal has closed it.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            seen
        });
        let ok = child.wait().unwrap().success();
        (reader.join().unwrap(), ok)
    }

    #[test]
    fn output_to_a_terminal_shows_control_characters_escaped() {
        let dir = TempDir::new().unwrap();
        let path = write(
            &dir,
            "out.wat",
            &bytes_plugin("output_set", b"a\x1b[2Jb\tc\nd\r\xff", 0),
        );
        let (seen, ok) = plinth_on_a_terminal(&["call", &path, "run"]);
        assert!(ok);
        assert!(!seen.contains(&0x1b), "ESC reached the terminal");
        assert_eq!(
            String::from_utf8_lossy(&seen),
            "a\\x1b[2Jb\tc\r\nd\\r\\xff\r\n",
            "newlines and tabs kept, the rest escaped"
        );
    }

    #[test]
    fn raw_passes_control_characters_to_a_terminal() {
        let dir = TempDir::new().unwrap();
        let path = write(
            &dir,
            "out.wat",
            &bytes_plugin("output_set", b"a\x1b[1mb", 0),
        );
        let (seen, ok) = plinth_on_a_terminal(&["call", &path, "run", "--raw"]);
        assert!(ok);
        assert_eq!(seen, b"a\x1b[1mb\r\n");
    }

    #[test]
    fn streamed_output_to_a_terminal_is_escaped_across_chunks() {
        // Three stream_write chunks: "a" and the first byte of "☃", the rest of "☃" and ESC,
        // then "[2J". The snowman is shown whole, ESC escaped, and a newline ends the output.
        let dir = TempDir::new().unwrap();
        let path = write(
            &dir,
            "chunks.wat",
            r#"(module
  (import "plinth:host/env" "stream_write" (func $write (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "a\e2\98\83\1b[2J")
  (func (export "run") (result i32)
    (drop (call $write (i32.const 0) (i32.const 2)))
    (drop (call $write (i32.const 2) (i32.const 3)))
    (drop (call $write (i32.const 5) (i32.const 3)))
    (i32.const 0)))"#,
        );
        let (seen, ok) = plinth_on_a_terminal(&["call", &path, "run", "--stdin"]);
        assert!(ok);
        assert_eq!(String::from_utf8_lossy(&seen), "a☃\\x1b[2J\r\n");
        let (seen, ok) = plinth_on_a_terminal(&["call", &path, "run", "--stdin", "--raw"]);
        assert!(ok);
        assert_eq!(seen, "a☃\x1b[2J\r\n".as_bytes());
    }
}

#[test]
fn compile_limits_from_the_command_line() {
    let err = fails(call_example(&["--module-max", "100", "--input", "aaa"]));
    assert!(err.contains("over the limit of 100 bytes"), "{err}");
    // A deadline no compile meets (the module is unique to this run, so no cache answers).
    let dir = TempDir::new().unwrap();
    let mut funcs = String::new();
    for i in 0..2000 {
        funcs.push_str(&format!("(func $f{i} (result i32) (i32.const {i}))\n"));
    }
    let wat = format!(
        "(module {funcs} (func (export \"run{}\") (result i32) (i32.const 0)))",
        std::process::id()
    );
    let path = write(&dir, "big.wat", &wat);
    let run = format!("run{}", std::process::id());
    let o = plinth_with_stdin(&["call", &path, &run, "--compile-timeout", "0"], None);
    let err = fails(o);
    assert!(err.contains("deadline"), "{err}");
    ok(plinth(&["call", &path, &run, "--compile-timeout", "60000"]));
}

const COUNT3: &str = "{\"count\":3,\"total\":3,\"vowels\":\"aeiouAEIOU\"}";

#[test]
fn compile_writes_a_signed_artifact_that_call_loads_with_its_key() {
    let dir = TempDir::new().unwrap();
    let artifact = dir.path().join("count_vowels.plinth");
    let key = dir.path().join("plinth.key");
    let (artifact_s, key_s) = (artifact.to_str().unwrap(), key.to_str().unwrap());
    let example = example();
    let err = stderr(&plinth(&[
        "compile",
        example.to_str().unwrap(),
        "-o",
        artifact_s,
        "--key",
        key_s,
    ]));
    assert!(err.contains("Made a new signing key"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key is private");
    }
    let call = |extra: &[&str]| {
        let mut args = vec!["call", artifact_s, "count_vowels", "-i", "hello world"];
        args.extend_from_slice(extra);
        plinth(&args)
    };
    assert_eq!(ok(call(&["--artifact-key", key_s])).trim(), COUNT3);
    // Flags still apply to an artifact: a fuel limit makes it compile for a metered engine,
    // with a note that says so.
    let metered = call(&["--artifact-key", key_s, "--fuel", "1000000"]);
    assert!(
        stderr(&metered).contains("--metered"),
        "{}",
        stderr(&metered)
    );
    assert_eq!(ok(metered).trim(), COUNT3);
    // Without the key: says what the file is and what to pass.
    let err = fails(call(&[]));
    assert!(err.contains("--artifact-key"), "{err}");
    // Another key, or one byte changed: refused, never run.
    let other = dir.path().join("other.key");
    ok(plinth(&[
        "compile",
        example.to_str().unwrap(),
        "-o",
        dir.path().join("x.plinth").to_str().unwrap(),
        "--key",
        other.to_str().unwrap(),
    ]));
    let err = fails(call(&["--artifact-key", other.to_str().unwrap()]));
    assert!(err.contains("signature does not verify"), "{err}");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&artifact, bytes).unwrap();
    let err = fails(call(&["--artifact-key", key_s]));
    assert!(err.contains("signature does not verify"), "{err}");
}

#[test]
fn an_http_response_over_the_cap_names_the_flag() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.read(&mut [0u8; 4096]);
            let body = vec![b'x'; 5000];
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    let request = format!(r#"{{"url":"http://127.0.0.1:{port}/big"}}"#);
    // `run` passes the request block to http_request's first argument (the body is 0).
    let wat = bytes_plugin("http_request", request.as_bytes(), 0).replace(
        "(func $sink (param i64))",
        "(func $sink (param i64 i64) (result i64))",
    );
    let wat = wat.replace(
        "(call $sink (local.get $h))",
        "(drop (call $sink (local.get $h) (i64.const 0)))",
    );
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "http.wat", &wat);
    let err = fails(plinth(&[
        "call",
        &path,
        "run",
        "--allow-host",
        "127.0.0.1",
        "--http-response-max",
        "100",
    ]));
    assert!(err.contains("max_http_response_bytes = 100"), "{err}");
    assert!(err.contains("(or --http-response-max BYTES)"), "{err}");
}

//! `plinth call --stdin`: stdin streamed to the plug-in and its output to stdout as it comes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tempfile::TempDir;

use super::{example, fails, ok, plinth, stderr, write};

/// Generous: a debug build on a machine shared with other builds.
const PATIENCE: Duration = Duration::from_secs(60);

/// Plug-ins that import the stream functions directly. Memory from 1024 on is the chunk
/// buffer.
const STREAMING: &str = r#"(module
  (import "plinth:host/env" "stream_read" (func $read (param i32 i32) (result i32)))
  (import "plinth:host/env" "stream_write" (func $write (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; Writes each chunk (up to 16 KiB) as soon as it has read it.
  (func (export "echo") (result i32) (local $n i32)
    (block $end (loop $more
      (local.set $n (call $read (i32.const 1024) (i32.const 16384)))
      (br_if $end (i32.eqz (local.get $n)))
      (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 1))))
      (if (i32.lt_s (call $write (i32.const 1024) (local.get $n)) (i32.const 0))
        (then (return (i32.const 2))))
      (br $more)))
    (i32.const 0))
  ;; Writes 16 KiB chunks of zeros until a write fails, without reading its input.
  (func (export "flood") (result i32)
    (loop $more
      (br_if $more (i32.ge_s (call $write (i32.const 1024) (i32.const 16384)) (i32.const 0))))
    (i32.const 2)))"#;

fn streaming(dir: &TempDir) -> String {
    write(dir, "streaming.wat", STREAMING)
}

/// A plug-in built by scripts/build-plugins.sh (target/wasm-plugins/NAME.wasm).
fn built(name: &str) -> PathBuf {
    let dir = match std::env::var_os("PLINTH_WASM_PLUGINS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugins"),
    };
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plug-ins first (bash scripts/build-plugins.sh)",
        path.display()
    );
    path
}

fn spawn(args: &[&str], stdin: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run plinth")
}

/// Runs plinth with `input` written to its stdin from another thread while its output is
/// read, as in a shell pipeline (writing it all first would fill both pipes and stop).
fn piped(args: &[&str], input: Vec<u8>) -> Output {
    let mut child = spawn(args, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // plinth may stop reading early (an error): that is for the test to check.
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// Waits for the child to exit while reading its output, killing it after `PATIENCE`.
fn wait(child: Child) -> Output {
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
        let _ = Command::new("kill").args(["-9", &pid]).status();
        panic!("plinth did not exit within {PATIENCE:?}");
    })
}

/// Lines of a log, one in `every` of them with `ERROR`, some with multi-byte characters.
fn log(lines: usize, every: usize) -> Vec<u8> {
    let mut log = Vec::new();
    for i in 0..lines {
        let level = if i % every == 0 { "ERROR" } else { "INFO" };
        writeln!(
            log,
            "2026-11-30T21:00:00Z {level} request {i} served in {} µs ✓",
            i % 977
        )
        .unwrap();
    }
    log
}

fn grep(log: &[u8], pattern: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in log.split_inclusive(|&b| b == b'\n') {
        if line.windows(pattern.len()).any(|w| w == pattern.as_bytes()) {
            out.extend_from_slice(line);
        }
    }
    out
}

#[test]
fn streams_megabytes_through_pipes_unchanged() {
    let dir = TempDir::new().unwrap();
    let path = streaming(&dir);
    // Not a multiple of the plug-in's chunk, and every byte value.
    let input: Vec<u8> = (0..(3 << 20) + 7)
        .map(|i: u32| (i * 7 + i / 251) as u8)
        .collect();
    let o = piped(&["call", &path, "echo", "--stdin"], input.clone());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), input.len());
    assert!(o.stdout == input, "the bytes changed on the way");

    // No input at all is no output at all (a classic call would print a newline).
    let o = piped(&["call", &path, "echo", "--stdin"], Vec::new());
    assert_eq!(ok(o), "");
}

#[test]
fn output_appears_before_stdin_closes() {
    let dir = TempDir::new().unwrap();
    let path = streaming(&dir);
    let mut child = spawn(&["call", &path, "echo", "--stdin"], Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || read_chunks(stdout, tx));

    stdin.write_all(b"first line\n").unwrap();
    stdin.flush().unwrap();
    let mut seen = Vec::new();
    while seen.len() < 11 {
        match rx.recv_timeout(PATIENCE) {
            Ok(chunk) => seen.extend(chunk),
            Err(e) => {
                child.kill().unwrap();
                panic!("no output within {PATIENCE:?} while stdin is open ({e}); saw {seen:?}");
            }
        }
    }
    assert_eq!(seen, b"first line\n");
    // Still running: stdin is open.
    assert!(child.try_wait().unwrap().is_none());

    stdin.write_all(b"second\n").unwrap();
    drop(stdin);
    let o = wait(child);
    assert!(o.status.success(), "{}", stderr(&o));
    let rest: Vec<u8> = rx.iter().flatten().collect();
    reader.join().unwrap();
    assert_eq!(rest, b"second\n");
}

fn read_chunks(mut stdout: ChildStdout, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stdout.read(&mut buf) {
        if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
            return;
        }
    }
}

#[test]
fn a_reader_that_stops_early_ends_an_endless_output_quietly() {
    // `plinth call --stdin streaming.wat flood | head -c 10`.
    let dir = TempDir::new().unwrap();
    let path = streaming(&dir);
    let mut child = spawn(&["call", &path, "flood", "--stdin"], Stdio::null());
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [1u8; 10];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(first, [0; 10]);
    drop(stdout);
    let o = wait(child);
    assert_eq!(stderr(&o), "", "nothing on stderr");
    assert_eq!(o.status.code(), Some(0), "a quiet exit");
}

#[cfg(unix)]
#[test]
fn head_in_a_shell_pipeline() {
    // The same through a real shell pipeline, with the endless flood of the PDK plug-in.
    let flood = built("stream_echo");
    let script = format!(
        "'{}' call --stdin '{}' flood < /dev/null | head -c 10; echo \" ${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_plinth"),
        flood.display()
    );
    let child = Command::new("bash")
        .args(["-c", &script])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait(child);
    assert_eq!(ok(o), "xxxxxxxxxx 0\n");
}

#[test]
fn max_output_stops_the_call_with_an_error() {
    let dir = TempDir::new().unwrap();
    let path = streaming(&dir);
    let child = spawn(
        &["call", &path, "flood", "--stdin", "--max-output", "100000"],
        Stdio::null(),
    );
    let o = wait(child);
    // What came before the limit was delivered; nothing past it.
    assert!(o.stdout.len() <= 100_000, "{} bytes", o.stdout.len());
    assert!(o.stdout.iter().all(|&b| b == 0));
    let err = fails(o);
    assert!(err.contains("output limit of 100000 bytes"), "{err}");
    assert!(err.contains("(or --max-output BYTES)"), "{err}");

    // Under the limit, nothing changes.
    let o = piped(
        &["call", &path, "echo", "--stdin", "--max-output", "6"],
        b"abcdef".to_vec(),
    );
    assert_eq!(ok(o), "abcdef");
    let o = piped(
        &["call", &path, "echo", "--stdin", "--max-output", "5"],
        b"abcdef".to_vec(),
    );
    let err = fails(o);
    assert!(err.contains("output limit of 5 bytes"), "{err}");
}

#[test]
fn a_plugin_that_does_not_stream_gets_the_whole_input() {
    // The Extism-ABI example reads its input with input_load_*: buffered for it.
    let path = example();
    let o = piped(
        &["call", path.to_str().unwrap(), "count_vowels", "--stdin"],
        b"aeiou xyz\n".to_vec(),
    );
    // The plug-in's bytes as they are: no newline added.
    assert_eq!(ok(o), "{\"count\":5,\"total\":5,\"vowels\":\"aeiouAEIOU\"}");

    // An input larger than its memory limit could hold is refused with the flag to raise.
    let o = piped(
        &[
            "call",
            path.to_str().unwrap(),
            "count_vowels",
            "--stdin",
            "--memory-max",
            "2",
        ],
        vec![b'a'; 200_000],
    );
    let err = fails(o);
    assert!(err.contains("over 131072 bytes"), "{err}");
    assert!(err.contains("(or --memory-max PAGES)"), "{err}");
}

#[test]
fn the_streaming_and_the_whole_buffer_filter_agree() {
    // A few MiB of log through stream_filter (Plinth PDK, streams) and extism_line_filter
    // (extism-pdk, whole buffer), with the pattern from --config.
    let input = log(60_000, 7);
    let expected_errors = grep(&input, "ERROR");
    assert!(!expected_errors.is_empty());
    for plugin in ["stream_filter", "extism_line_filter"] {
        let path = built(plugin);
        let path = path.to_str().unwrap();
        let o = piped(&["call", "--stdin", path, "grep"], input.clone());
        assert!(o.status.success(), "{plugin}: {}", stderr(&o));
        assert!(o.stdout == expected_errors, "{plugin}: wrong lines");

        let o = piped(
            &[
                "call",
                "--stdin",
                path,
                "grep",
                "--config",
                "pattern=request 42 ",
            ],
            input.clone(),
        );
        assert!(o.status.success(), "{plugin}: {}", stderr(&o));
        assert_eq!(
            stdout_str(&o),
            "2026-11-30T21:00:00Z ERROR request 42 served in 42 µs ✓\n"
        );
    }
}

fn stdout_str(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn stdin_with_an_input_or_a_loop_is_a_usage_error() {
    let path = example();
    let path = path.to_str().unwrap();
    let err = fails(plinth(&[
        "call",
        path,
        "count_vowels",
        "--stdin",
        "-i",
        "aaa",
    ]));
    assert!(
        err.contains("'--stdin' cannot be used with '--input <STR>'"),
        "{err}"
    );
    let err = fails(plinth(&[
        "call",
        path,
        "count_vowels",
        "--stdin",
        "--loop",
        "2",
    ]));
    assert!(err.contains("cannot be repeated with --loop"), "{err}");
    let err = fails(plinth(&["call", path, "count_vowels", "--max-output", "5"]));
    assert!(err.contains("--stdin"), "{err}");
}

#[test]
fn limits_apply_to_a_streaming_call() {
    // A plug-in that spins after echoing its input: --timeout and --fuel stop it.
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "spin.wat",
        r#"(module
  (import "plinth:host/env" "stream_read" (func $read (param i32 i32) (result i32)))
  (import "plinth:host/env" "stream_write" (func $write (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "spin") (result i32)
    (drop (call $write (i32.const 0) (call $read (i32.const 0) (i32.const 100))))
    (loop $l (br $l))
    (i32.const 0)))"#,
    );
    let o = piped(
        &["call", &path, "spin", "--stdin", "--timeout", "300"],
        b"hi".to_vec(),
    );
    assert_eq!(o.stdout, b"hi", "the output before the limit was delivered");
    let err = fails(o);
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains("(or --timeout MS)"), "{err}");
    let o = piped(
        &["call", &path, "spin", "--stdin", "--fuel", "100000"],
        b"hi".to_vec(),
    );
    let err = fails(o);
    assert!(err.contains("fuel"), "{err}");
}

#[test]
fn timeout_stops_a_call_waiting_for_stdin() {
    // stdin stays open and silent: the call ends at its time limit all the same, with what
    // came before delivered.
    let dir = TempDir::new().unwrap();
    let path = streaming(&dir);
    let mut child = spawn(
        &["call", &path, "echo", "--stdin", "--timeout", "500"],
        Stdio::piped(),
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"early\n").unwrap();
    let o = wait(child);
    drop(stdin);
    assert_eq!(o.stdout, b"early\n");
    let err = fails(o);
    assert!(
        err.contains("`echo` timed out after 500 ms waiting for more input on stdin"),
        "{err}"
    );
    assert!(err.contains("--timeout MS"), "{err}");

    // A non-streaming plug-in waits for the whole input under the same limit.
    let example = example();
    let mut child = spawn(
        &[
            "call",
            example.to_str().unwrap(),
            "count_vowels",
            "--stdin",
            "--timeout",
            "500",
        ],
        Stdio::piped(),
    );
    let stdin = child.stdin.take().unwrap();
    let o = wait(child);
    drop(stdin);
    let err = fails(o);
    assert!(err.contains("waiting for more input on stdin"), "{err}");

    // Within the limit, a timeout changes nothing.
    let o = piped(
        &["call", &path, "echo", "--stdin", "--timeout", "60000"],
        vec![7; 300_000],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, vec![7; 300_000]);
}

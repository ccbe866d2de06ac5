//! Plug-in log lines reach `tracing` with the plug-in's id, and `get_log_level` follows the
//! host's filter. Log lines are plug-in text: escaped and bounded.
//!
//! A separate test binary, not a module of `tests/all`: it installs the process-wide `tracing`
//! subscriber (shared by the tests here; each looks for its plug-in's id), which would change
//! `get_log_level` and the logging cost for every other test in the process, and it reads the
//! process's peak RSS.

#[path = "all/common.rs"]
mod common;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::wat;
use plinth::Plugin;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged so far, from a debug-level subscriber installed on first use.
fn logged() -> Vec<u8> {
    static BUFFER: OnceLock<Buffer> = OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buffer
    });
    buffer.0.lock().unwrap().clone()
}

/// The logged lines that carry this plug-in's id.
fn lines_of(p: &Plugin) -> Vec<String> {
    String::from_utf8_lossy(&logged())
        .lines()
        .filter(|l| l.contains(p.id()))
        .map(str::to_string)
        .collect()
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn plugin_logs_carry_the_id_and_respect_the_level() {
    logged();
    let mut p = Plugin::new(
        wat(
            r#"(data (i32.const 0) "trace-msgdebug-msginfo-msgwarn-msgerror-msg")
          (func (export "log") (result i32)
            (call $log_trace (call $copy_in (i32.const 0) (i32.const 9)))
            (call $log_debug (call $copy_in (i32.const 9) (i32.const 9)))
            (call $log_info (call $copy_in (i32.const 18) (i32.const 8)))
            (call $log_warn (call $copy_in (i32.const 26) (i32.const 8)))
            (call $log_error (call $copy_in (i32.const 34) (i32.const 9)))
            (call $output_i64 (i64.extend_i32_u (call $get_log_level))) (i32.const 0))"#,
        )
        .as_bytes(),
        [],
        false,
    )
    .unwrap();
    let level = p.call::<_, u64>("log", "").unwrap();
    assert_eq!(level, 1, "debug is level 1");
    let lines = lines_of(&p);
    for msg in ["debug-msg", "info-msg", "warn-msg", "error-msg"] {
        let line = lines
            .iter()
            .find(|l| l.contains(msg))
            .unwrap_or_else(|| panic!("{msg} missing in {lines:?}"));
        assert!(line.contains(plinth::LOG_TARGET), "{line}");
    }
    assert!(
        !lines.iter().any(|l| l.contains("trace-msg")),
        "below the filter: {lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("ERROR")) && lines.iter().any(|l| l.contains("WARN")));
}

#[test]
fn a_log_line_cannot_forge_lines_or_send_terminal_escapes() {
    logged();
    // A newline and a carriage return followed by what looks like another event, then
    // "clear screen".
    let forged = b"real\n2030-01-01T00:00:00Z ERROR plinth::plugin: forged\r\x1b[2Jend";
    let data: String = forged.iter().map(|b| format!("\\{b:02x}")).collect();
    let len = forged.len();
    let mut p = Plugin::new(
        wat(&format!(
            r#"(data (i32.const 0) "{data}")
          (func (export "log") (result i32)
            (call $log_warn (call $copy_in (i32.const 0) (i32.const {len}))) (i32.const 0))"#
        ))
        .as_bytes(),
        [],
        false,
    )
    .unwrap();
    p.call::<_, ()>("log", "").unwrap();
    let lines = lines_of(&p);
    assert_eq!(lines.len(), 1, "one event, one line: {lines:?}");
    assert!(
        lines[0].contains(r"real\n2030-01-01T00:00:00Z ERROR plinth::plugin: forged\r\x1b[2Jend"),
        "{}",
        lines[0]
    );
    let all = logged();
    assert!(!all.contains(&0x1b), "no ESC reaches the log");
    assert!(!all.contains(&b'\r'), "no carriage return reaches the log");
    let forged_lines = String::from_utf8_lossy(&all)
        .lines()
        .filter(|l| l.contains("forged"))
        .count();
    assert_eq!(forged_lines, 1);
}

#[test]
fn a_huge_log_line_is_cut_and_never_copied_whole() {
    logged();
    const BLOCK: u64 = 64 << 20;
    let mut p = Plugin::new(
        wat(&format!(
            r#"(func (export "log") (result i32)
            (call $log_info (call $alloc (i64.const {BLOCK}))) (i32.const 0))"#
        ))
        .as_bytes(),
        [],
        false,
    )
    .unwrap();
    let before = peak_rss_kib();
    p.call::<_, ()>("log", "").unwrap();
    let grew = peak_rss_kib().saturating_sub(before);

    let lines = lines_of(&p);
    assert_eq!(lines.len(), 1, "{} lines", lines.len());
    let line = &lines[0];
    // 64 MiB of NUL bytes: each shows as `\0`, so 32 Ki of them fit in the 64 KiB cap.
    let shown = 32 * 1024;
    assert!(
        line.contains(&format!(
            "[log line truncated: {} more bytes not shown]",
            BLOCK - shown
        )),
        "{}",
        &line[line.len() - 80..]
    );
    assert!(line.len() < 70 * 1024, "line of {} bytes", line.len());
    // The block itself may be resident (it is zeroed); copies of it (the old code made
    // three: the block read out, the formatted event, the subscriber's buffer) may not.
    assert!(
        grew < (BLOCK >> 10) + 32 * 1024,
        "peak RSS grew by {grew} KiB logging a {} MiB line",
        BLOCK >> 20
    );
}

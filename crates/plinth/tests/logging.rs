//! Plug-in log lines reach `tracing` with the plug-in's id, and `get_log_level` follows the
//! host's filter. Alone in its binary because it installs the global subscriber.

mod common;
use std::io::Write;
use std::sync::{Arc, Mutex};

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

#[test]
fn plugin_logs_carry_the_id_and_respect_the_level() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

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
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    for msg in ["debug-msg", "info-msg", "warn-msg", "error-msg"] {
        let line = text
            .lines()
            .find(|l| l.contains(msg))
            .unwrap_or_else(|| panic!("{msg} missing in {text}"));
        assert!(line.contains(p.id()), "line carries the plug-in id: {line}");
        assert!(line.contains(plinth::LOG_TARGET), "{line}");
    }
    assert!(!text.contains("trace-msg"), "below the filter: {text}");
    assert!(text.contains("ERROR") && text.contains("WARN"));
}

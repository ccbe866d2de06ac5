//! A test fixture for examples/cli-extension: one plug-in whose `run` and `describe` misbehave
//! in the way config key `mode` names, so each failure a CLI host must survive is one manifest.
//!
//! Modes: `trap`, `loop`, `flood` (config `bytes` of output), `error` (an error message with
//! terminal escape sequences), `print` (writes to its WASI stdout and stderr), `evil_describe` (a description with escape sequences), `fail_describe`, `trap_describe`,
//! `loop_describe`. Any other mode (or none) echoes config `args` and the input.

use plinth_pdk::*;

fn mode() -> String {
    config::get("mode").ok().flatten().unwrap_or_default()
}

fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[plugin_fn]
pub fn describe() -> FnResult<String> {
    match mode().as_str() {
        "evil_describe" => Ok(
            "{\"summary\": \"innocent\\u001b[2J\\u001b]0;pwned\\u0007\\nFAKE LINE\", \
                               \"usage\": \"use me\\u001b[31m red\"}"
                .to_string(),
        ),
        "fail_describe" => Err(Error::msg("describe is broken on purpose").into()),
        "trap_describe" => trap(),
        "loop_describe" => spin(),
        m => Ok(format!(
            "Test fixture in mode `{m}`\nUsage text for mode `{m}`."
        )),
    }
}

#[plugin_fn]
pub fn run(input: Vec<u8>) -> FnResult<Vec<u8>> {
    match mode().as_str() {
        "trap" => trap(),
        "loop" => spin(),
        "flood" => {
            let bytes: usize = config::get("bytes")?
                .and_then(|b| b.parse().ok())
                .unwrap_or(1 << 20);
            Ok(vec![b'x'; bytes])
        }
        "error" => Err(Error::msg("bad \u{1b}[31mred\u{1b}[0m\nforged line").into()),
        "print" => {
            println!("to stdout \u{1b}[31m");
            eprintln!("to stderr");
            Ok(b"the result\n".to_vec())
        }
        _ => {
            let mut out = config::get("args")?.unwrap_or_default().into_bytes();
            out.push(b'\n');
            out.extend_from_slice(&input);
            Ok(out)
        }
    }
}

//! The `game` binary, run as a user would.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn game_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_game"))
}

#[test]
fn a_game_from_a_mods_folder_prints_its_events_and_summary_the_same_each_run() {
    let dir = mods_dir(&[
        ("forager.wasm", &std::fs::read(forager()).unwrap()),
        ("looper.wat", LOOPER.as_bytes()),
        ("sweeper.wasm", &std::fs::read(sweeper()).unwrap()),
    ]);
    let run = || {
        let out = game_cmd()
            .args([
                "--mods",
                dir.path().to_str().unwrap(),
                "--ticks",
                "30",
                "--seed",
                "3",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    assert_eq!(first, run());
    assert!(first.contains("after 30 ticks, world hash "), "{first}");
    assert!(
        first.contains("tick 1 looper#1: skipped: `on_tick` ran out of fuel"),
        "{first}"
    );
    assert!(
        first.contains("tick 3 looper#1: DISABLED: 3 failures in a row"),
        "{first}"
    );
    assert!(
        first.contains("  looper#1 (disabled, code generation 1)"),
        "{first}"
    );
    assert!(
        first.contains("  forager#0 (playing, code generation 1)"),
        "{first}"
    );
    assert!(
        first.contains("tick 1 sweeper#2: says \"sweeper taking over\""),
        "{first}"
    );
}

#[test]
fn bad_arguments_say_what_to_do() {
    let empty = tempfile::tempdir().unwrap();
    let out = game_cmd()
        .args(["--mods", empty.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no mods in") && err.contains("on_tick"),
        "{err}"
    );

    let out = game_cmd()
        .args(["--mod", forager().to_str().unwrap(), "--ticks", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --watch"));
}

/// `--watch`: the game keeps ticking; a mod's file is replaced from outside and the next
/// tick runs the new code, with the agent's count carried on.
#[test]
fn watch_reloads_a_mod_edited_while_the_game_runs() {
    let dir = mods_dir(&[("alpha.wasm", &std::fs::read(forager()).unwrap())]);
    let alpha = dir.path().join("alpha.wasm");
    let mut child = KillOnDrop(
        game_cmd()
            .args([
                "--mods",
                dir.path().to_str().unwrap(),
                "--watch",
                "--ticks",
                "0",
                "--tick-ms",
                "10",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = || {
        assert!(
            Instant::now() < deadline,
            "the game printed too little in 60 s"
        );
        lines.next().expect("the game ended early").unwrap()
    };
    // Let it play until the forager has picked something up.
    while !next().contains("picked up an item") {}
    replace(&alpha, &std::fs::read(sweeper()).unwrap());
    let reloaded = loop {
        let line = next();
        assert!(!line.contains("reload failed"), "{line}");
        if line.contains("reloaded (code generation 2)") {
            break line;
        }
    };
    let tick = reloaded.split(' ').nth(1).unwrap().to_string();
    let line = next();
    drop(child);
    assert_eq!(
        line,
        format!("tick {tick} alpha#0: says \"sweeper taking over\""),
        "the sweeper's code should play in the tick of the reload"
    );
}

/// Ends the game when the test ends, passed or failed.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

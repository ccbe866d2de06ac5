//! The game example (issue 18) at 100 mods: one frame is one game tick, in which each of the
//! 100 mods is called once with its view (JSON in, actions out, each action checked and
//! played) and, as the game does with hot reload on, each mod's file is looked at for
//! changes. Once for the Plinth-PDK mod (`game_forager`) and once for the extism-pdk mod
//! (`extism_game_sweeper`), each loaded 100 times into a 40x40 world.
//!
//! - criterion, group `game_frame`: the time of a frame, with and without the reload checks;
//! - then (not under `--test`, `--list` or `--profile-time`) the median of 200 frames per mod,
//!   written to `target/criterion/game_frame.json` as
//!   `{"mod":..,"mods":100,"frame_ns":..,"calls_per_16ms":..}`: how many mod calls fit in a
//!   16 ms frame (60 frames a second) at that cost per call.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use plinth_example_game::{Budget, Game, GameConfig};
use serde_json::json;

const MODS: usize = 100;
const FRAME_BUDGET_NS: f64 = 16_000_000.0;
const PLUGINS: [&str; 2] = ["game_forager", "extism_game_sweeper"];

fn game(plugin: &str, hot_reload: bool) -> Game {
    // Loads target/wasm-plugins/NAME.wasm, building the plug-ins first if it is missing.
    let _ = plinth_bench::wasm_plugin(plugin);
    let path = plinth_bench::wasm_plugins_dir().join(format!("{plugin}.wasm"));
    let config = GameConfig {
        width: 40,
        height: 40,
        budget: Budget::default(),
        hot_reload,
        ..GameConfig::default()
    };
    let mut game = Game::new(config, &vec![path; MODS]).expect("load the mods");
    // Warm up: first calls, and the mods' vars filled in.
    for _ in 0..3 {
        game.tick();
    }
    game
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("game_frame");
    for plugin in PLUGINS {
        for hot_reload in [true, false] {
            let mut game = game(plugin, hot_reload);
            let name = if hot_reload {
                format!("{plugin}/100_mods")
            } else {
                format!("{plugin}/100_mods_no_reload_checks")
            };
            g.bench_function(name, |b| b.iter(|| black_box(game.tick().len())));
            assert_no_failures(&game, plugin);
        }
    }
    g.finish();
}

/// A frame that skipped mods would be cheaper and measure nothing: every mod must have played.
fn assert_no_failures(game: &Game, plugin: &str) {
    let failed = game
        .log()
        .iter()
        .find(|e| !matches!(e.what, plinth_example_game::EventKind::Acted(_)));
    assert!(
        failed.is_none(),
        "{plugin}: a mod failed: {}",
        failed.unwrap()
    );
}

fn report() {
    let mut rows = Vec::new();
    for plugin in PLUGINS {
        let mut game = game(plugin, true);
        let mut times: Vec<u128> = (0..200)
            .map(|_| {
                let start = Instant::now();
                black_box(game.tick().len());
                start.elapsed().as_nanos()
            })
            .collect();
        assert_no_failures(&game, plugin);
        times.sort_unstable();
        let frame_ns = times[times.len() / 2] as f64;
        let calls = MODS as f64 * FRAME_BUDGET_NS / frame_ns;
        println!(
            "game_frame {plugin}: {MODS} mods, median frame {:.3} ms, {:.0} mod calls fit in 16 ms",
            frame_ns / 1e6,
            calls
        );
        rows.push(json!({
            "mod": plugin,
            "mods": MODS,
            "frame_ns": frame_ns.round() as u64,
            "calls_per_16ms": calls.floor() as u64,
            "reload_checks": true,
        }));
    }
    let dir = plinth_bench::criterion_dir();
    std::fs::create_dir_all(&dir).expect("create the criterion folder");
    let path = dir.join("game_frame.json");
    let text = serde_json::to_string_pretty(&rows).expect("JSON");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("wrote {}", path.display());
}

criterion_group!(benches, frames);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args
        .iter()
        .any(|a| a == "--list" || a == "--test" || a == "--profile-time");
    benches();
    if !quick {
        report();
    }
    Criterion::default().configure_from_args().final_summary();
}

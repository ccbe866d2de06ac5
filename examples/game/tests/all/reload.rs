//! Hot reload: a mod's file is replaced while the game runs; the new code plays from the next
//! tick, and nothing of the game is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use plinth_example_game::{Event, EventKind, Game, GameConfig, Outcome};

fn said(events: &[Event], agent: usize, text: &str) -> bool {
    events
        .iter()
        .any(|e| e.agent == agent && e.what == EventKind::Acted(Outcome::Said(text.into())))
}

#[test]
fn replacing_a_mod_changes_behaviour_at_the_next_tick_and_keeps_the_game() {
    let forager_bytes = std::fs::read(forager()).unwrap();
    let dir = mods_dir(&[("alpha.wasm", &forager_bytes)]);
    let alpha = dir.path().join("alpha.wasm");
    let mut game = Game::from_dir(GameConfig::default(), dir.path()).unwrap();
    // Enough ticks for the forager to find something.
    let mut ticks = 0;
    while game.world().agents[0].carrying == 0 {
        game.tick();
        ticks += 1;
        assert!(ticks < 200, "the forager found nothing in 200 ticks");
    }
    for _ in 0..3 {
        game.tick();
    }
    let before = game.world().agents[0].clone();
    let tick_before = game.world().tick;
    let picked = before.vars["picked"].as_u64().unwrap();
    assert!(picked > 0);
    assert!(
        before.vars.get("sweep").is_none(),
        "the forager has no sweep var"
    );

    replace(&alpha, &std::fs::read(sweeper()).unwrap());
    let events = game.tick().to_vec();

    // This very tick: reloaded first, then the sweeper's code played.
    assert_eq!(
        events[0].what,
        EventKind::Reloaded { generation: 2 },
        "{events:?}"
    );
    assert!(said(&events, 0, "sweeper taking over"), "{events:?}");
    assert_eq!(game.mod_of(0).generation(), 2);
    // Nothing lost: the agent moved at most one step from where it was, carries what it
    // carried (or one more), and its count in the vars goes on from the forager's.
    let after = &game.world().agents[0];
    assert!((after.x - before.x).abs() + (after.y - before.y).abs() <= 1);
    assert!(after.carrying >= before.carrying);
    assert!(after.vars["picked"].as_u64().unwrap() >= picked);
    assert!(after.vars["sweep"].as_str().is_some());
    assert_eq!(game.world().tick, tick_before + 1);
    // The greeting was for the swap only: the sweeper's own vars carry on from here.
    for _ in 0..5 {
        let events = game.tick().to_vec();
        assert!(!said(&events, 0, "sweeper taking over"), "{events:?}");
    }
}

#[test]
fn a_reload_to_garbage_keeps_the_old_mod_running_and_logs_why() {
    let dir = mods_dir(&[("alpha.wasm", &std::fs::read(sweeper()).unwrap())]);
    let alpha = dir.path().join("alpha.wasm");
    let mut game = Game::from_dir(GameConfig::default(), dir.path()).unwrap();
    for _ in 0..3 {
        game.tick();
    }
    replace(&alpha, b"\0asm this is not a module");
    let events = game.tick().to_vec();
    assert!(
        matches!(&events[0].what, EventKind::ReloadFailed(why) if why.contains("compile")),
        "{events:?}"
    );
    // The sweeper goes on, with its own vars: no second greeting, moves every tick.
    assert!(!said(&events, 0, "sweeper taking over"));
    assert!(events[1..]
        .iter()
        .all(|e| matches!(e.what, EventKind::Acted(_))));
    assert_eq!(game.mod_of(0).generation(), 1);
    // The failure is reported once, not every tick.
    let events = game.tick().to_vec();
    assert!(
        events.iter().all(|e| matches!(e.what, EventKind::Acted(_))),
        "{events:?}"
    );

    // A module without `on_tick` is refused the same way.
    replace(
        &alpha,
        br#"(module (func (export "other") (result i32) (i32.const 0)))"#,
    );
    let events = game.tick().to_vec();
    assert!(
        matches!(&events[0].what, EventKind::ReloadFailed(why) if why.contains("on_tick")),
        "{events:?}"
    );
    assert_eq!(game.mod_of(0).generation(), 1);
}

#[test]
fn fixing_a_disabled_mod_brings_it_back() {
    let dir = mods_dir(&[("alpha.wat", LOOPER.as_bytes())]);
    let alpha = dir.path().join("alpha.wat");
    let mut game = Game::from_dir(GameConfig::default(), dir.path()).unwrap();
    for _ in 0..4 {
        game.tick();
    }
    assert!(game.is_disabled(0));
    replace(&alpha, &std::fs::read(forager()).unwrap());
    let events = game.tick().to_vec();
    assert_eq!(events[0].what, EventKind::Reloaded { generation: 2 });
    assert!(!game.is_disabled(0));
    assert!(
        events[1..]
            .iter()
            .all(|e| matches!(e.what, EventKind::Acted(_))),
        "{events:?}"
    );
}

/// The game on its own thread, a tick every few milliseconds, and the file replaced from
/// this one: the swap lands between two ticks, whichever.
#[test]
fn a_mod_replaced_while_the_game_thread_runs_is_picked_up() {
    let dir = mods_dir(&[("alpha.wasm", &std::fs::read(forager()).unwrap())]);
    let alpha = dir.path().join("alpha.wasm");
    let game = Arc::new(Mutex::new(
        Game::from_dir(GameConfig::default(), dir.path()).unwrap(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (game, stop) = (game.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                game.lock().unwrap().tick();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    replace(&alpha, &std::fs::read(sweeper()).unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let reload_tick = loop {
        let found = game
            .lock()
            .unwrap()
            .log()
            .iter()
            .find(|e| e.what == EventKind::Reloaded { generation: 2 })
            .map(|e| e.tick);
        if let Some(tick) = found {
            break tick;
        }
        assert!(Instant::now() < deadline, "no reload within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    };
    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap();
    let game = game.lock().unwrap();
    assert!(game.world().tick >= reload_tick);
    let greeting: Vec<u64> = game
        .log()
        .iter()
        .filter(|e| e.what == EventKind::Acted(Outcome::Said("sweeper taking over".into())))
        .map(|e| e.tick)
        .collect();
    assert_eq!(
        greeting,
        vec![reload_tick],
        "the sweeper starts at the reload's tick"
    );
    // Every tick before it was the forager's, every tick from it the sweeper's, none skipped.
    assert!(game
        .log()
        .iter()
        .all(|e| !matches!(e.what, EventKind::Skipped(_) | EventKind::ReloadFailed(_))));
}

#[test]
fn a_deleted_mod_file_is_reported_and_the_old_code_plays_on() {
    let dir = mods_dir(&[("alpha.wasm", &std::fs::read(forager()).unwrap())]);
    let mut game = Game::from_dir(GameConfig::default(), dir.path()).unwrap();
    game.tick();
    std::fs::remove_file(dir.path().join("alpha.wasm")).unwrap();
    let events = game.tick().to_vec();
    assert!(
        matches!(&events[0].what, EventKind::ReloadFailed(why) if why.contains("alpha.wasm")),
        "{events:?}"
    );
    assert!(
        events[1..]
            .iter()
            .all(|e| matches!(e.what, EventKind::Acted(_))),
        "{events:?}"
    );
    let events = game.tick().to_vec();
    assert!(
        events.iter().all(|e| matches!(e.what, EventKind::Acted(_))),
        "{events:?}"
    );
}

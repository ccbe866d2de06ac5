//! Whole games with the built mods: deterministic outcomes, broken mods skipped and
//! disabled without stopping the game.

use std::time::{Duration, Instant};

use crate::common::*;
use plinth_example_game::{EventKind, Game, GameConfig, Outcome};

fn play(seed: u64, ticks: u64) -> Game {
    let config = GameConfig {
        seed,
        ..GameConfig::default()
    };
    let mut game = Game::new(config, &[forager(), sweeper()]).expect("the mods load");
    for _ in 0..ticks {
        game.tick();
    }
    game
}

#[test]
fn the_same_seed_plays_the_same_game() {
    let a = play(7, 60);
    let b = play(7, 60);
    assert_eq!(a.world().hash(), b.world().hash());
    assert_eq!(a.log(), b.log());
    assert_ne!(a.world().hash(), play(8, 60).world().hash());
    // Both mods played: no failures, and each agent found items and counted them in its var.
    for event in a.log() {
        assert!(
            matches!(event.what, EventKind::Acted(_)),
            "unexpected event: {event}"
        );
    }
    for agent in &a.world().agents {
        assert!(
            agent.carrying > 0,
            "{} found nothing in 60 ticks",
            agent.name
        );
        assert_eq!(
            agent.vars.get("picked").and_then(|v| v.as_u64()),
            Some(agent.carrying),
            "{}'s count in its var should match what it carries",
            agent.name
        );
    }
    // The sweeper (an extism-pdk plug-in) announced itself once, at the start.
    let said: Vec<_> = a
        .log()
        .iter()
        .filter(
            |e| matches!(&e.what, EventKind::Acted(Outcome::Said(t)) if t == "sweeper taking over"),
        )
        .collect();
    assert_eq!(said.len(), 1);
    assert_eq!(said[0].tick, 1);
}

#[test]
fn a_looping_mod_is_skipped_then_disabled_and_the_game_goes_on() {
    let dir = mods_dir(&[("looper.wat", LOOPER.as_bytes())]);
    let mut game = game(&[forager(), dir.path().join("looper.wat")]);
    for tick in 1..=8 {
        let started = Instant::now();
        let events = game.tick().to_vec();
        // Generous: the budget is about 5 million instructions, milliseconds of work.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tick {tick} took {:?}",
            started.elapsed()
        );
        assert!(
            events
                .iter()
                .any(|e| e.agent == 0 && matches!(e.what, EventKind::Acted(_))),
            "the forager did nothing in tick {tick}: {events:?}"
        );
        let looper: Vec<_> = events.iter().filter(|e| e.agent == 1).collect();
        match tick {
            1 | 2 => {
                assert_eq!(looper.len(), 1, "{looper:?}");
                assert!(
                    matches!(&looper[0].what, EventKind::Skipped(why) if why.contains("ran out of fuel")),
                    "{}",
                    looper[0]
                );
            }
            3 => {
                assert_eq!(looper.len(), 2, "{looper:?}");
                assert!(
                    matches!(&looper[1].what, EventKind::Disabled(why) if why.contains("3 failures in a row")),
                    "{}",
                    looper[1]
                );
            }
            _ => assert!(looper.is_empty(), "a disabled mod was called: {looper:?}"),
        }
    }
    assert!(game.is_disabled(1));
    assert!(!game.is_disabled(0));
    assert_eq!(game.world().tick, 8);
}

#[test]
fn trapping_malformed_and_cheating_mods_are_skipped_with_the_reason() {
    let cases: [(&str, String, &str); 6] = [
        ("trapper.wat", TRAPPER.to_string(), "trapped"),
        ("garbled.wat", saying("{not json"), "malformed output"),
        (
            "other_agent.wat",
            saying(r#"{"actions":[{"move":"N","agent":0}]}"#),
            "malformed output",
        ),
        (
            "teleport.wat",
            saying(r#"{"actions":[{"move":"N"},{"move":"N"}]}"#),
            "2 moves in one tick",
        ),
        (
            "jump.wat",
            saying(r#"{"actions":[{"move":"NE"}]}"#),
            "malformed output",
        ),
        (
            "spam.wat",
            saying(&format!(
                r#"{{"actions":[],"vars":{{"x":"{}"}}}}"#,
                "a".repeat(5000)
            )),
            "over the 4096-byte limit",
        ),
    ];
    for (file, wat, reason) in cases {
        let dir = mods_dir(&[(file, wat.as_bytes())]);
        let mut game = game(&[sweeper(), dir.path().join(file)]);
        let events = game.tick().to_vec();
        let skipped: Vec<_> = events.iter().filter(|e| e.agent == 1).collect();
        assert_eq!(skipped.len(), 1, "{file}: {events:?}");
        assert!(
            matches!(&skipped[0].what, EventKind::Skipped(why) if why.contains(reason)),
            "{file}: expected a skip for `{reason}`, got: {}",
            skipped[0]
        );
        // The cheat changed nothing: the agent is where it started.
        let start = plinth_example_game::World::new(18, 16, 10, &["a".into(), "b".into()]);
        assert_eq!(
            (game.world().agents[1].x, game.world().agents[1].y),
            (start.agents[1].x, start.agents[1].y),
            "{file}"
        );
    }
}

#[test]
fn what_mods_say_is_escaped_and_cut() {
    let text = format!("line\nbreak\x1b[31m{}", "x".repeat(200));
    let json = serde_json::json!({ "actions": [{ "say": text }] }).to_string();
    let dir = mods_dir(&[("talker.wat", saying(&json).as_bytes())]);
    let mut game = game(&[dir.path().join("talker.wat")]);
    let events = game.tick().to_vec();
    let EventKind::Acted(Outcome::Said(said)) = &events[0].what else {
        panic!("expected a say, got {events:?}");
    };
    assert!(said.starts_with("line\\nbreak\\x1b[31m"), "{said}");
    assert!(!said.chars().any(char::is_control), "{said:?}");
    // 80 characters of what the mod said (15 before the x's), then a mark that it was cut.
    assert_eq!(*said, format!("line\\nbreak\\x1b[31m{}…", "x".repeat(65)));
}

//! `game`: plays the grid world with the mods of a folder, headless.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use plinth_example_game::{mod_files, Budget, Game, GameConfig};

/// Plays a grid world whose agents are driven by mods (plug-ins exporting `on_tick`).
#[derive(Parser)]
#[command(name = "game")]
struct Args {
    /// A folder of mods: every .wasm and .wat file in it plays one agent.
    #[arg(long, required_unless_present = "mod_file")]
    mods: Option<PathBuf>,
    /// One mod file (repeat for more); after those of --mods.
    #[arg(long = "mod", value_name = "FILE")]
    mod_file: Vec<PathBuf>,
    /// Ticks to play; with --watch, 0 plays until interrupted.
    #[arg(long, default_value_t = 20)]
    ticks: u64,
    /// The world's seed.
    #[arg(long, default_value_t = 18)]
    seed: u64,
    /// Grid size, WIDTHxHEIGHT.
    #[arg(long, default_value = "16x10", value_parser = parse_size)]
    size: (i64, i64),
    /// Fuel for each mod's call in each tick.
    #[arg(long, default_value_t = Budget::default().fuel)]
    fuel: u64,
    /// Keep running, a tick every --tick-ms, reloading mods whose files change.
    #[arg(long)]
    watch: bool,
    /// Milliseconds between ticks with --watch.
    #[arg(long, default_value_t = 500)]
    tick_ms: u64,
    /// Print the grid after every tick.
    #[arg(long)]
    grid: bool,
}

fn parse_size(s: &str) -> Result<(i64, i64), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("size `{s}` is not WIDTHxHEIGHT, e.g. 16x10"))?;
    let n = |v: &str| {
        v.parse::<i64>()
            .ok()
            .filter(|n| (4..=256).contains(n))
            .ok_or_else(|| format!("size `{s}`: each side must be a number from 4 to 256"))
    };
    Ok((n(w)?, n(h)?))
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let mut paths = match &args.mods {
        Some(dir) => mod_files(dir)?,
        None => Vec::new(),
    };
    paths.extend(args.mod_file.iter().cloned());
    let config = GameConfig {
        seed: args.seed,
        width: args.size.0,
        height: args.size.1,
        budget: Budget {
            fuel: args.fuel,
            ..Budget::default()
        },
        hot_reload: args.watch,
        ..GameConfig::default()
    };
    if args.ticks == 0 && !args.watch {
        return Err("--ticks 0 plays until interrupted, which needs --watch".into());
    }
    let mut game = Game::new(config, &paths)?;
    let mut played = 0;
    while args.ticks == 0 || played < args.ticks {
        for event in game.tick() {
            println!("{event}");
        }
        played += 1;
        if args.grid {
            print!("{}", game.world().render());
        }
        if args.watch {
            std::thread::sleep(Duration::from_millis(args.tick_ms));
        }
    }
    let world = game.world();
    println!(
        "after {} ticks, world hash {:016x}",
        world.tick,
        world.hash()
    );
    for (id, agent) in world.agents.iter().enumerate() {
        let state = if game.is_disabled(id) {
            "disabled"
        } else {
            "playing"
        };
        println!(
            "  {}#{id} ({state}, code generation {}): at {},{}, carrying {}, vars {}",
            agent.name,
            game.mod_of(id).generation(),
            agent.x,
            agent.y,
            agent.carrying,
            serde_json::Value::Object(agent.vars.clone())
        );
    }
    Ok(())
}

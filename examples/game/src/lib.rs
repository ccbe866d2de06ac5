//! A small deterministic grid-world game whose mods are plug-ins, reloaded while it runs.
//!
//! Each mod plays one agent. Every tick the game calls the mod's `on_tick` export with what
//! its agent sees (JSON) and plays the actions it returns (JSON), after checking them. Each
//! call has a fuel budget: a mod that loops, traps or answers nonsense is skipped and
//! reported, and disabled after a few failures in a row; the game goes on. A mod whose file
//! changes is reloaded between ticks, keeping its agent and vars.

pub mod game;
pub mod mods;
pub mod world;

pub use game::{mod_files, validate, Event, EventKind, Game, GameConfig, ModOutput};
pub use mods::{Budget, Mod, Reload, ON_TICK};
pub use world::{Action, Dir, Outcome, World};

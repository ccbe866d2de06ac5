//! The game's tests as one binary (one link of the runtime instead of three): `play` (a
//! deterministic game, broken mods skipped and disabled), `reload` (mods edited while the game
//! runs), `cli` (the `game` binary as a user runs it).

mod cli;
mod common;
mod play;
mod reload;

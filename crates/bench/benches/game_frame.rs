//! Placeholder: filled in by the game_frame work of issue 18.
fn main() {}

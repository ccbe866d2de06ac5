//! Placeholder: filled in by the sqlite_rows work of issue 18.
fn main() {}

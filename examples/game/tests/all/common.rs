//! Shared by the tests: the built mods, WAT mods written here, and a mods folder.

use std::path::{Path, PathBuf};

use plinth_example_game::{Game, GameConfig};

/// A mod built by scripts/build-plugins.sh (target/wasm-plugins/NAME.wasm).
pub fn built_mod(name: &str) -> PathBuf {
    let dir = match std::env::var_os("PLINTH_WASM_PLUGINS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugins"),
    };
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plug-ins first (bash scripts/build-plugins.sh)",
        path.display()
    );
    path
}

/// The Plinth-PDK mod.
pub fn forager() -> PathBuf {
    built_mod("game_forager")
}

/// The extism-pdk mod.
pub fn sweeper() -> PathBuf {
    built_mod("extism_game_sweeper")
}

/// A mod that loops for ever in `on_tick`.
pub const LOOPER: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "on_tick") (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))"#;

/// A mod that traps in `on_tick`.
pub const TRAPPER: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "on_tick") (result i32) unreachable))"#;

/// A mod whose `on_tick` outputs `text`, whatever it is shown (an Extism-ABI WAT plug-in).
pub fn saying(text: &str) -> String {
    let escaped: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
    format!(
        r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{escaped}")
  (func (export "on_tick") (result i32)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.const {len})))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (i32.const {len})))
        (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
                        (i32.load8_u (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (call $output_set (local.get $h) (i64.const {len}))
    (i32.const 0)))"#,
        len = text.len()
    )
}

/// Writes `files` (name, content) into a new temporary folder.
pub fn mods_dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("write a mod");
    }
    dir
}

/// Replaces `path` with `content` the way editors and build tools do: a new file renamed
/// over the old one, so that a reader never sees half of it.
pub fn replace(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, content).expect("write the new mod");
    std::fs::rename(&tmp, path).expect("rename it over the old one");
}

/// A game of the given mods with the default settings.
pub fn game(paths: &[PathBuf]) -> Game {
    Game::new(GameConfig::default(), paths).expect("the mods load")
}

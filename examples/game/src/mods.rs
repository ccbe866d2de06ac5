//! Loading mods, calling them under a budget, and reloading them when their file changes.
//!
//! All plug-in handling is here, in [`Mod`], so that the game loop does not care how a mod's
//! code is swapped.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use plinth::{Manifest, Plugin, Wasm};

/// The export every mod has: JSON view in, JSON actions out.
pub const ON_TICK: &str = "on_tick";

/// What one mod may use in one tick.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Fuel (about one unit per wasm instruction) for one `on_tick` call.
    pub fuel: u64,
    /// Wall-clock limit for one call, a backstop behind the fuel.
    pub timeout: Duration,
    /// Memory the mod may grow to, in 64 KiB pages.
    pub max_pages: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            fuel: 5_000_000,
            timeout: Duration::from_secs(1),
            max_pages: 256,
        }
    }
}

/// What [`Mod::check`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The file did not change (or changed back to the code already running).
    Unchanged,
    /// New code was loaded and runs from the next call.
    Swapped {
        /// How many times the mod's code has been loaded, the first load being 1.
        generation: u64,
    },
    /// The file changed but its new content does not load; the old code runs on.
    Failed(String),
}

/// A file's identity as far as change detection goes: a rewrite or a rename over it changes
/// one of these.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// A mod: a plug-in loaded from a `.wasm` or `.wat` file, with its budget.
pub struct Mod {
    name: String,
    path: PathBuf,
    budget: Budget,
    plugin: Plugin,
    /// What the loaded code was read from, to tell a real change from a touch.
    code: Vec<u8>,
    /// The file as last read (loaded or not), so a bad file is reported once, not every tick.
    seen: Option<Stamp>,
    generation: u64,
}

impl Mod {
    /// Loads the mod in `path`; its name is the file name without extension.
    pub fn load(path: impl Into<PathBuf>, budget: Budget) -> Result<Mod, String> {
        let path = path.into();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "mod".into());
        let seen = stamp(&path).ok();
        let code =
            std::fs::read(&path).map_err(|e| format!("cannot read mod {}: {e}", path.display()))?;
        let plugin = build(&code, &budget)
            .map_err(|e| format!("cannot load mod {}: {e}", path.display()))?;
        Ok(Mod {
            name,
            path,
            budget,
            plugin,
            code,
            seen,
            generation: 1,
        })
    }

    /// The mod's name (its file name without extension).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the mod is loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times the mod's code has been loaded (1 until a reload).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Calls `on_tick` with the view's JSON, within the budget; gives the output text.
    pub fn on_tick(&mut self, view: &str) -> Result<String, plinth::Error> {
        self.plugin.call::<&str, String>(ON_TICK, view)
    }

    /// Fuel the last call used.
    pub fn fuel_consumed(&self) -> Option<u64> {
        self.plugin.fuel_consumed()
    }

    /// Reloads the mod if its file changed since it was last read. A file that no longer
    /// loads (missing, half written, not wasm, no `on_tick`) leaves the old code running.
    pub fn check(&mut self) -> Reload {
        let now = stamp(&self.path).ok();
        if now == self.seen {
            return Reload::Unchanged;
        }
        self.seen = now;
        let code = match std::fs::read(&self.path) {
            Ok(code) => code,
            Err(e) => return Reload::Failed(format!("cannot read {}: {e}", self.path.display())),
        };
        if code == self.code {
            return Reload::Unchanged;
        }
        match build(&code, &self.budget) {
            Ok(plugin) => {
                self.plugin = plugin;
                self.code = code;
                self.generation += 1;
                Reload::Swapped {
                    generation: self.generation,
                }
            }
            Err(e) => Reload::Failed(e),
        }
    }
}

fn build(code: &[u8], budget: &Budget) -> Result<Plugin, String> {
    let manifest = Manifest::new([Wasm::data(code.to_vec())])
        .with_timeout(budget.timeout)
        .with_memory_max(budget.max_pages);
    let plugin = Plugin::builder(manifest)
        .with_fuel_limit(budget.fuel)
        .build()
        .map_err(|e| e.to_string())?;
    if !plugin.function_exists(ON_TICK) {
        return Err(format!(
            "the plug-in has no `{ON_TICK}` export (its exports: {}); a mod must export `{ON_TICK}`",
            plugin.functions().join(", ")
        ));
    }
    Ok(plugin)
}

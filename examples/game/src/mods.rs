//! Loading mods, calling them under a budget, and reloading them when their file changes.
//!
//! All plug-in handling is here, in [`Mod`], on Plinth's hot reload ([`HotPlugin`]), so
//! that the game loop does not care how a mod's code is swapped.

use std::path::{Path, PathBuf};

use plinth::reload::HotPlugin;

/// The export every mod has: JSON view in, JSON actions out.
pub const ON_TICK: &str = "on_tick";

/// What one mod may use in one tick.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Fuel (about one unit per wasm instruction) for one `on_tick` call.
    pub fuel: u64,
    /// All the memory a mod's instance may hold, in 64 KiB pages.
    pub max_pages: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            fuel: 5_000_000,
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

/// A mod: a plug-in loaded from a `.wasm` or `.wat` file (or a manifest), with its budget,
/// on Plinth's [`HotPlugin`], which follows the file.
pub struct Mod {
    name: String,
    plugin: HotPlugin,
}

impl Mod {
    /// Loads the mod in `path`; its name is the file name without extension.
    pub fn load(path: impl Into<PathBuf>, budget: Budget) -> Result<Mod, String> {
        let path = path.into();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "mod".into());
        let fail = |e: plinth::Error| format!("cannot load mod {}: {e}", path.display());
        // Every generation of the code gets the same budget. Fuel bounds the work of a call;
        // a mod has no host functions to block in, so fuel bounds its time too.
        let plugin = HotPlugin::open(&path, move |b| {
            b.with_fuel_limit(budget.fuel)
                .with_instance_memory_max(budget.max_pages)
        })
        .map_err(fail)?
        // The game looks for changes itself, between ticks, never in the middle of one.
        .with_check_interval(None)
        .require_exports([ON_TICK])
        .map_err(fail)?;
        Ok(Mod { name, plugin })
    }

    /// The mod's name (its file name without extension).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the mod is loaded from.
    pub fn path(&self) -> &Path {
        self.plugin.path()
    }

    /// How many times the mod's code has been loaded (1 until a reload).
    pub fn generation(&self) -> u64 {
        self.plugin.generation()
    }

    /// Calls `on_tick` with the view's JSON, within the budget; gives the output text.
    pub fn on_tick(&mut self, view: &str) -> Result<String, plinth::Error> {
        self.plugin.call::<&str, String>(ON_TICK, view)
    }

    /// Reloads the mod if its file changed since it was last read. A file that no longer
    /// loads (missing, half written, not wasm, no `on_tick`) leaves the old code running.
    pub fn check(&mut self) -> Reload {
        match self.plugin.check() {
            Ok(plinth::reload::Reload::Unchanged) => Reload::Unchanged,
            Ok(plinth::reload::Reload::Swapped { generation }) => Reload::Swapped { generation },
            Ok(plinth::reload::Reload::Failed(e)) => Reload::Failed(e.to_string()),
            // Only a check from inside a call of this mod fails; the game never does that.
            Err(e) => Reload::Failed(e.to_string()),
        }
    }
}

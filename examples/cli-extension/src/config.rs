//! Where the plug-ins are. The first of these that is set wins:
//! 1. `--plugins DIR` (relative to the working directory);
//! 2. the environment variable `JTOOL_PLUGINS` (relative to the working directory);
//! 3. `plugins = "DIR"` in the config file, relative to the config file's folder. The config
//!    file is `--config PATH`, else `$XDG_CONFIG_HOME/jtool/config.toml`, else
//!    `~/.config/jtool/config.toml`. A config file named with `--config` must exist; the
//!    default one may be absent.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The environment variable naming the plug-in directory.
pub const PLUGINS_ENV: &str = "JTOOL_PLUGINS";

/// The config file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The plug-in directory, relative to the config file's folder.
    pub plugins: Option<PathBuf>,
}

/// The plug-in directory and what named it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDir {
    /// The directory.
    pub path: PathBuf,
    /// `--plugins`, `JTOOL_PLUGINS` or `plugins in FILE`.
    pub origin: String,
}

/// The default config file: `$XDG_CONFIG_HOME/jtool/config.toml`, else
/// `$HOME/.config/jtool/config.toml`; `None` when neither variable is set.
pub fn default_config_path() -> Option<PathBuf> {
    // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".config"))
    })?;
    Some(base.join("jtool").join("config.toml"))
}

/// Reads a config file. `Ok(None)` when the file does not exist and `required` is false.
pub fn read_config(path: &Path, required: bool) -> Result<Option<ConfigFile>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        }
    };
    toml::from_str(&text).map(Some).map_err(|e| {
        format!(
            "the config file {} is invalid: {}; it may hold only `plugins = \"DIR\"`",
            path.display(),
            e.message()
        )
    })
}

/// Finds the plug-in directory from the flag, the environment and the config file, in that
/// order. `Ok(None)`: none of them names one.
pub fn plugin_dir(
    flag: Option<&Path>,
    config_flag: Option<&Path>,
) -> Result<Option<PluginDir>, String> {
    if let Some(dir) = flag {
        return Ok(Some(PluginDir {
            path: dir.to_path_buf(),
            origin: "--plugins".into(),
        }));
    }
    if let Some(dir) = std::env::var_os(PLUGINS_ENV).filter(|d| !d.is_empty()) {
        return Ok(Some(PluginDir {
            path: PathBuf::from(dir),
            origin: PLUGINS_ENV.into(),
        }));
    }
    let (path, required) = match config_flag {
        Some(path) => (path.to_path_buf(), true),
        None => match default_config_path() {
            Some(path) => (path, false),
            None => return Ok(None),
        },
    };
    let Some(config) = read_config(&path, required)? else {
        return Ok(None);
    };
    Ok(config.plugins.map(|dir| PluginDir {
        path: path.parent().unwrap_or(Path::new("")).join(dir),
        origin: format!("`plugins` in {}", path.display()),
    }))
}

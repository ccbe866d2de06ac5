//! The plug-ins in a directory. A plug-in is `NAME.wasm`, or a manifest `NAME.toml` or
//! `NAME.json` (Extism's manifest format). When a manifest and `NAME.wasm` sit side by side
//! the manifest is the plug-in (it usually names that `.wasm`). Files with other extensions,
//! hidden files and folders are ignored. A name must be a safe command name and must not be a
//! built-in's; other files are skipped with a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::escape;

/// The commands jtool has itself; a plug-in may not take their names.
pub const BUILTINS: &[&str] = &["list", "help", "pretty", "keys"];

/// How a plug-in is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginFile {
    /// A bare module: no files, no network, default limits.
    Wasm(PathBuf),
    /// A manifest: the grants and limits it names.
    Manifest(PathBuf),
}

impl PluginFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        match self {
            PluginFile::Wasm(p) | PluginFile::Manifest(p) => p,
        }
    }
}

/// What a directory holds.
#[derive(Debug, Default)]
pub struct Found {
    /// The plug-ins by command name.
    pub plugins: BTreeMap<String, PluginFile>,
    /// Files that look like plug-ins but were skipped, and why (escaped for a terminal).
    pub warnings: Vec<String>,
}

/// Whether `name` may be a command: an ASCII letter, then letters, digits, `-` or `_`, at most
/// 64 characters. Anything else could be mistaken for a flag or mangle a terminal.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Lists the plug-ins in `dir`.
pub fn discover(dir: &Path) -> Result<Found, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read the plug-in directory {}: {e}",
            escape(&dir.display().to_string())
        )
    })?;
    // Per stem: the manifests and the wasm file seen.
    let mut stems: BTreeMap<String, (Vec<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    let mut found = Found::default();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read the plug-in directory: {e}"))?;
        let path = entry.path();
        let file_name = entry.file_name();
        let shown = escape(&file_name.to_string_lossy());
        if shown.starts_with('.') || path.is_dir() {
            continue;
        }
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if !matches!(ext, "wasm" | "toml" | "json") {
            continue;
        }
        let stem = match path.file_stem().and_then(|s| s.to_str()) {
            Some(stem) if valid_name(stem) => stem.to_string(),
            _ => {
                found.warnings.push(format!(
                    "skipping {shown}: its name is not a valid command name (a letter, then \
                     letters, digits, `-` or `_`); rename the file"
                ));
                continue;
            }
        };
        if BUILTINS.contains(&stem.as_str()) {
            found.warnings.push(format!(
                "skipping {shown}: `{stem}` is a built-in command; rename the file"
            ));
            continue;
        }
        let slot = stems.entry(stem).or_default();
        if ext == "wasm" {
            slot.1 = Some(path);
        } else {
            slot.0.push(path);
        }
    }
    for (name, (mut manifests, wasm)) in stems {
        let file = match manifests.len() {
            0 => PluginFile::Wasm(wasm.expect("a stem has a manifest or a wasm file")),
            1 => PluginFile::Manifest(manifests.remove(0)),
            _ => {
                found.warnings.push(format!(
                    "skipping `{name}`: both {name}.toml and {name}.json exist; keep one"
                ));
                continue;
            }
        };
        found.plugins.insert(name, file);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names() {
        for ok in ["pick", "word-freq", "a_1", "X"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-rf",
            "1st",
            "a b",
            "a.b",
            "é",
            "a\x1b",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}

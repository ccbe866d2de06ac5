//! [`Source`]: what a plug-in is loaded from, and the one rule for relative paths.

use std::path::{Path, PathBuf};

use plinth_manifest::{Manifest, ManifestError, Wasm};

use crate::{Error, Result};

/// What a plug-in is loaded from: a manifest, a file, or raw bytes.
///
/// Every SDK and the `plinth` command turn their argument into one of these, so that the same
/// input loads the same way in every language. The one rule for relative paths: in a manifest
/// read from a file ([`Source::File`]), relative `wasm` file paths and `allowed_paths` are
/// relative to the manifest file's folder; everywhere else (a [`Manifest`] value, manifest
/// bytes) they are relative to the working directory, as in Extism.
#[derive(Debug, Clone)]
pub enum Source {
    /// A manifest value.
    Manifest(Manifest),
    /// A wasm binary, WAT text, or a manifest in JSON or TOML, told apart by content.
    Bytes(Vec<u8>),
    /// A file holding a wasm binary, WAT text or a manifest, told apart by content.
    File(PathBuf),
}

impl From<Manifest> for Source {
    fn from(m: Manifest) -> Self {
        Source::Manifest(m)
    }
}
impl From<&Manifest> for Source {
    fn from(m: &Manifest) -> Self {
        Source::Manifest(m.clone())
    }
}
impl From<Wasm> for Source {
    fn from(w: Wasm) -> Self {
        Source::Manifest(Manifest::new([w]))
    }
}
impl From<Vec<u8>> for Source {
    fn from(b: Vec<u8>) -> Self {
        Source::Bytes(b)
    }
}
impl From<&[u8]> for Source {
    fn from(b: &[u8]) -> Self {
        Source::Bytes(b.to_vec())
    }
}
impl<const N: usize> From<&[u8; N]> for Source {
    fn from(b: &[u8; N]) -> Self {
        Source::Bytes(b.to_vec())
    }
}
impl From<&str> for Source {
    fn from(s: &str) -> Self {
        Source::Bytes(s.as_bytes().to_vec())
    }
}
impl From<&Path> for Source {
    fn from(p: &Path) -> Self {
        Source::File(p.to_path_buf())
    }
}
impl From<PathBuf> for Source {
    fn from(p: PathBuf) -> Self {
        Source::File(p)
    }
}

impl Source {
    /// A file holding a wasm binary, WAT text or a manifest.
    pub fn file(path: impl Into<PathBuf>) -> Source {
        Source::File(path.into())
    }

    /// A manifest file (JSON or TOML), read now whatever its content looks like; its relative
    /// paths are rebased onto its folder.
    pub fn manifest_file(path: impl AsRef<Path>) -> Result<Source> {
        Ok(Source::Manifest(Manifest::from_file(path)?))
    }

    /// The manifest this source stands for (raw modules get a one-module manifest).
    pub fn into_manifest(self) -> Result<Manifest> {
        match self {
            Source::Manifest(m) => Ok(m),
            // `looks_like_manifest` says no to wasm binaries (`\0asm`) and WAT (`(`).
            Source::Bytes(b) => {
                if Manifest::looks_like_manifest(&b) {
                    Ok(Manifest::parse(&b)?)
                } else {
                    Ok(Manifest::new([Wasm::data(b)]))
                }
            }
            Source::File(path) => {
                let bytes = std::fs::read(&path).map_err(|source| {
                    Error::Manifest(ManifestError::ReadSource {
                        path: path.clone(),
                        source,
                    })
                })?;
                if Manifest::looks_like_manifest(&bytes) {
                    let mut manifest = Manifest::parse(&bytes)?;
                    manifest.rebase_paths(path.parent().unwrap_or(Path::new("")));
                    Ok(manifest)
                } else {
                    // The module is read again at load, by path, so that its name and the
                    // errors that mention it carry the file's path.
                    Ok(Manifest::new([Wasm::file(path)]))
                }
            }
        }
    }
}

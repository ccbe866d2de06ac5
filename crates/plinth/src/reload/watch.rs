//! What the files of a hot plug-in looked like: a cheap stamp per file (length, modification
//! time, inode) to tell quickly that nothing changed, and a snapshot (every byte, read once,
//! and their sha256) to tell for sure and to compile from.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use plinth_manifest::{Manifest, ManifestError, Wasm};
use sha2::{Digest, Sha256};

use crate::Error;

/// A stamp this close to its file's modification time cannot be trusted: file systems keep
/// modification times coarsely (a few ms on ext4, 2 s on FAT), so a write in the same tick
/// leaves the stamp as it was. Such files are hashed at the next check (Git's "racy" rule).
const RACY: Duration = Duration::from_secs(2);

/// One file's metadata at a stat: what changes when the file is written or replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stamp {
    Present {
        len: u64,
        modified: Option<SystemTime>,
        /// Inode, device and change time: a file replaced by a rename, or rewritten with the
        /// same length and modification time, still differs here.
        #[cfg(unix)]
        node: (u64, u64, i64, i64),
    },
    Missing(std::io::ErrorKind),
}

fn stamp(path: &Path) -> Stamp {
    match std::fs::metadata(path) {
        Ok(m) => Stamp::Present {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            node: {
                use std::os::unix::fs::MetadataExt;
                (m.ino(), m.dev(), m.ctime(), m.ctime_nsec())
            },
        },
        Err(e) => Stamp::Missing(e.kind()),
    }
}

/// The stamps of every watched file, and when they were taken.
#[derive(Debug, Default)]
pub(super) struct Stamps {
    files: Vec<(PathBuf, Stamp)>,
    taken: Option<SystemTime>,
}

impl Stamps {
    /// Whether a stat of every file finds what these stamps say, and the stamps can be
    /// trusted (see [`RACY`]). One `stat` per watched file.
    pub(super) fn unchanged(&self) -> bool {
        let Some(taken) = self.taken else {
            return false;
        };
        self.files.iter().all(|(path, old)| {
            let settled = match old {
                Stamp::Present { modified, .. } => {
                    modified.is_some_and(|m| m.checked_add(RACY).is_some_and(|m| m < taken))
                }
                Stamp::Missing(_) => true,
            };
            settled && stamp(path) == *old
        })
    }

    /// The files watched.
    pub(super) fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|(p, _)| p.clone()).collect()
    }
}

/// Every byte of a plug-in's files, read once: the manifest to compile (modules inline, so
/// that a file written during the compile cannot mix with what was hashed), or why it could
/// not be read.
pub(super) struct Snapshot {
    pub stamps: Stamps,
    /// sha256 of the paths and bytes read (and of the error, if reading failed).
    pub digest: [u8; 32],
    pub manifest: Result<Manifest, Error>,
}

/// Reads `root` (a wasm binary, WAT text, or a manifest in JSON or TOML, told apart by
/// content) and, for a manifest, the module files it names (relative to its folder). Each file
/// is stamped before it is read, so that a write after the stamp shows at the next check.
pub(super) fn snapshot(root: &Path) -> Snapshot {
    let mut stamps = Stamps {
        files: Vec::new(),
        taken: Some(SystemTime::now()),
    };
    let mut hasher = Sha256::new();
    let mut read = |path: &Path, error: fn(PathBuf, std::io::Error) -> ManifestError| {
        stamps.files.push((path.to_path_buf(), stamp(path)));
        let bytes = std::fs::read(path).map_err(|e| error(path.to_path_buf(), e))?;
        // Empty text is a valid WAT module with no exports; from a watched file it is far
        // more likely a write in progress.
        if bytes.is_empty() {
            let why = "the file is empty (is it still being written?)";
            let e = std::io::Error::new(std::io::ErrorKind::InvalidData, why);
            return Err(error(path.to_path_buf(), e));
        }
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
        Ok::<_, ManifestError>(bytes)
    };
    let manifest = (|| {
        let read_source = |path, source| ManifestError::ReadSource { path, source };
        let bytes = read(root, read_source)?;
        if !Manifest::looks_like_manifest(&bytes) {
            return Ok(Manifest::new([Wasm::data(bytes)]));
        }
        let mut manifest = Manifest::parse(&bytes)?;
        manifest.rebase_paths(root.parent().unwrap_or(Path::new("")));
        for wasm in &mut manifest.wasm {
            if let Wasm::File { path, meta } = wasm {
                let data = read(path, |path, source| ManifestError::Read { path, source })?;
                *wasm = Wasm::Data {
                    data,
                    meta: meta.clone(),
                };
            }
        }
        Ok::<_, ManifestError>(manifest)
    })()
    .map_err(Error::from);
    if let Err(e) = &manifest {
        hasher.update(b"\0error\0");
        hasher.update(e.to_string().as_bytes());
    }
    Snapshot {
        stamps,
        digest: hasher.finalize().into(),
        manifest,
    }
}

//! The `Manifest` builder methods of `extism-manifest` that Plinth's manifest lacks.

use std::path::PathBuf;

use crate::Manifest;

use plinth::manifest::MemoryOptions;

/// `extism-manifest`'s `Manifest` methods that `plinth::Manifest` does not have. In scope
/// with `use extism::*;` (or `use extism::ManifestExt;`).
pub trait ManifestExt: Sized {
    /// No host may be reached over HTTP (`allowed_hosts` set to an empty list).
    fn disallow_all_hosts(self) -> Self;
    /// Sets all memory limits at once (`plinth::manifest::MemoryOptions`).
    fn with_memory_options(self, memory: MemoryOptions) -> Self;
    /// Sets `allowed_paths` to these host → guest mappings, replacing any set before.
    fn with_allowed_paths(self, paths: impl Iterator<Item = (String, PathBuf)>) -> Self;
}

impl ManifestExt for Manifest {
    fn disallow_all_hosts(mut self) -> Self {
        self.allowed_hosts = Some(Vec::new());
        self
    }

    fn with_memory_options(mut self, memory: MemoryOptions) -> Self {
        self.memory = memory;
        self
    }

    fn with_allowed_paths(mut self, paths: impl Iterator<Item = (String, PathBuf)>) -> Self {
        self.allowed_paths = Some(paths.collect());
        self
    }
}

//! Turns the source argument (and `--link`s) into a manifest.

use std::path::Path;

use anyhow::Result;
use plinth::{Manifest, Source, Wasm};

use crate::args::SourceArgs;

const MAIN: &str = "main";

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// A module given on the command line: a URL or a wasm/WAT file.
fn module(s: &str) -> Wasm {
    if is_url(s) {
        Wasm::url(s)
    } else {
        Wasm::file(s)
    }
}

pub fn manifest(args: &SourceArgs) -> Result<Manifest> {
    let mut manifest = if is_url(&args.source) {
        Manifest::new([Wasm::url(&args.source)])
    } else {
        from_path(Path::new(&args.source), args.manifest)?
    };
    if !args.link.is_empty() {
        pin_main(&mut manifest)?;
        for link in &args.link {
            manifest = manifest.with_wasm(module(&link.path).with_name(&link.name));
        }
    }
    Ok(manifest)
}

/// A file through the runtime's one rule for sources, which every SDK shares: wasm, WAT or a
/// manifest told apart by content, a manifest's relative paths taken from its own folder.
fn from_path(path: &Path, force_manifest: bool) -> Result<Manifest> {
    let source = if force_manifest {
        Source::manifest_file(path)?
    } else {
        Source::file(path)
    };
    Ok(source.into_manifest()?)
}

/// Names the main module explicitly, so that appending linked modules cannot make another
/// module "main" (when nothing is named main, the last module is).
fn pin_main(manifest: &mut Manifest) -> Result<()> {
    let names = manifest.module_names()?;
    if let Some(i) = names.iter().position(|n| n == MAIN) {
        manifest.wasm[i].meta_mut().name = Some(MAIN.to_string());
    }
    Ok(())
}

//! `plinth compile`: compile a plug-in ahead of time into a signed artifact.

use std::io::Write;

use anyhow::{Context, Result};
use plinth::{ArtifactKey, Plugin};

use crate::args::CompileArgs;
use crate::source;

/// The first bytes of every artifact.
const MAGIC: &[u8] = b"plinth artifact\0";

pub fn run(args: &CompileArgs) -> Result<()> {
    let key = if args.key.exists() {
        ArtifactKey::from_file(&args.key)?
    } else {
        let key = ArtifactKey::generate()?;
        key.write_new_file(&args.key)?;
        eprintln!(
            "Made a new signing key in {} (keep it private: whoever holds it can make \
             artifacts that hosts with it run as native code)",
            args.key.display()
        );
        key
    };
    let mut builder = Plugin::builder(source::manifest(&args.source)?);
    if args.metered {
        builder = builder.with_fuel_limit(u64::MAX);
    }
    let artifact = builder.compile_artifact(&key)?;
    let mut file = std::fs::File::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    file.write_all(&artifact)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    Ok(())
}

/// Whether the file at `path` starts like an artifact (so that `plinth call` can say that it
/// needs a key instead of calling it malformed wasm).
pub fn is_artifact(path: &str) -> bool {
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| head == MAGIC)
}

//! `plinth info`: what a plug-in exports and how each of its imports would be satisfied.

use std::io::Write;

use anyhow::{bail, Result};
use plinth::{ImportStatus, ModuleReport};

use crate::args::InfoArgs;
use crate::{escape, source, StdoutError};

pub fn run(args: &InfoArgs) -> Result<()> {
    let manifest = source::manifest(&args.source)?;
    let reports = plinth::inspect(manifest, args.wasi, &[])?;

    let mut out = std::io::stdout().lock();
    write_report(&mut out, &reports).map_err(StdoutError)?;
    out.flush().map_err(StdoutError)?;

    let missing: Vec<(String, &str)> = reports
        .iter()
        .flat_map(|m| &m.imports)
        .filter_map(|i| match &i.status {
            ImportStatus::Missing(why) => Some((format!("{}::{}", i.module, i.name), why.as_str())),
            _ => None,
        })
        .collect();
    match missing.as_slice() {
        [] => Ok(()),
        [(_, why)] => bail!("the plug-in cannot be loaded: {why}"),
        many => {
            let names: Vec<&str> = many.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "the plug-in cannot be loaded: {} imports are missing: {}",
                many.len(),
                names.join(", ")
            )
        }
    }
}

/// A name from the module (wasm names are any UTF-8): escaped, and cut when very long.
fn show(name: &str) -> String {
    escape::one_line(name.as_bytes(), escape::MAX_NAME)
}

fn write_report(out: &mut impl Write, reports: &[ModuleReport]) -> std::io::Result<()> {
    for (i, m) in reports.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "module {}", show(&m.name))?;
        if m.functions.is_empty() {
            writeln!(out, "  functions: (none)")?;
        } else {
            writeln!(out, "  functions:")?;
            for f in &m.functions {
                writeln!(out, "    {}", show(f))?;
            }
        }
        if m.imports.is_empty() {
            writeln!(out, "  imports: (none)")?;
        } else {
            writeln!(out, "  imports:")?;
            for imp in &m.imports {
                let status = match &imp.status {
                    ImportStatus::Abi => "provided (Extism ABI)".to_string(),
                    ImportStatus::Wasi => "WASI".to_string(),
                    ImportStatus::Module => format!("module {}", show(&imp.module)),
                    ImportStatus::HostFunction => "host function".to_string(),
                    ImportStatus::Missing(why) => format!("MISSING: {}", show(why)),
                };
                let (module, name) = (show(&imp.module), show(&imp.name));
                writeln!(out, "    {module}::{name} {}: {status}", imp.ty)?;
            }
        }
    }
    Ok(())
}

//! `plinth call`: load a plug-in, apply the flags, call a function, print its output.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use plinth::{ArtifactKey, Manifest, Plugin, Wasm};

use crate::args::CallArgs;
use crate::{escape, source, StdoutError};

pub fn run(args: &CallArgs) -> Result<()> {
    if args.stdin && args.repeat > 1 {
        anyhow::bail!(
            "--stdin streams stdin through one call, so it cannot be repeated with --loop; \
             to call {} times with the same input, pass it with --input",
            args.repeat
        );
    }
    if !args.wasi && !args.allow_path.is_empty() {
        eprintln!("Warning: --allow-path has no effect without --wasi");
    }
    // The call's time limit, which --stdin also applies to waiting for stdin.
    let timeout_ms;
    let mut builder = match &args.artifact_key {
        Some(key) => {
            let key = ArtifactKey::from_file(key)?;
            let artifact = std::fs::read(&args.source.source)
                .with_context(|| format!("cannot read the artifact {}", args.source.source))?;
            // The artifact's own wasm, with the flags applied as to any other source.
            let wasm = key.wasm_of(&artifact)?;
            let manifest = apply_flags(Manifest::new([Wasm::data(wasm)]), args);
            timeout_ms = manifest.timeout_ms;
            Plugin::builder(manifest).with_artifact(artifact, &key)
        }
        None => {
            if crate::compile::is_artifact(&args.source.source) {
                anyhow::bail!(
                    "{} is a precompiled artifact (native code): pass --artifact-key FILE with \
                     the key it was signed with",
                    args.source.source
                );
            }
            let manifest = apply_flags(source::manifest(&args.source)?, args);
            timeout_ms = manifest.timeout_ms;
            Plugin::builder(manifest)
        }
    };
    builder = builder
        .with_wasi(args.wasi)
        .with_http_response_headers(args.enable_http_response_headers);
    if let Some(fuel) = args.fuel {
        builder = builder.with_fuel_limit(fuel);
    }
    if let Some(bytes) = args.max_output {
        builder = builder.with_output_limit(bytes);
    }
    let defaults = plinth::CompileLimits::default();
    builder = builder.with_compile_limits(plinth::CompileLimits {
        deadline: args.compile_timeout.map(Duration::from_millis),
        max_module_bytes: args.module_max.unwrap_or(defaults.max_module_bytes),
        ..defaults
    });
    let mut plugin = builder.build()?;
    if args.artifact_key.is_some() && !plugin.compiled().is_precompiled() {
        eprintln!(
            "Note: {} was made for another engine (another Plinth or wasmtime version, or with \
             fuel metering on one side only), so its wasm was compiled instead; run `plinth \
             compile` again{} to skip compiling",
            args.source.source,
            if args.fuel.is_some() {
                " with --metered"
            } else {
                ""
            }
        );
    }

    if args.stdin {
        let timeout = timeout_ms.map(Duration::from_millis);
        return crate::stream::run(&mut plugin, &args.function, args.raw, timeout);
    }
    let input = args.input.clone().unwrap_or_default().into_bytes();
    // The output is the plug-in's bytes. Piped or redirected, they pass unchanged; on a
    // terminal, escape sequences in them would be obeyed (clear the screen, rewrite lines,
    // set the window title), so control characters other than newline and tab are escaped.
    let escaped = !args.raw && std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout().lock();
    for _ in 0..args.repeat {
        let result = plugin.call::<&[u8], &[u8]>(&args.function, &input);
        // Write what we have before reporting, so earlier outputs survive an error.
        let output = match result {
            Ok(output) => output,
            Err(e) => {
                stdout.flush().ok();
                return Err(e.into());
            }
        };
        if escaped {
            escape::write_escaped(&mut stdout, output)
        } else {
            stdout.write_all(output)
        }
        .map_err(StdoutError)?;
        stdout.write_all(b"\n").map_err(StdoutError)?;
        if args.repeat > 1 {
            stdout.write_all(b"\n").map_err(StdoutError)?;
        }
        // The plug-in's own WASI output shares the terminal; keep the order.
        stdout.flush().map_err(StdoutError)?;
    }
    Ok(())
}

/// Flags override or extend what the manifest says; `--config` wins over `--set-config`.
fn apply_flags(mut m: Manifest, args: &CallArgs) -> Manifest {
    for p in &args.allow_path {
        m = m.with_allowed_path(&p.host, &p.guest);
    }
    if !args.allow_host.is_empty() {
        m = m.with_allowed_hosts(&args.allow_host);
    }
    if let Some(ms) = args.timeout {
        m = m.with_timeout(Duration::from_millis(ms));
    }
    if let Some(pages) = args.memory_max {
        m = m.with_memory_max(pages);
    }
    if let Some(bytes) = args.http_response_max {
        m = m.with_http_response_max(bytes);
    }
    if let Some(bytes) = args.var_max {
        m = m.with_var_max(bytes);
    }
    if let Some(set) = &args.set_config {
        m = m.with_config(set.0.clone());
    }
    m.with_config(args.config.iter().cloned())
}

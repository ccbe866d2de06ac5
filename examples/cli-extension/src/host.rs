//! Loading and calling plug-ins. A plug-in gets exactly what its manifest names: WASI is on,
//! with only the manifest's `allowed_paths` preopened (none for a bare `.wasm`), the hosts of
//! `allowed_hosts` for HTTP (none by default), its `config`, and no environment variables,
//! program arguments or stdin of its own. Calls are bounded by a timeout and a memory cap, the
//! manifest's or jtool's defaults, so a broken plug-in cannot hang or exhaust the terminal.

use std::time::Duration;

use plinth::{ErrorKind, Manifest, Plugin, WasiStdio, Wasm};
use serde::Deserialize;

use crate::discover::PluginFile;
use crate::escape;

/// The time limit of a `run` call when the manifest sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The time limit of a `describe` call (or the manifest's, if shorter): `list` calls every
/// plug-in, and one stuck plug-in must not stall it.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The memory cap (in 64 KiB pages) when the manifest sets none: 64 MiB.
pub const DEFAULT_MAX_PAGES: u32 = 1024;
/// The most a plug-in may write to its WASI stdout or stderr in one call (1 MiB each).
pub const CAPTURE_LIMIT: usize = 1 << 20;

/// Why a plug-in could not do its work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It cannot be loaded: the manifest, the module, its imports or grants are wrong.
    Load(String),
    /// It was loaded, and the call failed.
    Call(String),
}

impl Failure {
    /// The message, escaped for a terminal.
    pub fn message(&self) -> &str {
        match self {
            Failure::Load(m) | Failure::Call(m) => m,
        }
    }
}

fn classify(e: plinth::Error) -> Failure {
    let text = e.to_string();
    // A trap's message goes on with a wasm backtrace, of no use to the user of a command.
    let text = match e.kind() {
        ErrorKind::Trap => text.lines().next().unwrap_or_default().to_string(),
        _ => text,
    };
    let message = escape(&text);
    match e.kind() {
        ErrorKind::Manifest
        | ErrorKind::Compile
        | ErrorKind::CompileLimit
        | ErrorKind::Link
        | ErrorKind::Wasi
        | ErrorKind::Artifact
        | ErrorKind::FunctionNotFound
        | ErrorKind::NotCallable => Failure::Load(message),
        _ => Failure::Call(message),
    }
}

/// The plug-in's manifest, with jtool's default limits where it sets none. Relative paths in
/// a manifest file are relative to the file's folder.
pub fn manifest(file: &PluginFile) -> Result<Manifest, Failure> {
    let mut manifest = match file {
        PluginFile::Wasm(path) => Manifest::new([Wasm::file(path)]),
        PluginFile::Manifest(path) => Manifest::from_file(path).map_err(|e| {
            Failure::Load(escape(&format!(
                "the manifest {} is invalid: {e}",
                path.display()
            )))
        })?,
    };
    manifest
        .timeout_ms
        .get_or_insert(DEFAULT_TIMEOUT.as_millis() as u64);
    manifest.memory.max_pages.get_or_insert(DEFAULT_MAX_PAGES);
    Ok(manifest)
}

/// What the manifest grants, one line each, for `jtool help NAME`.
pub fn grants(manifest: &Manifest) -> Vec<String> {
    let mut lines = Vec::new();
    for p in manifest.preopens() {
        let how = if p.read_only {
            "read"
        } else {
            "read and write"
        };
        lines.push(format!(
            "may {how} {} (seen as {})",
            p.host.display(),
            p.guest
        ));
    }
    if lines.is_empty() {
        lines.push("no files".into());
    }
    match manifest.allowed_hosts.as_deref() {
        Some(hosts) if !hosts.is_empty() => {
            lines.push(format!("HTTP to {}", hosts.join(", ")));
        }
        _ => lines.push("no network".into()),
    }
    lines.push(format!(
        "at most {} ms and {} MiB a call",
        manifest.timeout_ms.unwrap_or_default(),
        u64::from(manifest.memory.max_pages.unwrap_or_default()) * 64 / 1024
    ));
    lines.into_iter().map(|l| escape(&l)).collect()
}

/// A loaded plug-in and where its WASI stdout and stderr go.
struct Loaded {
    plugin: Plugin,
    stdio: WasiStdio,
}

fn load(manifest: Manifest) -> Result<Loaded, Failure> {
    let stdio = WasiStdio::capture(CAPTURE_LIMIT);
    let plugin = Plugin::builder(manifest)
        .with_wasi(true)
        .with_wasi_stdio(stdio.clone())
        // One short-lived process makes one instance: no pool of slots to reserve.
        .with_instance_pooling(false)
        .build()
        .map_err(classify)?;
    Ok(Loaded { plugin, stdio })
}

impl Loaded {
    fn captured(&self) -> (Vec<u8>, Vec<u8>) {
        match &self.stdio {
            WasiStdio::Capture { stdout, stderr } => (stdout.contents(), stderr.contents()),
            _ => (Vec::new(), Vec::new()),
        }
    }
}

/// A plug-in's description, as it gave it (not yet escaped).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Description {
    /// One line for `jtool list`.
    pub summary: String,
    /// The text of `jtool help NAME`.
    #[serde(default)]
    pub usage: String,
}

/// Reads `describe`'s output: a JSON object `{"summary": "...", "usage": "..."}`, or plain
/// text whose first line is the summary and the rest the usage.
pub fn parse_description(bytes: &[u8]) -> Description {
    if let Ok(d) = serde_json::from_slice::<Description>(bytes) {
        return d;
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let (summary, usage) = text.split_once('\n').unwrap_or((text, ""));
    Description {
        summary: summary.trim().to_string(),
        usage: usage.trim().to_string(),
    }
}

/// Calls the plug-in's `describe` export (no input), with at most [`DESCRIBE_TIMEOUT`].
pub fn describe(file: &PluginFile) -> Result<Description, Failure> {
    let mut manifest = manifest(file)?;
    let limit = DESCRIBE_TIMEOUT.as_millis() as u64;
    manifest.timeout_ms = Some(manifest.timeout_ms.map_or(limit, |t| t.min(limit)));
    let mut loaded = load(manifest)?;
    if !loaded.plugin.function_exists("describe") {
        // Loadable, and perhaps runnable: only the description is missing.
        return Err(Failure::Call(
            "it exports no `describe` function, so there is no description".into(),
        ));
    }
    let out: Vec<u8> = loaded.plugin.call("describe", "").map_err(classify)?;
    Ok(parse_description(&out))
}

/// What a `run` call gave back.
#[derive(Debug)]
pub struct RunOutput {
    /// The plug-in's output, or why there is none.
    pub result: Result<Vec<u8>, Failure>,
    /// What the plug-in wrote to its WASI stdout and stderr (at most [`CAPTURE_LIMIT`] each).
    pub wasi_stdout: Vec<u8>,
    /// See `wasi_stdout`.
    pub wasi_stderr: Vec<u8>,
}

/// Calls the plug-in's `run` export with `input`, and `args` as config key `args` (a JSON
/// array of strings; it replaces any `args` the manifest sets).
pub fn run(file: &PluginFile, args: &[String], input: &[u8]) -> RunOutput {
    let failed = |f| RunOutput {
        result: Err(f),
        wasi_stdout: Vec::new(),
        wasi_stderr: Vec::new(),
    };
    let mut manifest = match manifest(file) {
        Ok(m) => m,
        Err(f) => return failed(f),
    };
    let args = serde_json::to_string(args).expect("strings serialize");
    manifest.config.insert("args".into(), args);
    let mut loaded = match load(manifest) {
        Ok(l) => l,
        Err(f) => return failed(f),
    };
    if !loaded.plugin.function_exists("run") {
        return failed(Failure::Load(
            "it exports no `run` function; a jtool plug-in exports `run` (and `describe`)".into(),
        ));
    }
    let result = loaded
        .plugin
        .call::<&[u8], Vec<u8>>("run", input)
        .map_err(classify);
    let (wasi_stdout, wasi_stderr) = loaded.captured();
    RunOutput {
        result,
        wasi_stdout,
        wasi_stderr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_in_json_or_plain_text() {
        assert_eq!(
            parse_description(br#"{"summary": "s", "usage": "u"}"#),
            Description {
                summary: "s".into(),
                usage: "u".into()
            }
        );
        assert_eq!(
            parse_description(b"Sum numbers\nsum [N]\n\nmore"),
            Description {
                summary: "Sum numbers".into(),
                usage: "sum [N]\n\nmore".into()
            }
        );
        assert_eq!(parse_description(b"only").usage, "");
    }
}

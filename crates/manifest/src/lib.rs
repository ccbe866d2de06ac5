//! The Extism-compatible plug-in manifest: which wasm modules make up a plug-in and what
//! the plug-in may do (memory, config, hosts, paths, timeout).
//!
//! This crate only parses, validates and loads bytes; it knows nothing about wasmtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

mod error;
mod resolve;
mod wasm;

pub use error::ManifestError;
pub use resolve::{sha256_hex, FetchOptions, ResolvedModule};
pub use wasm::{HttpRequest, Wasm, WasmMetadata};

/// Default limit for the total size of a plug-in's vars.
pub const DEFAULT_MAX_VAR_BYTES: u64 = 1024 * 1024;
/// Default limit for the body of an HTTP response read by a plug-in.
pub const DEFAULT_MAX_HTTP_RESPONSE_BYTES: u64 = 50 * 1024 * 1024;
/// Name of the module whose exports are the plug-in's functions.
pub const MAIN_MODULE: &str = "main";

/// Prefix of an `allowed_paths` key that mounts the directory read-only.
const READ_ONLY_PREFIX: &str = "ro:";

/// A plug-in description, as accepted by Extism (JSON or TOML).
///
/// Prefer `from_json`/`from_toml`/`parse`: they return typed errors and reject an empty
/// `wasm` list. Plain serde deserialization accepts an empty list; `resolve` rejects it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub wasm: Vec<Wasm>,
    #[serde(default, skip_serializing_if = "MemoryOptions::is_default")]
    pub memory: MemoryOptions,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Host globs the plug-in may send HTTP requests to; `None` means none allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
    /// Host directory (optionally prefixed with `ro:`) → guest path.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_paths"
    )]
    pub allowed_paths: Option<BTreeMap<String, PathBuf>>,
    /// Per-call wall-clock limit in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Resource limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryOptions {
    /// One budget, in 64 KiB pages, for all memory growth of the plug-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_http_response_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_var_bytes: Option<u64>,
}

impl MemoryOptions {
    fn is_default(&self) -> bool {
        *self == MemoryOptions::default()
    }
}

/// A WASI preopened directory derived from `allowed_paths`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    /// Host directory, without the `ro:` prefix.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    pub read_only: bool,
}

/// Paths are written lossily so that `to_json` cannot fail on non-UTF-8 paths.
fn serialize_paths<S: Serializer>(
    paths: &Option<BTreeMap<String, PathBuf>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    paths
        .as_ref()
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.as_str(), v.to_string_lossy()))
                .collect::<BTreeMap<_, _>>()
        })
        .serialize(serializer)
}

/// Mirror of `Manifest` used by the parse functions so that wasm-entry problems come
/// back as typed errors (`InvalidWasmEntry`, `Base64`) rather than serde strings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    wasm: Vec<wasm::RawWasm>,
    #[serde(default)]
    memory: MemoryOptions,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    allowed_hosts: Option<Vec<String>>,
    #[serde(default)]
    allowed_paths: Option<BTreeMap<String, PathBuf>>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

impl RawManifest {
    fn into_manifest(self) -> Result<Manifest, ManifestError> {
        if self.wasm.is_empty() {
            return Err(ManifestError::EmptyWasm);
        }
        let wasm = self
            .wasm
            .into_iter()
            .enumerate()
            .map(|(i, raw)| raw.into_wasm(Some(i)))
            .collect::<Result<_, _>>()?;
        Ok(Manifest {
            wasm,
            memory: self.memory,
            config: self.config,
            allowed_hosts: self.allowed_hosts,
            allowed_paths: self.allowed_paths,
            timeout_ms: self.timeout_ms,
        })
    }
}

/// Turns a byte offset into 1-based line and column (in characters).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn toml_error(text: &str, err: &toml::de::Error) -> ManifestError {
    // toml's Display is a multi-line snippet; a single line reads better in logs and CLIs.
    let message = err.message().trim_end();
    match err.span() {
        Some(span) => {
            let (line, column) = line_col(text, span.start);
            ManifestError::Toml(format!("line {line}, column {column}: {message}"))
        }
        None => ManifestError::Toml(message.to_owned()),
    }
}

/// Skips ASCII whitespace and a UTF-8 byte-order mark.
fn trim_start_bytes(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Joins a relative path onto `base`; absolute paths are kept.
fn rebase(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

impl Manifest {
    /// A manifest with the given modules and default settings.
    pub fn new(wasm: impl IntoIterator<Item = impl Into<Wasm>>) -> Self {
        Manifest {
            wasm: wasm.into_iter().map(Into::into).collect(),
            ..Manifest::default()
        }
    }

    pub fn with_wasm(mut self, wasm: impl Into<Wasm>) -> Self {
        self.wasm.push(wasm.into());
        self
    }

    pub fn with_config_key(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    pub fn with_config(
        mut self,
        entries: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        self.config
            .extend(entries.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    pub fn with_allowed_host(mut self, glob: impl Into<String>) -> Self {
        self.allowed_hosts
            .get_or_insert_with(Vec::new)
            .push(glob.into());
        self
    }

    pub fn with_allowed_hosts(
        mut self,
        globs: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.allowed_hosts
            .get_or_insert_with(Vec::new)
            .extend(globs.into_iter().map(Into::into));
        self
    }

    /// Mounts host directory `host` at `guest`; a `host` starting with `ro:` is read-only.
    pub fn with_allowed_path(
        mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<PathBuf>,
    ) -> Self {
        let host = host.into().to_string_lossy().into_owned();
        self.allowed_paths
            .get_or_insert_with(BTreeMap::new)
            .insert(host, guest.into());
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    pub fn with_memory_max(mut self, pages: u32) -> Self {
        self.memory.max_pages = Some(pages);
        self
    }

    pub fn with_http_response_max(mut self, bytes: u64) -> Self {
        self.memory.max_http_response_bytes = Some(bytes);
        self
    }

    pub fn with_var_max(mut self, bytes: u64) -> Self {
        self.memory.max_var_bytes = Some(bytes);
        self
    }

    /// Parses a JSON manifest. An empty `wasm` list is rejected here already.
    pub fn from_json(text: &str) -> Result<Self, ManifestError> {
        serde_json::from_str::<RawManifest>(text)
            .map_err(|e| ManifestError::Json(e.to_string()))?
            .into_manifest()
    }

    /// Parses a TOML manifest. An empty `wasm` list is rejected here already.
    pub fn from_toml(text: &str) -> Result<Self, ManifestError> {
        toml::from_str::<RawManifest>(text)
            .map_err(|e| toml_error(text, &e))?
            .into_manifest()
    }

    /// Parses JSON if the first non-whitespace byte is `{`, TOML otherwise.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim_start().starts_with('{') {
            Self::from_json(text)
        } else {
            Self::from_toml(text)
        }
    }

    /// Reads and parses a manifest file. Relative wasm `path`s and relative `allowed_paths`
    /// host directories are taken relative to the file's directory (a `ro:` prefix is kept).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ManifestError::ReadManifest {
            path: path.to_path_buf(),
            source,
        })?;
        let mut manifest = Self::parse(&bytes)?;
        let base = path.parent().unwrap_or(Path::new(""));
        manifest.rebase_paths(base);
        Ok(manifest)
    }

    /// Makes relative file paths relative to `base` instead of the working directory.
    pub fn rebase_paths(&mut self, base: &Path) {
        for wasm in &mut self.wasm {
            if let Wasm::File { path, .. } = wasm {
                *path = rebase(base, path);
            }
        }
        if let Some(paths) = self.allowed_paths.take() {
            let rebased = paths
                .into_iter()
                .map(|(host, guest)| {
                    let (prefix, dir) = match host.strip_prefix(READ_ONLY_PREFIX) {
                        Some(dir) => (READ_ONLY_PREFIX, dir),
                        None => ("", host.as_str()),
                    };
                    let dir = rebase(base, Path::new(dir));
                    (format!("{prefix}{}", dir.to_string_lossy()), guest)
                })
                .collect();
            self.allowed_paths = Some(rebased);
        }
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Every field serializes infallibly (string keys, lossy paths).
        serde_json::to_string_pretty(self).expect("manifest serializes to JSON")
    }

    /// TOML text; fails only for numbers TOML cannot hold (above `i64::MAX`).
    pub fn to_toml(&self) -> Result<String, ManifestError> {
        toml::to_string(self).map_err(|e| ManifestError::Serialize(e.to_string()))
    }

    /// Guesses whether `bytes` are a manifest rather than a wasm binary or WAT text:
    /// true if the first non-whitespace byte is `{`, or if the bytes are UTF-8 TOML whose
    /// top-level table has a `wasm` key.
    pub fn looks_like_manifest(bytes: &[u8]) -> bool {
        let trimmed = trim_start_bytes(bytes);
        match trimmed.first() {
            Some(b'{') => return true,
            // WAT modules start with `(`, binaries with `\0asm`; neither is TOML.
            None | Some(b'(') | Some(b'\0') => return false,
            _ => {}
        }
        match std::str::from_utf8(trimmed) {
            Ok(text) => text
                .parse::<toml::Table>()
                .is_ok_and(|table| table.contains_key("wasm")),
            Err(_) => false,
        }
    }

    /// `memory.max_var_bytes`, or `DEFAULT_MAX_VAR_BYTES`.
    pub fn max_var_bytes(&self) -> u64 {
        self.memory.max_var_bytes.unwrap_or(DEFAULT_MAX_VAR_BYTES)
    }

    /// `memory.max_http_response_bytes`, or `DEFAULT_MAX_HTTP_RESPONSE_BYTES`.
    pub fn max_http_response_bytes(&self) -> u64 {
        self.memory
            .max_http_response_bytes
            .unwrap_or(DEFAULT_MAX_HTTP_RESPONSE_BYTES)
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }

    /// WASI preopens from `allowed_paths`; a `ro:` key prefix becomes `read_only`.
    pub fn preopens(&self) -> Vec<Preopen> {
        let Some(paths) = &self.allowed_paths else {
            return Vec::new();
        };
        paths
            .iter()
            .map(|(host, guest)| {
                let (host, read_only) = match host.strip_prefix(READ_ONLY_PREFIX) {
                    Some(dir) => (dir, true),
                    None => (host.as_str(), false),
                };
                Preopen {
                    host: PathBuf::from(host),
                    guest: guest.to_string_lossy().into_owned(),
                    read_only,
                }
            })
            .collect()
    }
}

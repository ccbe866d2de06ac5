use std::path::PathBuf;

/// Everything that can go wrong while parsing a manifest or loading its modules.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The JSON text is malformed or does not match the manifest schema.
    #[error("invalid JSON manifest: {0}")]
    Json(String),

    /// The TOML text is malformed or does not match the manifest schema.
    #[error("invalid TOML manifest: {0}")]
    Toml(String),

    /// The `wasm` list is empty.
    #[error("the manifest lists no wasm modules; add at least one entry to `wasm`")]
    EmptyWasm,

    /// A `wasm` entry has an invalid shape (e.g. both `path` and `data`).
    #[error("invalid wasm entry: {0}")]
    InvalidWasmEntry(String),

    /// Two modules end up with the same name.
    #[error(
        "more than one wasm module is named {0:?}; give each module a unique `name` \
         (an unnamed module is called \"main\")"
    )]
    DuplicateName(String),

    /// The module bytes do not hash to the value given in the manifest.
    #[error(
        "hash mismatch for wasm module {name:?}: the manifest expects sha256 {expected} \
         but the module's bytes hash to {actual}; fix the `hash` field or use the right module"
    )]
    HashMismatch {
        name: String,
        expected: String,
        actual: String,
    },

    /// The `hash` field is not 64 hex digits.
    #[error(
        "wasm module {name:?} has a malformed hash {hash:?}; \
         `hash` must be the sha256 of the module as 64 hex digits"
    )]
    InvalidHash { name: String, hash: String },

    /// A `path` module could not be read.
    #[error("cannot read wasm file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A plug-in file (wasm, WAT or a manifest) named as the thing to load could not be read.
    #[error("cannot read plug-in file {}: {source}", path.display())]
    ReadSource {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The manifest file itself could not be read.
    #[error("cannot read manifest file {}: {source}", path.display())]
    ReadManifest {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A `data` entry is not valid base64.
    #[error(
        "wasm module {name:?} has invalid `data`: {message}; \
         `data` must be standard padded base64 or an array of bytes"
    )]
    Base64 { name: String, message: String },

    /// A `url` module could not be downloaded.
    #[error("cannot fetch wasm from {url}: {message}")]
    Fetch { url: String, message: String },

    /// The manifest bytes are not UTF-8 text.
    #[error("the manifest is not valid UTF-8 text; manifests must be JSON or TOML")]
    NotUtf8,

    /// The manifest cannot be written in the requested format.
    #[error("cannot serialize manifest: {0}")]
    Serialize(String),
}

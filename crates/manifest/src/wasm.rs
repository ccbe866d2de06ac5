//! The `Wasm` entry type and its hand-written serde forms.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::ManifestError;

/// Optional `name` and `hash` shared by every kind of wasm entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lowercase hex sha256 of the module bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// How to download a `url` module.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// HTTP method; `GET` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// One module of a plug-in.
///
/// JSON form: an object with exactly one of `path`, `data` (base64 string or byte array)
/// or `url` (optionally with `headers` and `method`), plus optional `name` and `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wasm {
    File {
        path: PathBuf,
        meta: WasmMetadata,
    },
    Data {
        data: Vec<u8>,
        meta: WasmMetadata,
    },
    Url {
        req: HttpRequest,
        meta: WasmMetadata,
    },
}

impl Wasm {
    /// A module read from a file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Wasm::File {
            path: path.into(),
            meta: WasmMetadata::default(),
        }
    }

    /// A module given inline.
    pub fn data(bytes: impl Into<Vec<u8>>) -> Self {
        Wasm::Data {
            data: bytes.into(),
            meta: WasmMetadata::default(),
        }
    }

    /// A module downloaded with a `GET` request when the manifest is resolved, within the
    /// time and size limits of [`crate::FetchOptions`].
    pub fn url(url: impl Into<String>) -> Self {
        Wasm::Url {
            req: HttpRequest {
                url: url.into(),
                ..HttpRequest::default()
            },
            meta: WasmMetadata::default(),
        }
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.meta_mut().name = Some(name.into());
        self
    }

    pub fn with_hash(mut self, hash: impl Into<String>) -> Self {
        self.meta_mut().hash = Some(hash.into());
        self
    }

    /// Adds a request header; ignored for non-`url` entries, which have no request.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        if let Wasm::Url { req, .. } = &mut self {
            req.headers.insert(key.into(), value.into());
        }
        self
    }

    /// Sets the request method; ignored for non-`url` entries, which have no request.
    pub fn with_method(mut self, method: impl Into<String>) -> Self {
        if let Wasm::Url { req, .. } = &mut self {
            req.method = Some(method.into());
        }
        self
    }

    pub fn meta(&self) -> &WasmMetadata {
        match self {
            Wasm::File { meta, .. } | Wasm::Data { meta, .. } | Wasm::Url { meta, .. } => meta,
        }
    }

    pub fn meta_mut(&mut self) -> &mut WasmMetadata {
        match self {
            Wasm::File { meta, .. } | Wasm::Data { meta, .. } | Wasm::Url { meta, .. } => meta,
        }
    }

    /// The name given in the manifest (not the resolved one; see `Manifest::resolve`).
    pub fn name(&self) -> Option<&str> {
        self.meta().name.as_deref()
    }
}

impl From<Vec<u8>> for Wasm {
    fn from(bytes: Vec<u8>) -> Self {
        Wasm::data(bytes)
    }
}

impl From<&[u8]> for Wasm {
    fn from(bytes: &[u8]) -> Self {
        Wasm::data(bytes)
    }
}

impl From<PathBuf> for Wasm {
    fn from(path: PathBuf) -> Self {
        Wasm::file(path)
    }
}

impl From<&Path> for Wasm {
    fn from(path: &Path) -> Self {
        Wasm::file(path)
    }
}

/// Serialization view: one flat object, absent fields omitted.
#[derive(Serialize)]
struct WasmOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<&'a str>,
}

impl Serialize for Wasm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let meta = self.meta();
        let mut out = WasmOut {
            path: None,
            data: None,
            url: None,
            headers: None,
            method: None,
            name: meta.name.as_deref(),
            hash: meta.hash.as_deref(),
        };
        match self {
            // Lossy so that serializing never fails; non-UTF-8 paths are vanishingly rare.
            Wasm::File { path, .. } => out.path = Some(path.to_string_lossy().into_owned()),
            Wasm::Data { data, .. } => {
                out.data = Some(base64::engine::general_purpose::STANDARD.encode(data))
            }
            Wasm::Url { req, .. } => {
                out.url = Some(&req.url);
                out.headers = (!req.headers.is_empty()).then_some(&req.headers);
                out.method = req.method.as_deref();
            }
        }
        out.serialize(serializer)
    }
}

/// `data` as written: base64 text, or raw bytes (JSON array / binary formats).
pub(crate) enum RawData {
    Base64(String),
    Bytes(Vec<u8>),
}

impl<'de> Deserialize<'de> for RawData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DataVisitor;

        impl<'de> Visitor<'de> for DataVisitor {
            type Value = RawData;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a base64 string or an array of bytes")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawData, E> {
                Ok(RawData::Base64(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<RawData, E> {
                Ok(RawData::Base64(v))
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RawData, E> {
                Ok(RawData::Bytes(v.to_vec()))
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<RawData, E> {
                Ok(RawData::Bytes(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawData, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(RawData::Bytes(bytes))
            }
        }

        deserializer.deserialize_any(DataVisitor)
    }
}

/// Every field any entry kind may carry; validated afterwards so that shape errors
/// get a precise message instead of serde's generic "did not match any variant".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWasm {
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    data: Option<RawData>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    hash: Option<String>,
}

impl RawWasm {
    /// Validates the shape. `position` is the index in the manifest's `wasm` list, if known,
    /// and only serves to label errors of unnamed entries.
    pub(crate) fn into_wasm(self, position: Option<usize>) -> Result<Wasm, ManifestError> {
        let label = match (position, &self.name) {
            (Some(i), Some(name)) => format!("wasm[{i}] (name {name:?})"),
            (Some(i), None) => format!("wasm[{i}]"),
            (None, Some(name)) => format!("wasm entry {name:?}"),
            (None, None) => "unnamed wasm entry".to_owned(),
        };

        let mut present = Vec::new();
        if self.path.is_some() {
            present.push("path");
        }
        if self.data.is_some() {
            present.push("data");
        }
        if self.url.is_some() {
            present.push("url");
        }
        if present.len() != 1 {
            let found = if present.is_empty() {
                "none of them".to_owned()
            } else {
                present.join(" and ")
            };
            return Err(ManifestError::InvalidWasmEntry(format!(
                "{label}: a wasm entry needs exactly one of path, data or url (found {found})"
            )));
        }
        if self.url.is_none() && (self.headers.is_some() || self.method.is_some()) {
            return Err(ManifestError::InvalidWasmEntry(format!(
                "{label}: `headers` and `method` are only allowed together with `url`"
            )));
        }

        let meta = WasmMetadata {
            name: self.name,
            hash: self.hash,
        };
        if let Some(path) = self.path {
            return Ok(Wasm::File { path, meta });
        }
        if let Some(data) = self.data {
            let data = match data {
                RawData::Bytes(bytes) => bytes,
                RawData::Base64(text) => base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| ManifestError::Base64 {
                        name: meta.name.clone().unwrap_or_else(|| label.clone()),
                        message: e.to_string().trim_end_matches('.').to_owned(),
                    })?,
            };
            return Ok(Wasm::Data { data, meta });
        }
        let url = self.url.unwrap_or_default();
        Ok(Wasm::Url {
            req: HttpRequest {
                url,
                headers: self.headers.unwrap_or_default(),
                method: self.method,
            },
            meta,
        })
    }
}

impl<'de> Deserialize<'de> for Wasm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawWasm::deserialize(deserializer)?
            .into_wasm(None)
            .map_err(de::Error::custom)
    }
}

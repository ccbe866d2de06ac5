//! Loading module bytes, checking hashes and assigning module names.

use std::collections::HashSet;
#[cfg(feature = "fetch")]
use std::io::Read as _;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{HttpRequest, Manifest, ManifestError, Wasm, MAIN_MODULE};

/// Limits for downloading `url` modules. Without them a server that never answers would
/// hang the load (and `plinth call`) for ever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// To find and connect to the server. Default 10 s.
    pub connect_timeout: Duration,
    /// Longest silence from the server, for the answer and for each read of the body: a server
    /// that stops answering fails after this. Default 30 s.
    pub idle_timeout: Duration,
    /// For the whole download, redirects and body included. Default 300 s.
    pub timeout: Duration,
    /// Largest module accepted. Default 256 MiB, far above real modules.
    pub max_bytes: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(300),
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A module's final name and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedModule {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Lowercase hex sha256 of `bytes`, the form used by the manifest's `hash` field.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

impl Manifest {
    /// The name each `wasm` entry gets, in manifest order.
    ///
    /// Rules (Extism's, plus choices for the cases it leaves open):
    /// - a named entry keeps its `name`; an unnamed entry is called `"main"`;
    /// - so two unnamed entries, or an unnamed one next to one named `"main"`, are a
    ///   `DuplicateName("main")` error rather than an arbitrary pick;
    /// - any other repeated name is a `DuplicateName` error;
    /// - if no entry is (or defaults to) `"main"`, the last entry is renamed `"main"`
    ///   (this also covers a single named module); its own name is then not available
    ///   to the others;
    /// - an empty `name` string is an `InvalidWasmEntry` error; an empty list is `EmptyWasm`.
    pub fn module_names(&self) -> Result<Vec<String>, ManifestError> {
        if self.wasm.is_empty() {
            return Err(ManifestError::EmptyWasm);
        }
        let mut names = Vec::with_capacity(self.wasm.len());
        let mut seen = HashSet::new();
        for (i, wasm) in self.wasm.iter().enumerate() {
            let name = match wasm.name() {
                Some("") => {
                    return Err(ManifestError::InvalidWasmEntry(format!(
                        "wasm[{i}]: `name` must not be empty; remove it or pick a name"
                    )))
                }
                Some(name) => name,
                None => MAIN_MODULE,
            };
            if !seen.insert(name) {
                return Err(ManifestError::DuplicateName(name.to_owned()));
            }
            names.push(name.to_owned());
        }
        if !seen.contains(MAIN_MODULE) {
            if let Some(last) = names.last_mut() {
                *last = MAIN_MODULE.to_owned();
            }
        }
        Ok(names)
    }

    /// Loads every module, checks its hash and names it (see [`Manifest::module_names`]).
    /// `url` modules are downloaded within the default [`FetchOptions`].
    ///
    /// The result lists the other modules in manifest order and the `"main"` module last,
    /// so a linker can instantiate them front to back.
    pub fn resolve(&self) -> Result<Vec<ResolvedModule>, ManifestError> {
        self.resolve_with(&FetchOptions::default())
    }

    /// [`Manifest::resolve`], with `url` modules downloaded within `fetch`.
    pub fn resolve_with(&self, fetch: &FetchOptions) -> Result<Vec<ResolvedModule>, ManifestError> {
        let names = self.module_names()?;
        let mut deps = Vec::with_capacity(names.len());
        let mut main = None;
        for (wasm, name) in self.wasm.iter().zip(names) {
            let bytes = load(wasm, fetch)?;
            if let Some(expected) = &wasm.meta().hash {
                check_hash(&name, expected, &bytes)?;
            }
            let module = ResolvedModule { name, bytes };
            if module.name == MAIN_MODULE {
                main = Some(module);
            } else {
                deps.push(module);
            }
        }
        deps.extend(main);
        Ok(deps)
    }
}

fn check_hash(name: &str, expected: &str, bytes: &[u8]) -> Result<(), ManifestError> {
    let well_formed = expected.len() == 64 && expected.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(ManifestError::InvalidHash {
            name: name.to_owned(),
            hash: expected.to_owned(),
        });
    }
    let actual = sha256_hex(bytes);
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(ManifestError::HashMismatch {
            name: name.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(())
}

fn load(wasm: &Wasm, fetch_options: &FetchOptions) -> Result<Vec<u8>, ManifestError> {
    match wasm {
        Wasm::File { path, .. } => std::fs::read(path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        }),
        Wasm::Data { data, .. } => Ok(data.clone()),
        Wasm::Url { req, .. } => fetch(req, fetch_options),
    }
}

/// Without the `fetch` feature (the web kernel) there is no network to download from.
#[cfg(not(feature = "fetch"))]
fn fetch(req: &HttpRequest, _options: &FetchOptions) -> Result<Vec<u8>, ManifestError> {
    Err(ManifestError::Fetch {
        url: req.url.clone(),
        message: "this build of plinth-manifest cannot download modules (built without the `fetch` feature); download the module and use `path` or `data`".to_owned(),
    })
}

#[cfg(feature = "fetch")]
fn fetch(req: &HttpRequest, options: &FetchOptions) -> Result<Vec<u8>, ManifestError> {
    let fail = |message: String| ManifestError::Fetch {
        url: req.url.clone(),
        message,
    };
    let secs = |d: Duration| d.as_secs_f64();
    let max = options.max_bytes;
    let too_large = || {
        fail(format!(
            "the module is larger than {max} bytes, the limit for a downloaded module; download it and use `path`, or raise `FetchOptions::max_bytes`"
        ))
    };
    let failed = |e: ureq::Error| {
        match e {
        ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => fail(format!(
            "could not connect within {} s; check the address and that the server is up",
            secs(options.connect_timeout)
        )),
        ureq::Error::Timeout(ureq::Timeout::PerRead | ureq::Timeout::RecvResponse) => {
            fail(format!(
                "the server stopped answering (nothing received for {} s); check that it is up, or download the module and use `path`",
                secs(options.idle_timeout)
            ))
        }
        ureq::Error::Timeout(_) => fail(format!(
            "the download took longer than {} s; download the module and use `path`",
            secs(options.timeout)
        )),
        e => fail(e.to_string()),
    }
    };
    let method = req.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let mut builder = ureq::http::Request::builder()
        .method(method.as_str())
        .uri(req.url.as_str());
    for (key, value) in &req.headers {
        builder = builder.header(key.as_str(), value.as_str());
    }
    let request = builder
        .body(ureq::SendBody::none())
        .map_err(|e| fail(format!("invalid request: {e}")))?;

    // Status codes are checked below so the message can carry the code.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_resolve(Some(options.connect_timeout))
        .timeout_connect(Some(options.connect_timeout))
        .timeout_per_read(Some(options.idle_timeout))
        .timeout_recv_response(Some(options.idle_timeout))
        .timeout_global(Some(options.timeout))
        .build()
        .into();
    let mut response = agent.run(request).map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!(
            "the server answered HTTP {status}; check the url and headers"
        )));
    }
    // A declared length over the cap fails before anything is read.
    if response.body().content_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| match ureq::Error::from(e) {
            e @ ureq::Error::Timeout(_) => failed(e),
            e => fail(format!("reading the response failed: {e}")),
        })?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

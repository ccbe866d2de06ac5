//! `http_request` for plug-ins: allow-list by host-name glob, capped response body, the call's
//! remaining time as the timeout, and redirects followed only to allowed hosts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::Error;

/// A request's time limit when the plug-in has no `timeout_ms`: without one, a server that
/// never answers would hold the call (and its thread) forever, out of reach of cancel.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: usize = 10;

/// What a plug-in may reach over HTTP.
#[derive(Clone, Debug)]
pub(crate) struct HttpPolicy {
    allowed: Option<GlobSet>,
    pub max_response_bytes: u64,
    pub enable_headers: bool,
}

impl HttpPolicy {
    pub fn new(
        allowed_hosts: Option<&[String]>,
        max_response_bytes: u64,
        enable_headers: bool,
    ) -> Result<Self, Error> {
        let allowed = match allowed_hosts {
            Some(hosts) if !hosts.is_empty() => {
                let mut set = GlobSetBuilder::new();
                for h in hosts {
                    let glob = GlobBuilder::new(h)
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| {
                            Error::InvalidManifest(format!(
                                "allowed_hosts entry `{h}` is not a valid glob: {e}"
                            ))
                        })?;
                    set.add(glob);
                }
                Some(
                    set.build()
                        .map_err(|e| Error::InvalidManifest(e.to_string()))?,
                )
            }
            _ => None,
        };
        Ok(HttpPolicy {
            allowed,
            max_response_bytes,
            enable_headers,
        })
    }

    fn check(&self, url: &url::Url) -> Result<(), Error> {
        let host = url.host_str().unwrap_or_default().to_string();
        match &self.allowed {
            Some(set) if set.is_match(&host) => Ok(()),
            _ => Err(Error::HttpDenied { host }),
        }
    }
}

/// The request a plug-in sends, as the Extism PDKs encode it.
#[derive(Deserialize)]
struct GuestRequest {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    method: Option<String>,
}

pub(crate) struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

pub(crate) fn request(
    policy: &HttpPolicy,
    request_json: &[u8],
    body: Option<Vec<u8>>,
    deadline: Option<Instant>,
) -> Result<HttpResponse, Error> {
    let req: GuestRequest = serde_json::from_slice(request_json)
        .map_err(|e| Error::Http(format!("the plug-in's request is not valid JSON ({e}); expected {{\"url\":..,\"method\":..,\"headers\":{{..}}}}")))?;
    let mut url = url::Url::parse(&req.url)
        .map_err(|e| Error::Http(format!("invalid URL `{}`: {e}", req.url)))?;
    let mut method = req.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let mut body = body;

    for _ in 0..=MAX_REDIRECTS {
        policy.check(&url)?;
        let timeout = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Http(
                        "no time left in the call for the request".into(),
                    ));
                }
                Some(left)
            }
            None => Some(DEFAULT_TIMEOUT),
        };
        let resp = send(
            &url,
            &method,
            &req.headers,
            body.as_deref(),
            timeout,
            policy,
        )?;
        if (300..400).contains(&resp.status) {
            if let Some(loc) = resp.headers.get("location") {
                url = url
                    .join(loc)
                    .map_err(|e| Error::Http(format!("bad redirect location `{loc}`: {e}")))?;
                // 303, and 301/302 after a POST, turn into a GET without a body, as browsers do.
                if resp.status == 303 || (matches!(resp.status, 301 | 302) && method == "POST") {
                    method = "GET".into();
                    body = None;
                }
                continue;
            }
        }
        return Ok(resp);
    }
    Err(Error::Http(format!("more than {MAX_REDIRECTS} redirects")))
}

fn send(
    url: &url::Url,
    method: &str,
    headers: &BTreeMap<String, String>,
    body: Option<&[u8]>,
    timeout: Option<Duration>,
    policy: &HttpPolicy,
) -> Result<HttpResponse, Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(timeout)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(url.as_str());
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let request = builder
        .body(body.unwrap_or_default().to_vec())
        .map_err(|e| Error::Http(format!("cannot build the request: {e}")))?;
    let resp = agent.run(request).map_err(|e| match e {
        ureq::Error::Timeout(_) => Error::Http(format!("request to {url} timed out")),
        e => Error::Http(format!("request to {url} failed: {e}")),
    })?;
    let status = resp.status().as_u16();
    let mut out_headers = BTreeMap::new();
    for (k, v) in resp.headers() {
        out_headers.insert(
            k.as_str().to_ascii_lowercase(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        );
    }
    let limit = policy.max_response_bytes;
    let body = resp
        .into_body()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => Error::Http(format!(
                "the response from {url} is larger than max_http_response_bytes = {limit}; raise `memory.max_http_response_bytes` or --http-response-max"
            )),
            ureq::Error::Timeout(_) => Error::Http(format!("reading the response from {url} timed out")),
            e => Error::Http(format!("reading the response from {url} failed: {e}")),
        })?;
    Ok(HttpResponse {
        status,
        headers: out_headers,
        body,
    })
}

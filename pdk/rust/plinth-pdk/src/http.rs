//! Outgoing HTTP requests, made by the host on the plug-in's behalf (to hosts the manifest's
//! `allowed_hosts` lets through).

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{abi, Error, Memory, ToMemory};

/// A request, serialized as the ABI's JSON: `{"url":..,"headers":{..},"method":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Where to send the request.
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The method; the host uses GET when it is `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl HttpRequest {
    /// A GET request for `url`.
    pub fn new(url: impl Into<String>) -> HttpRequest {
        HttpRequest {
            url: url.into(),
            headers: BTreeMap::new(),
            method: None,
        }
    }

    /// Sets the method (`"POST"`, ...).
    pub fn with_method(mut self, method: impl Into<String>) -> HttpRequest {
        self.method = Some(method.into());
        self
    }

    /// Adds (or replaces) a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> HttpRequest {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// A response. Any status is a response, not an error: check [`HttpResponse::status_code`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    memory: Memory,
    status: u16,
    headers: HashMap<String, String>,
}

impl HttpResponse {
    /// The body's bytes.
    pub fn body(&self) -> Vec<u8> {
        self.memory.to_vec()
    }

    /// The HTTP status code.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// Response headers (names in lower case); empty unless the host exposes them.
    pub fn headers(&self) -> &HashMap<String, String> {
        &self.headers
    }

    /// One response header, by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body decoded from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body()).context("the response body is not the expected JSON")
    }

    /// The block holding the body, e.g. to return it as the output without a copy.
    pub fn as_memory(&self) -> &Memory {
        &self.memory
    }

    /// The block holding the body.
    pub fn into_memory(self) -> Memory {
        self.memory
    }
}

/// Sends `req` with an optional body and waits for the response. A request the host refuses
/// (host not allowed, network failure, timeout) fails the call.
pub fn request<T: ToMemory>(req: &HttpRequest, body: Option<T>) -> Result<HttpResponse, Error> {
    let body = match body {
        Some(b) => b.to_memory()?,
        None => Memory::null(),
    };
    let req = Memory::from_bytes(serde_json::to_vec(req)?)?;
    // http_request frees both handles.
    let res = unsafe { abi::http_request(req.offset(), body.offset()) };
    let status = unsafe { abi::http_status_code() };
    let memory = Memory::find(res).unwrap_or(Memory::null());
    let headers = match Memory::find(unsafe { abi::http_headers() }) {
        Some(h) => {
            let bytes = h.to_vec();
            h.free();
            serde_json::from_slice(&bytes).unwrap_or_default()
        }
        None => HashMap::new(),
    };
    Ok(HttpResponse {
        memory,
        status: status as u16,
        headers,
    })
}

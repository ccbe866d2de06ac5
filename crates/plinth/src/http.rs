//! `http_request` for plug-ins: allow-list by host-name glob (optionally with a port), capped
//! response body, one deadline for the whole request (redirects included), cancel, and
//! redirects followed only to allowed hosts, without credentials or bodies across origins.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::error::Interrupt;
use crate::Error;

/// The time limit of a whole request, redirects and body included, when the plug-in has no
/// `timeout_ms`: without one, a server that never answers would hold the call forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: usize = 10;
/// How often a call waiting for its request looks at the cancel flag. `CancelHandle` cannot
/// wake the waiting thread, so it polls; 10 ms is prompt and costs nothing worth measuring.
const CANCEL_POLL: Duration = Duration::from_millis(10);
/// Request headers that carry credentials: never sent to an origin the plug-in did not name.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];
/// Request headers that describe a body: dropped with the body.
const BODY_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "content-language",
    "content-location",
    "transfer-encoding",
];

/// One `allowed_hosts` entry: a host glob or an exact bracketed IPv6 address, and a port.
#[derive(Debug)]
struct HostRule {
    host: HostPattern,
    /// `None`: any port (a plain entry, as in Extism).
    port: Option<u16>,
}

#[derive(Debug)]
enum HostPattern {
    Glob(GlobMatcher),
    /// `[::1]`: matched as an address, not as a glob (where `[..]` is a character class).
    Ipv6(Ipv6Addr),
}

impl HostRule {
    fn parse(entry: &str) -> Result<HostRule, Error> {
        let bad =
            |why: &str| Error::InvalidManifest(format!("allowed_hosts entry `{entry}` {why}"));
        let port = |p: &str| -> Result<u16, Error> {
            p.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("has a bad port: write `host:port` with a port from 1 to 65535"))
        };
        if entry.contains("://") || entry.contains('/') {
            return Err(bad("is not a host: write the host name alone (`example.com`), optionally with a port (`example.com:8080`)"));
        }
        if let Some((addr, rest)) = entry
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .and_then(|(a, rest)| Some((a.parse::<Ipv6Addr>().ok()?, rest)))
        {
            let port = match rest {
                "" => None,
                r => Some(port(r.strip_prefix(':').ok_or_else(|| {
                    bad("has text after the IPv6 address: write `[addr]` or `[addr]:port`")
                })?)?),
            };
            return Ok(HostRule {
                host: HostPattern::Ipv6(addr),
                port,
            });
        }
        let (host, port) = match entry.split_once(':') {
            None => (entry, None),
            Some((h, p)) if !p.contains(':') => (h, Some(port(p)?)),
            Some(_) => {
                return Err(bad(
                    "looks like a bare IPv6 address: write it in brackets, `[::1]`",
                ))
            }
        };
        let glob = GlobBuilder::new(host)
            .case_insensitive(true)
            .build()
            .map_err(|e| bad(&format!("is not a valid glob: {e}")))?;
        Ok(HostRule {
            host: HostPattern::Glob(glob.compile_matcher()),
            port,
        })
    }

    fn host_matches(&self, url: &url::Url) -> bool {
        match (&self.host, url.host()) {
            (HostPattern::Ipv6(a), Some(url::Host::Ipv6(b))) => *a == b,
            (HostPattern::Ipv6(_), _) => false,
            (HostPattern::Glob(g), _) => g.is_match(url.host_str().unwrap_or_default()),
        }
    }
}

/// What a plug-in may reach over HTTP.
#[derive(Clone, Debug)]
pub(crate) struct HttpPolicy {
    /// Empty: no HTTP at all.
    allowed: Arc<[HostRule]>,
    pub max_response_bytes: u64,
    pub enable_headers: bool,
}

impl HttpPolicy {
    /// `allowed_hosts` entries: `host-glob` (any port), `host-glob:port` (that port only),
    /// `[ipv6]` or `[ipv6]:port` (that address exactly).
    pub fn new(
        allowed_hosts: Option<&[String]>,
        max_response_bytes: u64,
        enable_headers: bool,
    ) -> Result<Self, Error> {
        let allowed = allowed_hosts
            .unwrap_or_default()
            .iter()
            .map(|h| HostRule::parse(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HttpPolicy {
            allowed: allowed.into(),
            max_response_bytes,
            enable_headers,
        })
    }

    fn check(&self, url: &url::Url) -> Result<(), Error> {
        let port = url.port_or_known_default();
        let mut host_allowed = false;
        for rule in self.allowed.iter() {
            if rule.host_matches(url) {
                if rule.port.is_none_or(|p| Some(p) == port) {
                    return Ok(());
                }
                host_allowed = true;
            }
        }
        let host = url.host_str().unwrap_or_default();
        // Name the port when only the port is missing, so that the message says what to add.
        let host = match (host_allowed, port) {
            (true, Some(p)) => format!("{host}:{p}"),
            _ => host.to_string(),
        };
        Err(Error::HttpDenied { host })
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

/// Why `http_request` failed. A cancel becomes `Interrupt::Cancelled`, so that the call ends
/// as `Error::Cancelled`, exactly as when the epoch check sees it.
#[derive(Debug)]
pub(crate) enum Failure {
    Error(Error),
    Cancelled,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

impl From<Failure> for wasmtime::Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Error(e) => e.into(),
            Failure::Cancelled => Interrupt::Cancelled.into(),
        }
    }
}

pub(crate) struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Sends the plug-in's request. It ends, with the call's `deadline` or [`DEFAULT_TIMEOUT`]
/// for the whole request, or as soon as `cancel` is set.
pub(crate) fn request(
    policy: &HttpPolicy,
    request_json: &[u8],
    body: Option<Vec<u8>>,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
) -> Result<HttpResponse, Failure> {
    request_within(
        policy,
        request_json,
        body,
        deadline,
        cancel,
        DEFAULT_TIMEOUT,
    )
}

/// Which limit a request runs under, for the message when it runs out.
#[derive(Clone, Copy)]
enum Limit {
    Call,
    Default(Duration),
}

fn timed_out(url: &url::Url, limit: Limit) -> Error {
    Error::Http(match limit {
        Limit::Call => format!(
            "request to {url} timed out: the call's time limit ran out; raise `timeout_ms` in the manifest"
        ),
        Limit::Default(d) => format!(
            "request to {url} timed out after {} s, the limit for a whole request (redirects included) when the manifest sets no `timeout_ms`",
            d.as_secs_f64()
        ),
    })
}

fn request_within(
    policy: &HttpPolicy,
    request_json: &[u8],
    body: Option<Vec<u8>>,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
    default_timeout: Duration,
) -> Result<HttpResponse, Failure> {
    let (url, method, headers) = parse_request(policy, request_json)?;
    // One deadline for the whole request: every hop gets only what is left of it.
    let (deadline, limit) = match deadline {
        Some(d) => (d, Limit::Call),
        None => (
            Instant::now() + default_timeout,
            Limit::Default(default_timeout),
        ),
    };
    let abandoned = Arc::new(AtomicBool::new(false));
    let job = Job {
        policy: policy.clone(),
        url: url.clone(),
        method,
        headers,
        body: match body {
            Some(b) if !b.is_empty() => JobBody::Whole(b),
            _ => JobBody::None,
        },
        deadline,
        limit,
        abandoned: abandoned.clone(),
    };
    // The blocking request runs on its own thread so that this one can stop waiting at once
    // on cancel or at the deadline. ureq cannot be interrupted, so an abandoned request ends
    // by itself: at the deadline (its timeouts are set from it) or at its next read, where it
    // sees `abandoned`. Its result is then dropped.
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("plinth-http".into())
        .spawn(move || {
            let _ = tx.send(job.run());
        })
        .map_err(|e| Error::Http(format!("cannot start a thread for the request: {e}")))?;
    loop {
        if cancel.load(Ordering::Relaxed) {
            abandoned.store(true, Ordering::Relaxed);
            return Err(Failure::Cancelled);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            abandoned.store(true, Ordering::Relaxed);
            return Err(timed_out(&url, limit).into());
        }
        match rx.recv_timeout(left.min(CANCEL_POLL)) {
            Ok(result) => return result.map_err(Into::into),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Http(format!(
                    "the request to {url} failed: its thread stopped without an answer"
                ))
                .into())
            }
        }
    }
}

/// A request and its redirects, run on a thread of its own.
struct Job {
    policy: HttpPolicy,
    url: url::Url,
    method: String,
    headers: BTreeMap<String, String>,
    body: JobBody,
    deadline: Instant,
    limit: Limit,
    abandoned: Arc<AtomicBool>,
}

/// What a request sends after its headers.
enum JobBody {
    None,
    /// A body given whole (`http_request`), sent again on a redirect that keeps it.
    Whole(Vec<u8>),
    /// A body the plug-in streams (`http_stream_send`): it can go out once only, so a
    /// redirect that would repeat it is handed to the plug-in instead.
    Stream(Option<BodyChunks>),
}

/// The answer to one hop: status, headers (lowercase names) and the unread body.
struct Hop {
    status: u16,
    headers: BTreeMap<String, String>,
    body: ureq::Body,
}

impl Job {
    /// Sends the request and follows its redirects to the last answer, whose body is unread.
    fn follow(&mut self) -> Result<Hop, Error> {
        for _ in 0..=MAX_REDIRECTS {
            self.policy.check(&self.url)?;
            if self.abandoned.load(Ordering::Relaxed) {
                return Err(Error::Http("abandoned".into()));
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out(&self.url, self.limit));
            }
            let hop = self.send(left)?;
            let Some(location) = hop.headers.get("location") else {
                return Ok(hop);
            };
            let next = self
                .url
                .join(location)
                .map_err(|e| Error::Http(format!("bad redirect location `{location}`: {e}")))?;
            let cross_origin = next.origin() != self.url.origin();
            match hop.status {
                // Like browsers and ureq: these turn into a GET without a body.
                301..=303 => {
                    if self.method != "HEAD" {
                        self.method = "GET".into();
                    }
                    self.drop_body();
                }
                // These repeat the request as it was. A body is not sent to an origin the
                // plug-in did not name, and a streamed body cannot be sent twice: the plug-in
                // gets the redirect itself instead (sending the request without its body
                // would be a different request).
                307 | 308 if matches!(self.body, JobBody::Stream(_)) => return Ok(hop),
                307 | 308 if cross_origin && !matches!(self.body, JobBody::None) => return Ok(hop),
                307 | 308 => {}
                _ => return Ok(hop),
            }
            if cross_origin {
                self.headers
                    .retain(|k, _| !CREDENTIAL_HEADERS.contains(&k.to_ascii_lowercase().as_str()));
            }
            self.url = next;
        }
        Err(Error::Http(format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// The whole answer, its body read up to the response cap.
    fn run(mut self) -> Result<HttpResponse, Error> {
        let hop = self.follow()?;
        let limit = self.policy.max_response_bytes;
        let mut reader = hop.body.into_reader().take(limit.saturating_add(1));
        let mut body = Vec::new();
        let mut chunk = vec![0; 64 * 1024];
        loop {
            // An abandoned request stops reading at once.
            if self.abandoned.load(Ordering::Relaxed) {
                return Err(Error::Http("abandoned".into()));
            }
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_failed(e)),
            }
        }
        if body.len() as u64 > limit {
            return Err(over_cap(&self.url, limit));
        }
        Ok(HttpResponse {
            status: hop.status,
            headers: hop.headers,
            body,
        })
    }

    fn read_failed(&self, e: std::io::Error) -> Error {
        match ureq::Error::from(e) {
            ureq::Error::Timeout(_) => timed_out(&self.url, self.limit),
            e => Error::Http(format!(
                "reading the response from {} failed: {e}",
                self.url
            )),
        }
    }

    fn drop_body(&mut self) {
        self.body = JobBody::None;
        self.headers
            .retain(|k, _| !BODY_HEADERS.contains(&k.to_ascii_lowercase().as_str()));
    }

    /// One hop, with `left` for all of it, body included.
    fn send(&mut self, left: Duration) -> Result<Hop, Error> {
        let url = &self.url;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(left))
            .build()
            .into();
        let mut builder = ureq::http::Request::builder()
            .method(self.method.as_str())
            .uri(url.as_str());
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        let built = |e: ureq::http::Error| Error::Http(format!("cannot build the request: {e}"));
        let sent = match &mut self.body {
            JobBody::None => agent.run(builder.body(()).map_err(built)?),
            JobBody::Whole(bytes) => agent.run(builder.body(&bytes[..]).map_err(built)?),
            JobBody::Stream(chunks) => {
                let body = match chunks.take() {
                    Some(chunks) => ureq::SendBody::from_owned_reader(chunks),
                    None => ureq::SendBody::none(),
                };
                agent.run(builder.body(body).map_err(built)?)
            }
        };
        let resp = sent.map_err(|e| match e {
            ureq::Error::Timeout(_) => timed_out(url, self.limit),
            e => Error::Http(format!("request to {url} failed: {e}")),
        })?;
        let status = resp.status().as_u16();
        let mut headers = BTreeMap::new();
        for (k, v) in resp.headers() {
            headers.insert(
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            );
        }
        Ok(Hop {
            status,
            headers,
            body: resp.into_body(),
        })
    }
}

fn over_cap(url: &url::Url, limit: u64) -> Error {
    Error::Http(format!(
        "the response from {url} is larger than max_http_response_bytes = {limit}; raise \
         `memory.max_http_response_bytes`"
    ))
}

/// The plug-in's request body chunks, as the request thread reads them.
struct BodyChunks {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl std::io::Read for BodyChunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => (self.chunk, self.pos) = (chunk, 0),
                // The sender is gone: the plug-in ended its body (or the request is abandoned).
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// How much of a response body a streaming request reads ahead of the plug-in.
const STREAM_CHUNK: usize = 64 * 1024;

/// The status and headers of a streamed response.
pub(crate) struct Head {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
}

/// A request whose bodies stream (`http_stream_*`): the request thread sends the plug-in's
/// body chunks as they come and reads the response a chunk ahead of it, so that memory stays
/// at a chunk or two whatever the sizes. Dropping it abandons the request.
pub(crate) struct StreamingRequest {
    url: url::Url,
    limit: Limit,
    deadline: Instant,
    /// `None` once the request body ended.
    body: Option<mpsc::SyncSender<Vec<u8>>>,
    head_rx: mpsc::Receiver<Result<Head, Error>>,
    chunks_rx: mpsc::Receiver<Result<Vec<u8>, Error>>,
    /// Part of the last chunk the plug-in has not read yet.
    pending: Vec<u8>,
    pending_pos: usize,
    pub head: Option<Head>,
    done: bool,
    abandoned: Arc<AtomicBool>,
}

impl Drop for StreamingRequest {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }
}

impl StreamingRequest {
    /// Starts the plug-in's request: checked against the allow-list now, sent by a thread of
    /// its own once the plug-in sends its first body chunk or asks for the answer.
    pub(crate) fn start(
        policy: &HttpPolicy,
        request_json: &[u8],
        deadline: Option<Instant>,
    ) -> Result<StreamingRequest, Error> {
        let (url, method, headers) = parse_request(policy, request_json)?;
        let (deadline, limit) = match deadline {
            Some(d) => (d, Limit::Call),
            None => (
                Instant::now() + DEFAULT_TIMEOUT,
                Limit::Default(DEFAULT_TIMEOUT),
            ),
        };
        let abandoned = Arc::new(AtomicBool::new(false));
        let (body_tx, body_rx) = mpsc::sync_channel::<Vec<u8>>(1);
        let (head_tx, head_rx) = mpsc::sync_channel(1);
        let (chunks_tx, chunks_rx) = mpsc::sync_channel(1);
        let job = Job {
            policy: policy.clone(),
            url: url.clone(),
            method,
            headers,
            body: JobBody::Stream(None),
            deadline,
            limit,
            abandoned: abandoned.clone(),
        };
        std::thread::Builder::new()
            .name("plinth-http-stream".into())
            .spawn(move || stream_job(job, body_rx, head_tx, chunks_tx))
            .map_err(|e| Error::Http(format!("cannot start a thread for the request: {e}")))?;
        Ok(StreamingRequest {
            url,
            limit,
            deadline,
            body: Some(body_tx),
            head_rx,
            chunks_rx,
            pending: Vec::new(),
            pending_pos: 0,
            head: None,
            done: false,
            abandoned,
        })
    }

    /// Sends a chunk of the request body; waits (within the deadline) while the server takes
    /// the previous one.
    pub(crate) fn send(&mut self, chunk: &[u8], cancel: &AtomicBool) -> Result<(), Failure> {
        let Some(tx) = &self.body else {
            return Err(Error::Http(format!(
                "the request body to {} already ended: send the whole body before reading the \
                 answer",
                self.url
            ))
            .into());
        };
        let mut chunk = chunk.to_vec();
        loop {
            self.check_time(cancel)?;
            match tx.try_send(chunk) {
                Ok(()) => return Ok(()),
                Err(mpsc::TrySendError::Full(back)) => {
                    chunk = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                // The request thread stopped: its answer says why.
                Err(mpsc::TrySendError::Disconnected(_)) => {
                    self.body = None;
                    self.wait_head(cancel)?;
                    return Err(Error::Http(format!(
                        "the server at {} answered before the request body was sent",
                        self.url
                    ))
                    .into());
                }
            }
        }
    }

    /// Ends the request body and waits for the answer's status and headers.
    pub(crate) fn wait_head(&mut self, cancel: &AtomicBool) -> Result<&Head, Failure> {
        self.body = None;
        if self.head.is_none() {
            let head = self.recv(cancel, |s| &s.head_rx)?.map_err(Failure::Error)?;
            self.head = Some(head);
        }
        Ok(self.head.as_ref().expect("set above"))
    }

    /// Copies up to `buf.len()` bytes of the response body into `buf`: 0 at its end.
    pub(crate) fn read(&mut self, buf: &mut [u8], cancel: &AtomicBool) -> Result<usize, Failure> {
        self.wait_head(cancel)?;
        if self.pending_pos == self.pending.len() {
            if self.done {
                return Ok(0);
            }
            match self.recv(cancel, |s| &s.chunks_rx) {
                Ok(Ok(chunk)) if chunk.is_empty() => {
                    self.done = true;
                    return Ok(0);
                }
                Ok(Ok(chunk)) => (self.pending, self.pending_pos) = (chunk, 0),
                Ok(Err(e)) => return Err(e.into()),
                Err(f) => return Err(f),
            }
        }
        let n = buf.len().min(self.pending.len() - self.pending_pos);
        buf[..n].copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
        self.pending_pos += n;
        Ok(n)
    }

    fn check_time(&self, cancel: &AtomicBool) -> Result<(), Failure> {
        if cancel.load(Ordering::Relaxed) {
            return Err(Failure::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Err(timed_out(&self.url, self.limit).into());
        }
        Ok(())
    }

    /// The next message from the request thread, within the deadline and the cancel.
    fn recv<T>(
        &self,
        cancel: &AtomicBool,
        rx: impl Fn(&Self) -> &mpsc::Receiver<T>,
    ) -> Result<T, Failure> {
        loop {
            self.check_time(cancel)?;
            let left = self.deadline.saturating_duration_since(Instant::now());
            match rx(self).recv_timeout(left.min(CANCEL_POLL)) {
                Ok(v) => return Ok(v),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Http(format!(
                        "the request to {} failed: its thread stopped without an answer",
                        self.url
                    ))
                    .into())
                }
            }
        }
    }
}

/// The request thread of a [`StreamingRequest`].
fn stream_job(
    mut job: Job,
    body_rx: mpsc::Receiver<Vec<u8>>,
    head_tx: mpsc::SyncSender<Result<Head, Error>>,
    chunks_tx: mpsc::SyncSender<Result<Vec<u8>, Error>>,
) {
    // The first message says whether there is a body: a chunk, or the sender gone.
    let left = job.deadline.saturating_duration_since(Instant::now());
    match body_rx.recv_timeout(left) {
        Ok(first) => {
            job.body = JobBody::Stream(Some(BodyChunks {
                rx: body_rx,
                chunk: first,
                pos: 0,
            }))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => job.body = JobBody::None,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = head_tx.send(Err(timed_out(&job.url, job.limit)));
            return;
        }
    }
    let hop = match job.follow() {
        Ok(hop) => hop,
        Err(e) => {
            let _ = head_tx.send(Err(e));
            return;
        }
    };
    let head = Head {
        status: hop.status,
        headers: hop.headers,
    };
    if head_tx.send(Ok(head)).is_err() {
        return;
    }
    let limit = job.policy.max_response_bytes;
    let mut reader = hop.body.into_reader();
    let mut total = 0u64;
    loop {
        if job.abandoned.load(Ordering::Relaxed) {
            return;
        }
        let mut chunk = vec![0; STREAM_CHUNK];
        let message = match reader.read(&mut chunk) {
            Ok(n) => {
                total += n as u64;
                chunk.truncate(n);
                if total > limit {
                    Err(over_cap(&job.url, limit))
                } else {
                    Ok(chunk)
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(job.read_failed(e)),
        };
        let last = !matches!(&message, Ok(c) if !c.is_empty());
        // Blocks while the plug-in has not taken the last chunk: the server is read no
        // faster than the plug-in reads.
        if chunks_tx.send(message).is_err() || last {
            return;
        }
    }
}

/// The URL, method and headers of the plug-in's request JSON, checked.
fn parse_request(
    policy: &HttpPolicy,
    request_json: &[u8],
) -> Result<(url::Url, String, BTreeMap<String, String>), Error> {
    let req: GuestRequest = serde_json::from_slice(request_json)
        .map_err(|e| Error::Http(format!("the plug-in's request is not valid JSON ({e}); expected {{\"url\":..,\"method\":..,\"headers\":{{..}}}}")))?;
    let url = url::Url::parse(&req.url)
        .map_err(|e| Error::Http(format!("invalid URL `{}`: {e}", req.url)))?;
    // Refused rather than dropped: the server would route on it (past the allow-list), and a
    // silently dropped header would make a plug-in that relies on it fail in confusing ways.
    if req.headers.keys().any(|k| k.eq_ignore_ascii_case("host")) {
        return Err(Error::Http(format!(
            "the request to {url} sets a `Host` header, which plug-ins may not: the host is taken from the URL, which `allowed_hosts` checks; remove the header"
        )));
    }
    policy.check(&url)?;
    let method = req.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    Ok((url, method, req.headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Serves `/hop/N`: waits 400 ms, then redirects to `/hop/N-1`; `/hop/0` answers "done".
    fn slow_redirects() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    reader.read_line(&mut line).ok();
                    while reader.read_line(&mut String::new()).unwrap_or(0) > 2 {}
                    let n: u32 = line
                        .split_whitespace()
                        .nth(1)
                        .and_then(|p| p.strip_prefix("/hop/"))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    let head = if n == 0 {
                        "200 OK\r\ncontent-length: 4\r\n\r\ndone".to_string()
                    } else {
                        std::thread::sleep(Duration::from_millis(400));
                        format!(
                            "302 Found\r\nlocation: /hop/{}\r\ncontent-length: 0\r\n\r\n",
                            n - 1
                        )
                    };
                    let _ = stream.write_all(format!("HTTP/1.1 {head}").as_bytes());
                });
            }
        });
        port
    }

    /// Without `timeout_ms`, the default limit is one deadline for the chain, not a fresh
    /// limit per hop: three 400 ms hops fail under a 1 s default (each alone fits).
    #[test]
    fn default_deadline_covers_the_whole_redirect_chain() {
        let port = slow_redirects();
        let policy = HttpPolicy::new(Some(&["127.0.0.1".into()]), 1 << 20, false).unwrap();
        let cancel = AtomicBool::new(false);
        let req = |hops: u32| format!(r#"{{"url":"http://127.0.0.1:{port}/hop/{hops}"}}"#);
        let within = |hops| {
            request_within(
                &policy,
                req(hops).as_bytes(),
                None,
                None,
                &cancel,
                Duration::from_millis(1000),
            )
        };
        // One hop fits in the default limit.
        assert_eq!(within(1).unwrap().body, b"done");
        let err = match within(3) {
            Err(Failure::Error(e)) => e,
            Err(Failure::Cancelled) => panic!("not cancelled"),
            Ok(_) => panic!("three hops of 400 ms must not fit in 1 s"),
        };
        assert!(matches!(err, Error::Http(_)), "{err:?}");
        assert!(err.to_string().contains("timed out after 1 s"), "{err}");
    }

    #[test]
    fn allowed_hosts_entries_parse() {
        for good in [
            "example.com",
            "*.example.com",
            "example.com:8080",
            "[::1]",
            "[::1]:80",
            "[a-c]*.example",
        ] {
            HostRule::parse(good).unwrap();
        }
        for bad in [
            "http://example.com",
            "example.com:http",
            "example.com:0",
            "::1",
            "[::1]x",
            "example.com/x",
        ] {
            let err = HttpPolicy::new(Some(&[bad.into()]), 0, false).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}

//! A webhook server where each store owner's plug-in handles the store's events.
//!
//! `POST /stores/{store}/webhooks/{event}` with a JSON object calls the store's plug-in
//! (`handle`, see plugins/rust/webhook_orders) with that object plus `"event"`, and answers
//! with the plug-in's JSON. The plug-in asks about the store through the async host function
//! `store_query`, which awaits an SQLite query: the plug-in calls it synchronously, while the
//! server's thread serves other requests until the answer is there.
//!
//! Each store has its own compiled plug-in, its own pool of instances (an instance per
//! request in flight) and its own [`Limits`].
//!
//! `GET /stores/{store}/live`, when the server has a [`Relay`], is a server-sent-events feed:
//! the relay plug-in (plugins/stream/sse_relay) reads the store's upstream feed of JSON lines
//! through a streamed HTTP body and writes each line as an event the moment it arrives; the
//! server passes each event on as the plug-in writes it (`Plugin::call_stream`).

pub mod db;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use plinth::{
    host_fn, CompiledPlugin, ErrorKind, Function, Json, Manifest, Plugin, PluginPool, UserData,
    Wasm, PTR,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use db::Db;

/// The plug-in function every store's plug-in exports.
pub const HANDLER: &str = "handle";

/// Where scripts/build-plugins.sh puts the store owners' plug-in (`webhook_orders`): under the
/// current directory when run from the repository root, else next to this crate's sources.
pub fn default_plugin_path() -> PathBuf {
    let relative = PathBuf::from("target/wasm-plugins/webhook_orders.wasm");
    if relative.exists() {
        return relative;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugins/webhook_orders.wasm")
}

/// What one store's plug-in may use. `limits.toml` in the plug-ins folder sets them per store
/// (`[acme]` then any of the fields); a field left out keeps its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time per event, the time awaiting `store_query` included.
    pub timeout_ms: u64,
    /// Memory the plug-in may grow by, in 64 KiB pages.
    pub max_pages: u32,
    /// Instances kept for events handled at the same time; more events wait for one.
    pub max_instances: usize,
    /// Fuel (about one unit per wasm instruction) per event; none by default.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 1_000,
            max_pages: 64,
            max_instances: 16,
            fuel: None,
        }
    }
}

/// One store's plug-in and limits, before compiling.
#[derive(Debug, Clone)]
pub struct StoreSpec {
    pub store: String,
    pub wasm: Wasm,
    pub limits: Limits,
}

/// The stores of a plug-ins folder: one per `<store>.wasm`, with its limits from the
/// folder's `limits.toml` if it has one.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<StoreSpec>> {
    let limits_path = dir.join("limits.toml");
    let mut limits: BTreeMap<String, Limits> = if limits_path.exists() {
        let text = std::fs::read_to_string(&limits_path)
            .with_context(|| format!("reading {}", limits_path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", limits_path.display()))?
    } else {
        BTreeMap::new()
    };
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("listing the plug-ins folder {}", dir.display()))?;
    let mut specs = Vec::new();
    for entry in entries {
        let path: PathBuf = entry?.path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let Some(store) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        check_store_name(store)?;
        specs.push(StoreSpec {
            store: store.to_owned(),
            limits: limits.remove(store).unwrap_or_default(),
            wasm: Wasm::file(path.clone()),
        });
    }
    if let Some(store) = limits.keys().next() {
        anyhow::bail!(
            "{} sets limits for store `{store}`, but there is no {store}.wasm in {}",
            limits_path.display(),
            dir.display()
        );
    }
    specs.sort_by(|a, b| a.store.cmp(&b.store));
    Ok(specs)
}

/// Store names appear in URLs and file names: letters, digits, `-` and `_` only.
fn check_store_name(store: &str) -> anyhow::Result<()> {
    let ok = !store.is_empty()
        && store
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    anyhow::ensure!(
        ok,
        "store name `{store}` may hold only letters, digits, `-` and `_`; rename its .wasm file"
    );
    Ok(())
}

/// What `store_query` needs: the database, and the store whose plug-in is calling, so that a
/// plug-in sees only its own store.
#[derive(Clone)]
struct QueryContext {
    db: Db,
    store: Arc<str>,
}

// The plug-in calls this synchronously; the host awaits the query meanwhile.
host_fn!(async store_query(ctx: QueryContext; query: Json<Value>) -> Json<Value> {
    let ctx = ctx.lock().clone();
    let query: db::Query = serde_json::from_value(query.0)
        .context("store_query: not a known query (known: customer_stats with `customer`)")?;
    Ok(Json(ctx.db.query(&ctx.store, query).await?))
});

/// The server's state: the database, a pool of plug-in instances per store, and the live
/// feeds' relay if there is one.
#[derive(Clone)]
pub struct App {
    db: Db,
    stores: Arc<HashMap<String, PluginPool>>,
    relay: Option<Arc<Relay>>,
}

/// The relay plug-in behind `GET /stores/{store}/live` and the upstream it reads: store
/// `acme`'s feed is `{upstream}/acme`. The plug-in may reach that host only.
pub struct Relay {
    plugin: CompiledPlugin,
    upstream: String,
}

impl Relay {
    /// Compiles `wasm` (plugins/stream/sse_relay) to relay feeds under `upstream`
    /// (`http://host:port/path`), each for at most `timeout`.
    pub fn new(wasm: Wasm, upstream: &str, timeout: Duration) -> anyhow::Result<Relay> {
        let upstream = upstream.trim_end_matches('/').to_owned();
        let host = upstream
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
            .filter(|h| !h.is_empty())
            .with_context(|| format!("the relay upstream `{upstream}` is not an http:// URL"))?;
        let manifest = Manifest::new([wasm])
            .with_allowed_host(host)
            .with_timeout(timeout)
            .with_memory_max(64);
        let plugin = Plugin::builder(manifest)
            .compile()
            .context("loading the relay plug-in")?;
        Ok(Relay { plugin, upstream })
    }
}

/// Where scripts/build-plugins.sh puts the relay plug-in, found as [`default_plugin_path`]
/// finds the store plug-in.
pub fn default_relay_path() -> PathBuf {
    let relative = PathBuf::from("target/wasm-plugins/sse_relay.wasm");
    if relative.exists() {
        return relative;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugins/sse_relay.wasm")
}

impl App {
    /// Compiles every store's plug-in with its limits.
    pub fn new(db: Db, specs: Vec<StoreSpec>) -> anyhow::Result<App> {
        let mut stores = HashMap::new();
        for spec in specs {
            check_store_name(&spec.store)?;
            let pool = compile(&db, &spec)
                .with_context(|| format!("loading the plug-in of store `{}`", spec.store))?;
            stores.insert(spec.store, pool);
        }
        Ok(App {
            db,
            stores: Arc::new(stores),
            relay: None,
        })
    }

    /// Serves `GET /stores/{store}/live` through `relay`.
    pub fn with_relay(mut self, relay: Relay) -> App {
        self.relay = Some(Arc::new(relay));
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The stores served, sorted.
    pub fn stores(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.stores.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The HTTP routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/stores/{store}/webhooks/{event}", post(handle_event))
            .route("/stores/{store}/live", get(live_feed))
            .with_state(self)
    }
}

fn compile(db: &Db, spec: &StoreSpec) -> plinth::Result<PluginPool> {
    let limits = &spec.limits;
    let manifest = Manifest::new([spec.wasm.clone()])
        .with_timeout(Duration::from_millis(limits.timeout_ms))
        .with_memory_max(limits.max_pages);
    let context = QueryContext {
        db: db.clone(),
        store: spec.store.as_str().into(),
    };
    let query = Function::new_async(
        "store_query",
        [PTR],
        [PTR],
        UserData::new(context),
        store_query,
    );
    let mut builder = Plugin::builder(manifest).with_function(query);
    if let Some(fuel) = limits.fuel {
        builder = builder.with_fuel_limit(fuel);
    }
    Ok(PluginPool::new(builder.compile()?, limits.max_instances))
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// An error answer: what went wrong, and the Plinth error kind when the plug-in failed.
#[derive(Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<i32>,
}

fn error_response(status: StatusCode, error: String, kind: Option<ErrorKind>) -> Response {
    let body = ErrorBody {
        error,
        kind: kind.map(ErrorKind::name),
        code: kind.map(ErrorKind::number),
    };
    (status, AxumJson(body)).into_response()
}

async fn handle_event(
    State(app): State<App>,
    UrlPath((store, event)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(pool) = app.stores.get(&store) else {
        let error = format!(
            "no plug-in for store `{store}`: add {store}.wasm to the plug-ins folder and restart"
        );
        return error_response(StatusCode::NOT_FOUND, error, None);
    };
    let mut input = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => {
            let error = "the body must be a JSON object".to_owned();
            return error_response(StatusCode::BAD_REQUEST, error, None);
        }
        Err(e) => {
            let error = format!("the body is not JSON: {e}");
            return error_response(StatusCode::BAD_REQUEST, error, None);
        }
    };
    input.insert("event".into(), Value::String(event.clone()));
    let input = Value::Object(input);

    // A pooled instance of the store's plug-in runs the event; awaiting it (and the plug-in's
    // queries) holds no thread.
    let result = pool.call_async::<Vec<u8>>(HANDLER, input.to_string()).await;
    let (status, response, recorded) = match result {
        // Passed on as the plug-in wrote it, once it is known to be JSON.
        Ok(output) => match serde_json::from_slice::<serde::de::IgnoredAny>(&output) {
            Ok(_) => {
                let text = String::from_utf8_lossy(&output).into_owned();
                let headers = [(header::CONTENT_TYPE, "application/json")];
                (StatusCode::OK, (headers, output).into_response(), text)
            }
            Err(e) => {
                let error = format!("the plug-in's answer is not JSON: {e}");
                let r = error_response(StatusCode::BAD_GATEWAY, error.clone(), None);
                (StatusCode::BAD_GATEWAY, r, error)
            }
        },
        Err(e) => {
            let status = match e.kind() {
                // The plug-in refused the event (bad input, a rule of its own).
                ErrorKind::Guest => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let error = e.to_string();
            let r = error_response(status, error.clone(), Some(e.kind()));
            (status, r, error)
        }
    };
    if let Err(e) = app
        .db
        .record(&store, &event, status.as_u16(), &input, &recorded)
        .await
    {
        let error = format!("the event was handled but not recorded: {e:#}");
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, error, None);
    }
    response
}

/// The store's live feed as server-sent events: the relay plug-in runs on a blocking thread
/// (its HTTP reads wait there), and each event it writes goes to the client at once. A client
/// that goes away closes the plug-in's output, which stops it and its upstream request.
async fn live_feed(State(app): State<App>, UrlPath(store): UrlPath<String>) -> Response {
    let Some(relay) = app.relay.clone() else {
        let error = "this server relays no live feeds: start it with --relay-upstream".to_owned();
        return error_response(StatusCode::NOT_FOUND, error, None);
    };
    if !app.stores.contains_key(&store) {
        let error = format!("no plug-in for store `{store}`");
        return error_response(StatusCode::NOT_FOUND, error, None);
    }
    let (events, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    tokio::task::spawn_blocking(move || {
        let failed = match relay.plugin.instantiate() {
            Ok(mut plugin) => {
                plugin.set_config("upstream", format!("{}/{store}", relay.upstream));
                let out = EventWriter(events.clone());
                plugin.call_stream("relay", std::io::empty(), out).err()
            }
            Err(e) => Some(e),
        };
        // A failure the client can still hear about ends the feed with an `error` event.
        if let Some(e) = failed {
            let data = serde_json::json!({"error": e.to_string(), "kind": e.kind().name()});
            let _ = events.blocking_send(Bytes::from(format!("event: error\ndata: {data}\n\n")));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, std::convert::Infallible>(event), rx))
    });
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, axum::body::Body::from_stream(stream)).into_response()
}

/// The relay's output stream: each write goes to the client as one piece of the response
/// body, and waits while the client is slow (up to 8 pieces are queued).
struct EventWriter(tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The server on a Tokio runtime of its own, for tests and the load benchmark; dropping it
/// stops the server.
pub struct BackgroundServer {
    addr: SocketAddr,
    app: App,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BackgroundServer {
    /// Opens the database at `db_path` (seeded with the demo data if `seed`), compiles the
    /// stores' plug-ins and serves them on 127.0.0.1 (a free port) with `workers` threads.
    pub fn start(
        db_path: &Path,
        seed: bool,
        specs: Vec<StoreSpec>,
        workers: usize,
    ) -> anyhow::Result<BackgroundServer> {
        Self::start_with_relay(db_path, seed, specs, workers, None)
    }

    /// [`BackgroundServer::start`], with live feeds through `relay`.
    pub fn start_with_relay(
        db_path: &Path,
        seed: bool,
        specs: Vec<StoreSpec>,
        workers: usize,
        relay: Option<Relay>,
    ) -> anyhow::Result<BackgroundServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()
            .context("starting the Tokio runtime")?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr, app) = runtime.block_on(async {
            let db = Db::open(db_path).await?;
            if seed {
                db.seed_demo().await?;
            }
            let mut app = App::new(db, specs)?;
            if let Some(relay) = relay {
                app = app.with_relay(relay);
            }
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let shutdown = async {
                let _ = stopped.await;
            };
            tokio::spawn(serve(listener, app.clone(), shutdown));
            anyhow::Ok((addr, app))
        })?;
        Ok(BackgroundServer {
            addr,
            app,
            stop: Some(stop),
            runtime: Some(runtime),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL events of `store` named `event` are posted to.
    pub fn url(&self, store: &str, event: &str) -> String {
        format!("http://{}/stores/{store}/webhooks/{event}", self.addr)
    }

    /// Runs `f` (a query on the server's database, say) on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: impl FnOnce(App) -> F) -> F::Output {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        runtime.block_on(f(self.app.clone()))
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            // Requests still in flight get a moment to finish; none is expected.
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

//! `webhooks --db store.db --plugins DIR --addr 127.0.0.1:8080 [--seed]`: serves the webhook
//! events of every store that has a `<store>.wasm` in DIR.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use plinth_example_webhooks::{default_relay_path, load_dir, serve, App, Db, Relay};

/// Serves store webhooks: `POST /stores/{store}/webhooks/{event}` with a JSON body runs the
/// store's plug-in and answers with its actions.
#[derive(Parser)]
struct Args {
    /// The SQLite database (created if missing).
    #[arg(long, default_value = "store.db")]
    db: PathBuf,
    /// A folder of `<store>.wasm` plug-ins, and optionally `limits.toml`.
    #[arg(long)]
    plugins: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Load the demo orders (store `acme`) into the database first.
    #[arg(long)]
    seed: bool,
    /// Serve `GET /stores/{store}/live` as server-sent events relayed from the JSON-lines
    /// feed at `URL/{store}`.
    #[arg(long, value_name = "URL")]
    relay_upstream: Option<String>,
    /// The relay plug-in (default: target/wasm-plugins/sse_relay.wasm).
    #[arg(long, value_name = "PATH")]
    relay_plugin: Option<PathBuf>,
    /// The longest one live feed may stay open, in seconds.
    #[arg(long, default_value_t = 3600)]
    relay_timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = Db::open(&args.db).await?;
    if args.seed {
        db.seed_demo().await?;
    }
    let specs = load_dir(&args.plugins)?;
    anyhow::ensure!(
        !specs.is_empty(),
        "no <store>.wasm in {}: copy a plug-in there (bash scripts/build-plugins.sh builds \
         target/wasm-plugins/webhook_orders.wasm)",
        args.plugins.display()
    );
    for spec in &specs {
        let l = &spec.limits;
        println!(
            "store {}: timeout {} ms, {} pages, {} instances, fuel {}",
            spec.store,
            l.timeout_ms,
            l.max_pages,
            l.max_instances,
            l.fuel.map_or("unlimited".to_owned(), |f| f.to_string())
        );
    }
    let mut app = App::new(db, specs)?;
    if let Some(upstream) = &args.relay_upstream {
        let path = args.relay_plugin.clone().unwrap_or_else(default_relay_path);
        let timeout = std::time::Duration::from_secs(args.relay_timeout_secs);
        app = app.with_relay(Relay::new(plinth::Wasm::file(path), upstream, timeout)?);
        println!("live feeds: GET /stores/{{store}}/live relays {upstream}/{{store}}");
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    println!("listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve(listener, app, shutdown).await?;
    Ok(())
}

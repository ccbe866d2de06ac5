//! The webhook example (examples/webhooks) under load, on loopback: the server runs in this
//! process on 2 Tokio worker threads, and client threads post `order_created` events to the
//! store `acme`, whose plug-in (webhook_orders) awaits an SQLite query through the async host
//! function `store_query` for each event; the server then records the event and the order.
//!
//! Each client thread keeps one connection alive and posts back to back, so the concurrency
//! is the number of client threads. Every answer is checked. Prints requests per second and
//! the p50 and p99 latency per concurrency, and writes them to
//! `<criterion dir>/webhooks_load.json`.
//!
//! `WEBHOOKS_BENCH_SECS` (default 5) is the measured time per concurrency, after a warm-up of
//! a second; `WEBHOOKS_BENCH_CONCURRENCY` (default `1,32`) the concurrencies. Under
//! `cargo test` (`--test`) it makes a few requests only, and writes nothing.

use std::time::{Duration, Instant};

use plinth::Wasm;
use plinth_example_webhooks::{BackgroundServer, Limits, StoreSpec};
use serde_json::json;

/// Server worker threads: the machine the figures come from has 2 cores.
const WORKERS: usize = 2;
/// Customers the orders are spread over, so that each query reads a customer's few orders
/// out of a table that grows through the run.
const CUSTOMERS: u64 = 1_000;

struct Row {
    concurrency: usize,
    requests: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let smoke = args.iter().any(|a| a == "--test");
    let secs: f64 = env_or("WEBHOOKS_BENCH_SECS", "5").parse().expect("seconds");
    let concurrencies: Vec<usize> = env_or("WEBHOOKS_BENCH_CONCURRENCY", "1,32")
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .expect("WEBHOOKS_BENCH_CONCURRENCY: numbers, comma-separated")
        })
        .collect();

    let dir = tempfile::tempdir().expect("a temporary folder");
    let acme = StoreSpec {
        store: "acme".into(),
        wasm: Wasm::data(plinth_bench::wasm_plugin("webhook_orders")),
        limits: Limits {
            max_instances: 64,
            ..Limits::default()
        },
    };
    let server = BackgroundServer::start(&dir.path().join("store.db"), true, vec![acme], WORKERS)
        .expect("start the webhook server");
    let url = server.url("acme", "order_created");

    if smoke {
        let row = load(&url, 2, Load::Requests(10), 0);
        println!("webhooks smoke run: {} requests answered", row.requests);
        return;
    }
    let mut rows = Vec::new();
    let mut next_order = 0;
    for &concurrency in &concurrencies {
        let warm = load(
            &url,
            concurrency,
            Load::For(Duration::from_secs(1)),
            next_order,
        );
        next_order += warm.requests as u64;
        let row = load(
            &url,
            concurrency,
            Load::For(Duration::from_secs_f64(secs)),
            next_order,
        );
        next_order += row.requests as u64;
        println!(
            "webhooks/order_created concurrency {:>3}: {:>8.0} requests/s, p50 {:>9.1?}, p99 {:>9.1?} ({} requests in {:.1} s)",
            row.concurrency,
            row.requests as f64 / row.seconds,
            row.p50,
            row.p99,
            row.requests,
            row.seconds
        );
        rows.push(row);
    }
    write_json(&rows);
}

enum Load {
    For(Duration),
    /// Per client thread.
    Requests(usize),
}

/// `concurrency` client threads post orders numbered from `first_order` until `load` is done.
fn load(url: &str, concurrency: usize, load: Load, first_order: u64) -> Row {
    let start = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..concurrency)
            .map(|client| {
                let load = &load;
                scope.spawn(move || {
                    // One agent per thread: one kept-alive connection each.
                    let agent = ureq::Agent::new_with_defaults();
                    let mut latencies = Vec::new();
                    for i in 0.. {
                        let done = match *load {
                            Load::For(d) => start.elapsed() >= d,
                            Load::Requests(n) => i >= n,
                        };
                        if done {
                            break;
                        }
                        let n = first_order + (i * concurrency + client) as u64;
                        let body = json!({"order": {
                            "id": format!("bench-{n}"),
                            "customer": format!("c{}", n % CUSTOMERS),
                            "total_cents": 1_000 + n % 90_000,
                        }});
                        let sent = Instant::now();
                        let answer = agent
                            .post(url)
                            .content_type("application/json")
                            .send(body.to_string())
                            .and_then(|mut r| r.body_mut().read_to_string())
                            .unwrap_or_else(|e| panic!("order {n}: the server failed: {e}"));
                        latencies.push(sent.elapsed());
                        assert!(answer.starts_with(r#"{"actions":["#), "order {n}: {answer}");
                    }
                    latencies
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().expect("a client thread"))
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Row {
        concurrency,
        requests: latencies.len(),
        seconds,
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn write_json(rows: &[Row]) {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "benchmark": "webhooks/order_created",
                "concurrency": r.concurrency,
                "server_worker_threads": WORKERS,
                "requests": r.requests,
                "seconds": r.seconds,
                "requests_per_second": r.requests as f64 / r.seconds,
                "p50_us": r.p50.as_secs_f64() * 1e6,
                "p99_us": r.p99.as_secs_f64() * 1e6,
            })
        })
        .collect();
    let dir = plinth_bench::criterion_dir();
    std::fs::create_dir_all(&dir).expect("create the criterion folder");
    let path = dir.join("webhooks_load.json");
    let text = serde_json::to_string_pretty(&rows).expect("JSON");
    std::fs::write(&path, text + "\n").expect("write webhooks_load.json");
    println!("wrote {}", path.display());
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

//! The webhook server in-process on 127.0.0.1, with a temporary SQLite database seeded with
//! the demo orders, and posted to over HTTP.

use plinth::Wasm;
use plinth_example_webhooks::db::CustomerStats;
use plinth_example_webhooks::{
    default_plugin_path, default_relay_path, BackgroundServer, Limits, Relay, StoreSpec,
};
use serde_json::{json, Value};

struct Server {
    server: BackgroundServer,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

/// The store `acme` runs the webhook_orders plug-in; `extra` adds stores.
fn start(extra: Vec<StoreSpec>) -> Server {
    start_with_relay(extra, None)
}

fn start_with_relay(extra: Vec<StoreSpec>, relay: Option<Relay>) -> Server {
    let wasm = default_plugin_path();
    assert!(
        wasm.exists(),
        "{} is missing: build the plug-ins first (bash scripts/build-plugins.sh)",
        wasm.display()
    );
    let mut specs = vec![StoreSpec {
        store: "acme".into(),
        wasm: Wasm::file(wasm),
        limits: Limits::default(),
    }];
    specs.extend(extra);
    let dir = tempfile::tempdir().unwrap();
    let server =
        BackgroundServer::start_with_relay(&dir.path().join("store.db"), true, specs, 2, relay)
            .unwrap();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    Server {
        server,
        agent,
        _dir: dir,
    }
}

impl Server {
    /// Posts `body` and returns the status and the JSON answer.
    fn post(&self, store: &str, event: &str, body: &str) -> (u16, Value) {
        let mut response = self
            .agent
            .post(self.server.url(store, event))
            .content_type("application/json")
            .send(body)
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the answer {text:?} is not JSON: {e}"));
        (status, value)
    }

    fn order(&self, id: &str, customer: &str, total_cents: i64) -> (u16, Value) {
        let body = json!({"order": {"id": id, "customer": customer, "total_cents": total_cents}});
        self.post("acme", "order_created", &body.to_string())
    }

    fn stats(&self, customer: &str) -> CustomerStats {
        let customer = customer.to_owned();
        self.server
            .block_on(|app| async move { app.db().customer_stats("acme", &customer).await })
            .unwrap()
    }
}

fn store(name: &str, wat: &str, limits: Limits) -> StoreSpec {
    StoreSpec {
        store: name.into(),
        wasm: Wasm::data(wat.as_bytes().to_vec()),
        limits,
    }
}

#[test]
fn order_events_get_the_plugins_actions_and_are_recorded() {
    let s = start(vec![]);
    // alice has spent 960.00 in three orders (the demo data): this order makes her a VIP.
    assert_eq!(
        s.order("o-1", "alice", 6_000),
        (
            200,
            json!({"actions": [{"type": "tag_customer", "tag": "vip"}]})
        )
    );
    // carol is new, and the order is large.
    let first = json!({"actions": [
        {"type": "send_email", "template": "welcome"},
        {"type": "notify_staff", "reason": "large_order"},
    ]});
    assert_eq!(s.order("o-2", "carol", 60_000), (200, first));
    // Her second order: nothing to do.
    assert_eq!(
        s.order("o-3", "carol", 1_000),
        (200, json!({"actions": []}))
    );
    // A webhook delivered twice records its order once.
    assert_eq!(s.order("o-3", "carol", 1_000).0, 200);
    assert_eq!(
        s.stats("carol"),
        CustomerStats {
            orders: 2,
            spent_cents: 61_000
        }
    );
    assert_eq!(
        s.stats("alice"),
        CustomerStats {
            orders: 4,
            spent_cents: 102_000
        }
    );
    // Events the plug-in does not act on.
    assert_eq!(
        s.post("acme", "customer_updated", r#"{"customer":"alice"}"#),
        (200, json!({"actions": []}))
    );

    let events = s
        .server
        .block_on(|app| async move { app.db().events("acme").await })
        .unwrap();
    let got: Vec<(&str, u16)> = events.iter().map(|e| (&*e.event, e.status)).collect();
    assert_eq!(
        got,
        [
            ("order_created", 200),
            ("order_created", 200),
            ("order_created", 200),
            ("order_created", 200),
            ("customer_updated", 200),
        ]
    );
    assert_eq!(
        events[0].output,
        r#"{"actions":[{"type":"tag_customer","tag":"vip"}]}"#
    );
}

#[test]
fn bad_requests_get_clear_errors() {
    let s = start(vec![]);
    let (status, body) = s.post("nowhere", "order_created", "{}");
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no plug-in for store `nowhere`"),
        "{body}"
    );
    let (status, body) = s.post("acme", "order_created", "not json");
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("not JSON"),
        "{body}"
    );
    let (status, body) = s.post("acme", "order_created", "[1]");
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("JSON object"),
        "{body}"
    );

    // The plug-in refuses an order_created without an order.
    let (status, body) = s.post("acme", "order_created", r#"{"customer":"alice"}"#);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["kind"], "guest");
    assert_eq!(body["code"], 8);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("order_created needs an `order` object"),
        "{body}"
    );
    let events = s
        .server
        .block_on(|app| async move { app.db().events("acme").await })
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, 422);
}

/// A plug-in that never returns.
const LOOPS: &str = r#"(module (memory (export "memory") 1)
    (func (export "handle") (result i32) (loop $l (br $l)) (i32.const 0)))"#;

/// A plug-in that grows its memory by 100 pages (6.25 MiB).
const GREEDY: &str = r#"(module (memory (export "memory") 1)
    (func (export "handle") (result i32)
      (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then (unreachable)))
      (i32.const 0)))"#;

#[test]
fn each_store_has_its_own_limits_and_the_server_keeps_serving() {
    let s = start(vec![
        store(
            "stuck",
            LOOPS,
            Limits {
                timeout_ms: 200,
                max_instances: 1,
                ..Limits::default()
            },
        ),
        store(
            "metered",
            LOOPS,
            Limits {
                timeout_ms: 60_000,
                fuel: Some(1_000_000),
                ..Limits::default()
            },
        ),
        store(
            "greedy",
            GREEDY,
            Limits {
                max_pages: 10,
                ..Limits::default()
            },
        ),
    ]);
    for _ in 0..2 {
        // Twice: the instance stopped at the deadline is replaced.
        let (status, body) = s.post("stuck", "order_created", "{}");
        assert_eq!(status, 504, "{body}");
        assert_eq!(body["kind"], "timeout");
        assert_eq!(s.order("o-1", "dave", 100).0, 200);
    }
    let (status, body) = s.post("metered", "order_created", "{}");
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["kind"], "out_of_fuel");
    let (status, body) = s.post("greedy", "order_created", "{}");
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["kind"], "out_of_memory");
    assert_eq!(s.order("o-2", "dave", 100), (200, json!({"actions": []})));
}

/// A plug-in that sends its input to `store_query` as the query and outputs the answer.
const PASS_QUERY: &str = r#"(module
    (import "extism:host/user" "store_query" (func $query (param i64) (result i64)))
    (import "extism:host/env" "input_length" (func $input_length (result i64)))
    (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
    (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
    (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
    (import "extism:host/env" "length" (func $length (param i64) (result i64)))
    (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
    (memory (export "memory") 1)
    (func (export "handle") (result i32) (local $h i64) (local $i i64)
      (local.set $h (call $alloc (call $input_length)))
      (block $done (loop $copy
        (br_if $done (i64.ge_u (local.get $i) (call $input_length)))
        (call $store_u8 (i64.add (local.get $h) (local.get $i))
          (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $copy)))
      (local.set $h (call $query (local.get $h)))
      (call $output_set (local.get $h) (call $length (local.get $h)))
      (i32.const 0)))"#;

#[test]
fn a_plugin_sees_only_its_own_store_and_only_named_queries() {
    let s = start(vec![store("spy", PASS_QUERY, Limits::default())]);
    // alice has three orders in acme, none in the spy's store.
    let (status, body) = s.post(
        "spy",
        "anything",
        r#"{"query":"customer_stats","customer":"alice"}"#,
    );
    assert_eq!(
        (status, body),
        (200, json!({"orders": 0, "spent_cents": 0}))
    );
    let (status, body) = s.post("spy", "anything", r#"{"query":"DROP TABLE orders"}"#);
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["kind"], "host_function");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a known query"),
        "{body}"
    );
    assert_eq!(s.stats("alice").orders, 3);
}

#[test]
fn a_hundred_events_at_once_each_get_their_own_answer() {
    let s = start(vec![]);
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (1..=100)
            .map(|i| {
                let s = &s;
                scope.spawn(move || s.order(&format!("o-{i}"), &format!("new-{i}"), i * 1_000))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (i, answer) in (1..=100).zip(answers) {
        let mut actions = vec![json!({"type": "send_email", "template": "welcome"})];
        if i == 100 {
            actions.push(json!({"type": "tag_customer", "tag": "vip"}));
        }
        if i * 1_000 >= 50_000 {
            actions.push(json!({"type": "notify_staff", "reason": "large_order"}));
        }
        assert_eq!(answer, (200, json!({ "actions": actions })), "order {i}");
        assert_eq!(
            s.stats(&format!("new-{i}")),
            CustomerStats {
                orders: 1,
                spent_cents: i * 1_000
            }
        );
    }
}

#[test]
fn a_plugins_folder_gives_each_store_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(default_plugin_path(), dir.path().join("acme.wasm")).unwrap();
    std::fs::copy(default_plugin_path(), dir.path().join("globex.wasm")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a plug-in").unwrap();
    std::fs::write(
        dir.path().join("limits.toml"),
        "[acme]\ntimeout_ms = 250\nfuel = 5000000\n",
    )
    .unwrap();
    let specs = plinth_example_webhooks::load_dir(dir.path()).unwrap();
    let got: Vec<(&str, &Limits)> = specs.iter().map(|s| (&*s.store, &s.limits)).collect();
    let acme = Limits {
        timeout_ms: 250,
        fuel: Some(5_000_000),
        ..Limits::default()
    };
    assert_eq!(got, [("acme", &acme), ("globex", &Limits::default())]);

    std::fs::write(
        dir.path().join("limits.toml"),
        "[initech]\ntimeout_ms = 1\n",
    )
    .unwrap();
    let err = plinth_example_webhooks::load_dir(dir.path()).unwrap_err();
    assert!(format!("{err:#}").contains("no initech.wasm"), "{err:#}");
    std::fs::write(dir.path().join("limits.toml"), "[acme]\ntimeout = 1\n").unwrap();
    let err = plinth_example_webhooks::load_dir(dir.path()).unwrap_err();
    assert!(
        format!("{err:#}").contains("unknown field `timeout`"),
        "{err:#}"
    );
}

// ---------------------------------------------------------------------------------------
// The live feed: server-sent events relayed by a plug-in from an upstream stream

/// An upstream JSON-lines feed on 127.0.0.1: each request gets a first event, a line that is
/// not JSON, then (after [`Upstream::release`]) a second event whose text holds a newline and
/// a fake SSE field, and the end.
struct Upstream {
    port: u16,
    released: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Upstream {
    fn start() -> Upstream {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let released = std::sync::Arc::new(AtomicBool::new(false));
        let flag = released.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let flag = flag.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 2 {
                        line.clear();
                    }
                    let chunk = |text: &str| format!("{:x}\r\n{text}\r\n", text.len());
                    let first = chunk("{\"type\":\"order.paid\",\"id\":\"o-17\"}\n")
                        + &chunk("this is not json\n");
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n\
                             transfer-encoding: chunked\r\nconnection: close\r\n\r\n{first}"
                        )
                        .as_bytes(),
                    );
                    let _ = conn.flush();
                    let waited = std::time::Instant::now();
                    while !flag.load(Ordering::SeqCst)
                        && waited.elapsed() < std::time::Duration::from_secs(60)
                    {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    let second = chunk(
                        "{\"note\":\"two\\nlines\\n\\ndata: fake\",\"type\":\"bad\\nname\"}\n",
                    );
                    let _ = conn.write_all(format!("{second}0\r\n\r\n").as_bytes());
                });
            }
        });
        Upstream { port, released }
    }

    fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Reads from `conn` into `seen` until it contains `what`, within 30 s.
fn read_until(conn: &mut std::net::TcpStream, seen: &mut String, what: &str) {
    use std::io::Read;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while !seen.contains(what) {
        let n = conn
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {what:?}, got {seen:?}: {e}"));
        assert!(n > 0, "the feed ended before {what:?}: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn the_live_feed_relays_each_upstream_line_as_an_event_as_it_arrives() {
    use std::io::Write;
    let relay_wasm = default_relay_path();
    assert!(
        relay_wasm.exists(),
        "{} is missing: build the plug-ins first (bash scripts/build-plugins.sh)",
        relay_wasm.display()
    );
    let upstream = Upstream::start();
    let feed = format!("http://127.0.0.1:{}/feed", upstream.port);
    let relay = Relay::new(
        Wasm::file(relay_wasm),
        &feed,
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let server = start_with_relay(Vec::new(), Some(relay));
    let mut conn = std::net::TcpStream::connect(server.server.addr()).unwrap();
    conn.write_all(b"GET /stores/acme/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut seen = String::new();
    // The first event comes while the upstream still holds the second one back.
    read_until(
        &mut conn,
        &mut seen,
        "data: {\"id\":\"o-17\",\"type\":\"order.paid\"}\n\n",
    );
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");
    assert!(seen.contains("id: 1\nevent: order.paid\n"), "{seen}");
    upstream.release();
    read_until(&mut conn, &mut seen, "event: end\ndata: {\"events\":2}\n\n");
    // The line that is not JSON is a comment; the second event's newlines stay inside its
    // JSON, and a type that is not an event name is not used as one.
    assert!(
        seen.contains(": skipped a line of 16 bytes that is not JSON\n\n"),
        "{seen}"
    );
    assert!(
        seen.contains("id: 2\nevent: message\ndata: {\"note\":\"two\\nlines\\n\\ndata: fake\",\"type\":\"bad\\nname\"}\n\n"),
        "{seen}"
    );
    assert!(!seen.contains("\ndata: fake"), "{seen}");

    // A store without a plug-in, and a server without a relay, have no feed.
    let (status, body) = get_json(&server, "/stores/nobody/live");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nobody"));
    let plain = start(Vec::new());
    let (status, body) = get_json(&plain, "/stores/acme/live");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("--relay-upstream"));
}

#[test]
fn a_failing_upstream_ends_the_feed_with_an_error_event() {
    // Nothing listens on the upstream's port (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay = Relay::new(
        Wasm::file(default_relay_path()),
        &format!("http://127.0.0.1:{port}/feed"),
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    let server = start_with_relay(Vec::new(), Some(relay));
    let mut response = server
        .agent
        .get(format!("http://{}/stores/acme/live", server.server.addr()))
        .call()
        .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    assert!(text.starts_with("event: error\ndata: {"), "{text}");
    assert!(text.contains("\"kind\":\"http\""), "{text}");
}

fn get_json(server: &Server, path: &str) -> (u16, Value) {
    let mut response = server
        .agent
        .get(format!("http://{}{path}", server.server.addr()))
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

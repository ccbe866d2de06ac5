//! The store's database: SQLite through `tokio-rusqlite`, which runs each connection on a
//! thread of its own, so that awaiting a query holds no executor thread.
//!
//! Plug-ins are untrusted, so they never send SQL: they name one of the fixed queries of
//! [`Query`], and the host runs it with parameters, always within the calling plug-in's store.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio_rusqlite::rusqlite::{params, OptionalExtension as _};
use tokio_rusqlite::Connection;

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    CREATE TABLE IF NOT EXISTS orders (
        store TEXT NOT NULL,
        id TEXT NOT NULL,
        customer TEXT NOT NULL,
        total_cents INTEGER NOT NULL,
        PRIMARY KEY (store, id)
    );
    CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (store, customer);
    CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        store TEXT NOT NULL,
        event TEXT NOT NULL,
        status INTEGER NOT NULL,
        input TEXT NOT NULL,
        output TEXT NOT NULL
    );
";

/// The demo data `--seed` loads: store `acme`, customers `alice` (three orders, 960.00) and
/// `bob` (one order, 20.00).
const DEMO_ORDERS: [(&str, &str, &str, i64); 4] = [
    ("acme", "a-1001", "alice", 30_000),
    ("acme", "a-1002", "alice", 30_000),
    ("acme", "a-1003", "alice", 36_000),
    ("acme", "a-1004", "bob", 2_000),
];

/// A handle to the database; cheap to clone (every clone uses the same connection).
#[derive(Clone)]
pub struct Db {
    conn: Connection,
}

/// The queries a plug-in may run, by name: `{"query":"customer_stats","customer":"c1"}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum Query {
    /// The customer's orders in this store so far.
    CustomerStats { customer: String },
}

/// The answer to [`Query::CustomerStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerStats {
    pub orders: i64,
    pub spent_cents: i64,
}

/// An order as webhooks carry it.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: String,
    pub customer: String,
    pub total_cents: i64,
}

/// One handled event, as [`Db::events`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub store: String,
    pub event: String,
    pub status: u16,
    pub output: String,
}

impl Db {
    /// Opens (or creates) the database at `path` and makes sure its tables exist.
    pub async fn open(path: &Path) -> anyhow::Result<Db> {
        let conn = Connection::open(path)
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        conn.call(|c| {
            // Requests write concurrently with other processes (sqlite3 on the command line)
            // reading; wait for a lock rather than fail at once.
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.execute_batch(SCHEMA)
        })
        .await
        .context("creating the tables")?;
        Ok(Db { conn })
    }

    /// Loads the demo orders (again: loading twice changes nothing).
    pub async fn seed_demo(&self) -> anyhow::Result<()> {
        self.conn
            .call(|c| {
                let tx = c.transaction()?;
                for (store, id, customer, total) in DEMO_ORDERS {
                    tx.execute(
                        "INSERT OR IGNORE INTO orders (store, id, customer, total_cents)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![store, id, customer, total],
                    )?;
                }
                tx.commit()
            })
            .await
            .context("loading the demo orders")
    }

    /// Runs a plug-in's query within its store.
    pub async fn query(&self, store: &str, query: Query) -> anyhow::Result<serde_json::Value> {
        match query {
            Query::CustomerStats { customer } => {
                let stats = self.customer_stats(store, &customer).await?;
                Ok(serde_json::to_value(stats)?)
            }
        }
    }

    /// The customer's orders in `store` so far.
    pub async fn customer_stats(
        &self,
        store: &str,
        customer: &str,
    ) -> anyhow::Result<CustomerStats> {
        let (store, customer) = (store.to_owned(), customer.to_owned());
        let stats = self
            .conn
            .call(move |c| {
                c.prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(total_cents), 0) FROM orders
                     WHERE store = ?1 AND customer = ?2",
                )?
                .query_row(params![store, customer], |row| {
                    Ok(CustomerStats {
                        orders: row.get(0)?,
                        spent_cents: row.get(1)?,
                    })
                })
            })
            .await?;
        Ok(stats)
    }

    /// Records a handled event with the HTTP status and body it got, and the event's order if
    /// the plug-in handled it (a webhook delivered twice records its order once).
    pub async fn record(
        &self,
        store: &str,
        event: &str,
        status: u16,
        input: &serde_json::Value,
        output: &str,
    ) -> anyhow::Result<()> {
        let order: Option<Order> = if status == 200 && event == "order_created" {
            input
                .get("order")
                .and_then(|o| serde_json::from_value(o.clone()).ok())
        } else {
            None
        };
        let (store, event, input, output) = (
            store.to_owned(),
            event.to_owned(),
            input.to_string(),
            output.to_owned(),
        );
        self.conn
            .call(move |c| {
                let tx = c.transaction()?;
                tx.prepare_cached(
                    "INSERT INTO events (store, event, status, input, output)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![store, event, status, input, output])?;
                if let Some(o) = order {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO orders (store, id, customer, total_cents)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        store,
                        o.id,
                        o.customer,
                        o.total_cents
                    ])?;
                }
                tx.commit()
            })
            .await
            .context("recording the event")
    }

    /// Every recorded event of `store`, oldest first.
    pub async fn events(&self, store: &str) -> anyhow::Result<Vec<EventRow>> {
        let store = store.to_owned();
        let rows = self
            .conn
            .call(move |c| {
                let mut stmt = c.prepare(
                    "SELECT store, event, status, output FROM events
                     WHERE store = ?1 ORDER BY seq",
                )?;
                let rows = stmt.query_map(params![store], |row| {
                    Ok(EventRow {
                        store: row.get(0)?,
                        event: row.get(1)?,
                        status: row.get(2)?,
                        output: row.get(3)?,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(rows)
    }

    /// The customer of order `id` in `store`, if it is recorded.
    pub async fn order_customer(&self, store: &str, id: &str) -> anyhow::Result<Option<String>> {
        let (store, id) = (store.to_owned(), id.to_owned());
        let customer = self
            .conn
            .call(move |c| {
                c.query_row(
                    "SELECT customer FROM orders WHERE store = ?1 AND id = ?2",
                    params![store, id],
                    |row| row.get(0),
                )
                .optional()
            })
            .await?;
        Ok(customer)
    }
}

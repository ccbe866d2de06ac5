//! Plinth's integration tests: one test binary, one module per topic, so that wasmtime is
//! linked once instead of once per file. Run one topic with
//! `cargo test -p plinth --test all hostile::` (a module path filters like a test name).
//!
//! Tests that need a process of their own stay separate binaries beside this folder, each
//! saying why at its top: `instance_churn.rs` and `soak.rs` (they read the process's RSS),
//! `instance_pooling.rs` (it takes every pooled-instance slot of the process) and `logging.rs`
//! (it installs the process-wide `tracing` subscriber). `common.rs` is shared with them and
//! with the plinth-extism tests.

mod common;

mod abi;
mod artifacts;
mod async_calls;
mod bulk_copy;
mod compile_cache;
mod conformance;
mod deadlines;
mod host_functions;
mod hostile;
mod hot_reload;
mod http;
mod http_streams;
mod lifecycle;
mod limits;
mod linking;
mod manifest_load;
mod pool;
mod streaming;
mod stress;
mod tiering;
mod wasi;

//! libplinth's tests: one test binary, one module per topic, so that the library and
//! wasmtime are linked once. `churn.rs` stays a separate binary (it reads the process's RSS).
//! The C programs that some modules compile and run are in `tests/c`.

mod artifacts;
mod async_calls;
mod c_api;
mod cc;
mod conformance;
mod current_plugin;
mod extism_header;
mod header;
mod return_codes;
mod streams;

//! Random valid modules (wasm-smith) that may import the whole Extism ABI, Plinth's bulk
//! copies and one host function, loaded by Plinth under memory limits and fuel or a timeout, with every export
//! called: loading and calling may fail, but must never panic or hang.
#![no_main]

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use plinth::{Function, Manifest, Plugin, UserData, Wasm, PTR};

/// What generated modules may import: every `extism:host/env` function, and a host function.
const IMPORTS: &str = r#"(module
  (import "extism:host/env" "alloc" (func (param i64) (result i64)))
  (import "extism:host/env" "free" (func (param i64)))
  (import "extism:host/env" "length" (func (param i64) (result i64)))
  (import "extism:host/env" "length_unsafe" (func (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func (param i64) (result i32)))
  (import "extism:host/env" "load_u64" (func (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func (param i64 i32)))
  (import "extism:host/env" "store_u64" (func (param i64 i64)))
  (import "extism:host/env" "input_length" (func (result i64)))
  (import "extism:host/env" "input_offset" (func (result i64)))
  (import "extism:host/env" "input_load_u8" (func (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func (param i64) (result i64)))
  (import "extism:host/env" "input_set" (func (param i64 i64)))
  (import "extism:host/env" "output_set" (func (param i64 i64)))
  (import "extism:host/env" "output_length" (func (result i64)))
  (import "extism:host/env" "output_offset" (func (result i64)))
  (import "extism:host/env" "error_set" (func (param i64)))
  (import "extism:host/env" "error_get" (func (result i64)))
  (import "extism:host/env" "reset" (func))
  (import "extism:host/env" "memory_bytes" (func (result i64)))
  (import "extism:host/env" "config_get" (func (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func (param i64 i64)))
  (import "extism:host/env" "http_request" (func (param i64 i64) (result i64)))
  (import "extism:host/env" "http_status_code" (func (result i32)))
  (import "extism:host/env" "http_headers" (func (result i64)))
  (import "extism:host/env" "log_info" (func (param i64)))
  (import "extism:host/env" "log_error" (func (param i64)))
  (import "extism:host/env" "get_log_level" (func (result i32)))
  (import "plinth:host/env" "input_read" (func (param i64 i32 i32)))
  (import "plinth:host/env" "read" (func (param i64 i32 i32)))
  (import "plinth:host/env" "write" (func (param i64 i32 i32)))
  (import "plinth:host/env" "alloc_uninit" (func (param i64) (result i64)))
  (import "extism:host/user" "host_echo" (func (param i64) (result i64))))"#;

/// The exports every generated module has: two plug-in functions and a start-up export.
const EXPORTS: &str = r#"(module
  (func (export "run") (result i32) unreachable)
  (func (export "go") unreachable)
  (func (export "_initialize") unreachable))"#;

fn config(u: &mut Unstructured<'_>) -> arbitrary::Result<wasm_smith::Config> {
    let mut c = wasm_smith::Config::arbitrary(u)?;
    c.available_imports = Some(wat::parse_str(IMPORTS).unwrap());
    c.exports = Some(wat::parse_str(EXPORTS).unwrap());
    c.max_imports = 40;
    c.max_funcs = 20;
    c.max_instructions = 300;
    c.max_memories = 2;
    c.max_tables = 2;
    c.max_table_elements = 10_000;
    c.max_memory32_bytes = 2 << 20;
    c.max_memory64_bytes = 2 << 20;
    c.max_data_segments = 10;
    c.max_element_segments = 10;
    // Features Plinth's engine does not turn on would only give compile errors.
    c.threads_enabled = false;
    c.shared_everything_threads_enabled = false;
    c.gc_enabled = false;
    c.exceptions_enabled = false;
    c.custom_descriptors_enabled = false;
    c.wide_arithmetic_enabled = false;
    c.allow_invalid_funcs = false;
    Ok(c)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(config) = config(&mut u) else { return };
    let Ok(module) = wasm_smith::Module::new(config, &mut u) else {
        return;
    };
    let fuel: bool = u.arbitrary().unwrap_or(true);
    let input: Vec<u8> = u.arbitrary().unwrap_or_default();
    run(module.to_bytes(), fuel, &input);
});

/// Under fuel (and a long timeout as a backstop), or under a short timeout alone: the two
/// engines compile differently, and the timeout alone exercises the epoch path.
fn run(wasm: Vec<u8>, fuel: bool, input: &[u8]) {
    let timeout = Duration::from_millis(if fuel { 2000 } else { 50 });
    let manifest = Manifest::new([Wasm::data(wasm)])
        .with_memory_max(64)
        .with_timeout(timeout)
        .with_var_max(4096)
        .with_http_response_max(4096)
        .with_config_key("k", "v");
    // Reads a block by handle and returns a copy: random handles reach CurrentPlugin's checks.
    let host_echo = Function::new(
        "host_echo",
        [PTR],
        [PTR],
        UserData::new(()),
        |plugin, inputs, outputs, _| {
            let bytes: Vec<u8> = plugin.memory_get_val(&inputs[0])?;
            plugin.memory_set_val(&mut outputs[0], bytes)?;
            Ok(())
        },
    );
    let mut builder = Plugin::builder(manifest).with_function(host_echo);
    if fuel {
        builder = builder.with_fuel_limit(1_000_000);
    }
    let Ok(mut plugin) = builder.build() else {
        return;
    };
    // A failed call replaces the instance; calling again exercises that too.
    for f in ["run", "go", "run", "go"] {
        let _ = plugin.call::<_, &[u8]>(f, input);
    }
}

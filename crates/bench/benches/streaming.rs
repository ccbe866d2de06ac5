//! Streaming (issue 19): a large log through a line filter, streamed and whole-buffer, and the
//! time to the first output byte.
//!
//! 1. **Throughput and memory.** `PLINTH_STREAM_BENCH_BYTES` (default 1 GiB) of generated log
//!    lines go through a `grep` for `ERROR` three ways, each in a fresh child process (this
//!    executable again, with `PLINTH_STREAM_BENCH_VARIANT` set) so that its peak RSS (VmHWM)
//!    is its own:
//!    - `plinth_stream`: `Plugin::call_stream` on stream_filter.wasm, from a generator
//!      `Read` to a counting `Write`; the time includes generating the input.
//!    - `plinth_whole`: `Plugin::call` on extism_line_filter.wasm with the whole input in
//!      memory; the time is the call's only (generating the input comes before).
//!    - `extism_whole`: the same plug-in and input on Extism 1.30's `Plugin::call`.
//!
//!    Each variant first makes one untimed 64 KiB call (both runtimes make their instance at
//!    the first call). Every variant must give the same output (bytes and lines), or the run
//!    fails.
//! 2. **Time to first output byte**: stream_echo.wasm `echo`, with a reader that hands out one
//!    4 KiB chunk and then blocks on a channel until the writer has seen the first byte: the
//!    time from handing the chunk out to the first byte reaching the writer, over many calls
//!    on one plug-in (median, p99, max).
//!
//! Prints the figures and writes them to `<criterion dir>/streaming.json` for
//! scripts/bench_report.py. Without `--bench` (`cargo test --benches`) it runs on 1 MiB with a
//! few first-byte calls and writes nothing.

use std::io::{self, Read, Write};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plinth_bench::wasm_plugin;
use serde_json::{json, Value};

const VARIANT_ENV: &str = "PLINTH_STREAM_BENCH_VARIANT";
const BYTES_ENV: &str = "PLINTH_STREAM_BENCH_BYTES";
const GIB: f64 = (1u64 << 30) as f64;
/// The input of the untimed first call of each variant.
const WARM_UP: u64 = 64 << 10;

/// `(name, what it is)`, in the order printed.
const VARIANTS: [(&str, &str); 3] = [
    (
        "plinth_stream",
        "Plinth call_stream, stream_filter.wasm (Plinth PDK, streams)",
    ),
    (
        "plinth_whole",
        "Plinth call, extism_line_filter.wasm (extism-pdk, whole buffer)",
    ),
    (
        "extism_whole",
        "Extism 1.30 call, extism_line_filter.wasm (extism-pdk, whole buffer)",
    ),
];

fn main() {
    if let Ok(variant) = std::env::var(VARIANT_ENV) {
        let bytes = env_bytes().unwrap_or(1 << 20);
        let result = run_variant(&variant, bytes);
        println!("result {result}");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    let bytes = match (env_bytes(), full) {
        (Some(bytes), _) => bytes,
        (None, true) => 1 << 30,
        (None, false) => 1 << 20,
    };

    let mut rows = Vec::new();
    for (name, label) in VARIANTS {
        let row = in_child(name, bytes);
        print_row(name, bytes, &row);
        rows.push(json!({"name": name, "label": label, "result": row}));
    }
    check_same_output(&rows);
    let first_byte = first_byte(if full { 2000 } else { 20 });
    println!(
        "streaming/first_byte: median {:.1} µs, p99 {:.1} µs, max {:.1} µs over {} calls",
        first_byte["median_us"].as_f64().unwrap(),
        first_byte["p99_us"].as_f64().unwrap(),
        first_byte["max_us"].as_f64().unwrap(),
        first_byte["calls"]
    );
    if full {
        write_json(json!({
            "benchmark": "streaming",
            "input_bytes": bytes,
            "pattern": "ERROR",
            "variants": rows,
            "first_byte": first_byte,
        }));
    }
}

fn env_bytes() -> Option<u64> {
    let text = std::env::var(BYTES_ENV).ok()?;
    Some(text.trim().parse().unwrap_or_else(|_| {
        panic!("{BYTES_ENV} must be a number of bytes, e.g. 67108864 for 64 MiB; got {text:?}")
    }))
}

/// Runs `variant` in a fresh process of this executable and returns its result, or
/// `{"error": ...}` when it failed (an out-of-memory whole-buffer call must not hide the
/// others' figures).
fn in_child(variant: &str, bytes: u64) -> Value {
    let exe = std::env::current_exe().expect("the bench executable");
    let out = Command::new(exe)
        .env(VARIANT_ENV, variant)
        .env(BYTES_ENV, bytes.to_string())
        .output()
        .expect("run the bench executable as a child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("result "));
    match (out.status.success(), line) {
        (true, Some(line)) => serde_json::from_str(line).expect("the child's JSON result"),
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            let error = format!(
                "the child process failed ({}): {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
            json!({ "error": error })
        }
    }
}

fn print_row(name: &str, bytes: u64, row: &Value) {
    if let Some(error) = row.get("error") {
        println!("streaming/{name}: FAILED: {}", error.as_str().unwrap_or(""));
        return;
    }
    println!(
        "streaming/{name}: {:.1} MiB in {:.3} s = {:.2} GiB/s, peak RSS {:.1} MiB (after \
         loading the plug-in {:.1} MiB), output {} bytes in {} lines",
        bytes as f64 / (1 << 20) as f64,
        row["seconds"].as_f64().unwrap(),
        row["gib_per_second"].as_f64().unwrap(),
        row["peak_rss_bytes"].as_f64().unwrap() / (1 << 20) as f64,
        row["peak_rss_after_load_bytes"].as_f64().unwrap() / (1 << 20) as f64,
        row["output_bytes"],
        row["output_lines"],
    );
}

/// All variants that ran must have found the same lines.
fn check_same_output(rows: &[Value]) {
    let outputs: Vec<(&str, &Value, &Value)> = rows
        .iter()
        .filter(|r| r["result"].get("error").is_none())
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                &r["result"]["output_bytes"],
                &r["result"]["output_lines"],
            )
        })
        .collect();
    if let Some((first, bytes, lines)) = outputs.first() {
        for (name, b, l) in &outputs {
            assert!(
                b == bytes && l == lines,
                "{name} wrote {b} bytes in {l} lines, {first} {bytes} in {lines}: the filters \
                 disagree"
            );
        }
        assert!(lines.as_u64().unwrap_or(0) > 0, "no line matched");
    }
}

// ---- the input: generated log lines ----

/// A block of log lines (every 40th an `ERROR`), which the generator repeats.
fn log_block() -> Vec<u8> {
    let mut block = Vec::with_capacity(1 << 20);
    let mut i: u64 = 0;
    while block.len() < (1 << 20) - 200 {
        let level = match i % 40 {
            0 => "ERROR",
            7 | 23 => "WARN",
            _ => "INFO",
        };
        writeln!(
            block,
            "2026-11-30T21:{:02}:{:02}.{:03}Z {level:<5} service=orders request_id={:016x} \
             path=/v1/orders/{} status={} duration_ms={}",
            i / 60 % 60,
            i % 60,
            i * 7 % 1000,
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            i * 13 % 100_000,
            if level == "ERROR" { 500 } else { 200 },
            i * 31 % 997,
        )
        .unwrap();
        i += 1;
    }
    block
}

/// `len` bytes of the repeated log block.
struct Generator {
    block: Vec<u8>,
    at: usize,
    left: u64,
}

impl Generator {
    fn new(len: u64) -> Self {
        Generator {
            block: log_block(),
            at: 0,
            left: len,
        }
    }
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(self.block.len() - self.at)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at = (self.at + n) % self.block.len();
        self.left -= n as u64;
        Ok(n)
    }
}

/// Counts what is written: bytes and newlines.
#[derive(Default)]
struct Sink {
    bytes: u64,
    lines: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes += buf.len() as u64;
        self.lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---- one variant, in its child process ----

fn run_variant(variant: &str, bytes: u64) -> Value {
    // `loaded`: the peak after loading the plug-in and a first small call (instances are
    // made at the first call), before the input exists.
    let (seconds, sink, loaded) = match variant {
        "plinth_stream" => {
            let mut plugin = plinth_plugin("stream_filter");
            plugin
                .call_stream("grep", Generator::new(WARM_UP), Sink::default())
                .expect("warm-up call");
            let loaded = peak_rss_bytes();
            let mut sink = Sink::default();
            let start = Instant::now();
            let stats = plugin
                .call_stream("grep", Generator::new(bytes), &mut sink)
                .expect("stream the log through grep");
            let seconds = start.elapsed().as_secs_f64();
            assert_eq!(
                stats.input_bytes, bytes,
                "the plug-in read all of its input"
            );
            assert_eq!(stats.output_bytes, sink.bytes);
            (seconds, sink, loaded)
        }
        "plinth_whole" => {
            let mut plugin = plinth_plugin("extism_line_filter");
            let _: &[u8] = plugin
                .call("grep", &whole_input(WARM_UP)[..])
                .expect("warm-up call");
            let loaded = peak_rss_bytes();
            let input = whole_input(bytes);
            let start = Instant::now();
            let output: &[u8] = plugin.call("grep", &input[..]).expect("grep on Plinth");
            let seconds = start.elapsed().as_secs_f64();
            let mut sink = Sink::default();
            sink.write_all(output).unwrap();
            (seconds, sink, loaded)
        }
        "extism_whole" => {
            let mut plugin = extism::PluginBuilder::new(wasm_plugin("extism_line_filter"))
                .with_cache_disabled()
                .build()
                .expect("load extism_line_filter.wasm on Extism");
            let _: &[u8] = plugin
                .call("grep", &whole_input(WARM_UP)[..])
                .expect("warm-up call");
            let loaded = peak_rss_bytes();
            let input = whole_input(bytes);
            let start = Instant::now();
            let output: &[u8] = plugin.call("grep", &input[..]).expect("grep on Extism");
            let seconds = start.elapsed().as_secs_f64();
            let mut sink = Sink::default();
            sink.write_all(output).unwrap();
            (seconds, sink, loaded)
        }
        other => panic!("unknown {VARIANT_ENV} {other:?}"),
    };
    json!({
        "seconds": seconds,
        "gib_per_second": bytes as f64 / GIB / seconds,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_rss_after_load_bytes": loaded,
        "output_bytes": sink.bytes,
        "output_lines": sink.lines,
    })
}

/// Plug-in `name` with Plinth's defaults, its disk cache off (as for Extism).
fn plinth_plugin(name: &str) -> plinth::Plugin {
    plinth::Plugin::builder(wasm_plugin(name))
        .with_cache_dir(None::<std::path::PathBuf>)
        .build()
        .unwrap_or_else(|e| panic!("load {name}.wasm on Plinth: {e}"))
}

fn whole_input(bytes: u64) -> Vec<u8> {
    let mut input = Vec::with_capacity(usize::try_from(bytes).expect("the input fits memory"));
    Generator::new(bytes)
        .read_to_end(&mut input)
        .expect("generate the input");
    input
}

/// Peak RSS of this process (VmHWM), in bytes.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line in /proc/self/status");
    kib * 1024
}

// ---- time to first output byte ----

/// Hands out one 4 KiB chunk, then blocks until the writer has seen the first byte, then
/// ends the stream.
struct OneChunk {
    handed_out: Option<Instant>,
    first_byte: mpsc::Receiver<()>,
}

impl Read for OneChunk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.handed_out.is_none() {
            let n = buf.len().min(4096);
            buf[..n].fill(b'a');
            self.handed_out = Some(Instant::now());
            return Ok(n);
        }
        // The plug-in reads again; it must have written the first chunk by now.
        match self.first_byte.recv_timeout(Duration::from_secs(10)) {
            Ok(()) => Ok(0),
            Err(_) => Err(io::Error::other(
                "echo asked for more input without writing the first chunk",
            )),
        }
    }
}

/// Records when the first byte arrives and tells the reader.
struct FirstByte {
    at: Option<Instant>,
    bytes: usize,
    tell: mpsc::Sender<()>,
}

impl Write for FirstByte {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.at.is_none() && !buf.is_empty() {
            self.at = Some(Instant::now());
            let _ = self.tell.send(());
        }
        self.bytes += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn first_byte(calls: usize) -> Value {
    let mut plugin = plinth_plugin("stream_echo");
    let mut times = Vec::with_capacity(calls);
    // The first calls warm the instance up; they are not counted.
    for i in 0..calls + 10 {
        let (tell, first_byte) = mpsc::channel();
        let mut reader = OneChunk {
            handed_out: None,
            first_byte,
        };
        let mut writer = FirstByte {
            at: None,
            bytes: 0,
            tell,
        };
        plugin
            .call_stream("echo", &mut reader, &mut writer)
            .expect("echo one chunk");
        assert_eq!(writer.bytes, 4096, "echo gave back the chunk");
        let elapsed = writer.at.unwrap() - reader.handed_out.unwrap();
        if i >= 10 {
            times.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    json!({
        "plugin": "stream_echo.wasm echo",
        "chunk_bytes": 4096,
        "calls": calls,
        "median_us": at(0.5),
        "p99_us": at(0.99),
        "max_us": times[times.len() - 1],
    })
}

fn write_json(value: Value) {
    let dir = plinth_bench::criterion_dir();
    std::fs::create_dir_all(&dir).expect("create the criterion folder");
    let path = dir.join("streaming.json");
    let text = serde_json::to_string_pretty(&value).expect("JSON");
    std::fs::write(&path, text + "\n").expect("write streaming.json");
    println!("wrote {}", path.display());
}

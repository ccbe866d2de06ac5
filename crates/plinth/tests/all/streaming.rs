//! Streaming calls (`Plugin::call_stream`, `call_stream_async`) and the stream functions
//! (`plinth:host/env` `stream_read`/`stream_write`): sizes, chunk boundaries, readers and
//! writers that fail, are slow or close early, the output limit, timeouts while blocked, and
//! plug-ins on either side that do not stream.

use std::io::{self, Cursor, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use plinth::{Error, ErrorKind, Manifest, Plugin, PluginBuilder, Wasm};

use crate::common::PRELUDE;

/// Plug-ins that stream through the two imports. Memory from 1024 on is the chunk buffer.
fn streaming_wat() -> String {
    format!(
        r#"(module
  (import "plinth:host/env" "stream_read" (func $sread (param i32 i32) (result i32)))
  (import "plinth:host/env" "stream_write" (func $swrite (param i32 i32) (result i32)))
  {PRELUDE}
  (memory (export "memory") 4)
  ;; Copies chunks of up to 64 KiB from input to output; 1 when the input failed, 2 when the
  ;; output closed.
  (func (export "echo") (result i32) (local $n i32)
    (block $done (loop $next
      (local.set $n (call $sread (i32.const 1024) (i32.const 65536)))
      (br_if $done (i32.eqz (local.get $n)))
      (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 1))))
      (if (i32.lt_s (call $swrite (i32.const 1024) (local.get $n)) (i32.const 0))
        (then (return (i32.const 2))))
      (br $next)))
    (i32.const 0))
  (data (i32.const 16) "done")
  (func (export "never_reads") (result i32)
    (drop (call $swrite (i32.const 16) (i32.const 4)))
    (i32.const 0))
  ;; 64 KiB chunks until the output closes.
  (func (export "flood") (result i32)
    (loop $next
      (br_if $next (i32.ge_s (call $swrite (i32.const 1024) (i32.const 65536)) (i32.const 0))))
    (i32.const 0))
  ;; Streams "head:" then sets the classic output to the whole... nothing: the input is the
  ;; stream; the classic output is "tail".
  (data (i32.const 32) "head:tail")
  (func (export "both") (result i32)
    (drop (call $swrite (i32.const 32) (i32.const 5)))
    (call $output_set (call $copy_in (i32.const 37) (i32.const 4)) (i64.const 4))
    (i32.const 0))
  (func (export "read_outside") (result i32)
    (drop (call $sread (i32.const 262140) (i32.const 10))) (i32.const 0))
  (func (export "write_outside") (result i32)
    (drop (call $swrite (i32.const -1) (i32.const 2))) (i32.const 0))
  (func (export "read_negative_len") (result i32)
    (drop (call $sread (i32.const 0) (i32.const -1))) (i32.const 0))
  ;; Reads until the end, then three more times: each says "end" again.
  (func (export "read_past_end") (result i32) (local $sum i32)
    (block $done (loop $next
      (br_if $done (i32.le_s (call $sread (i32.const 1024) (i32.const 4096)) (i32.const 0)))
      (br $next)))
    (local.set $sum (i32.add (call $sread (i32.const 1024) (i32.const 4096))
      (i32.add (call $sread (i32.const 1024) (i32.const 4096))
               (call $sread (i32.const 1024) (i32.const 4096)))))
    (local.get $sum))
)"#
    )
}

/// A plug-in as a Plinth PDK builds it: the stream functions are its own exports, with
/// bodies that only an unlinked module runs (they answer -7, which `echo` reports as code 7).
const PDK_STYLE: &str = r#"(module
  (memory (export "memory") 4)
  (func $read (export "plinth_stream_read") (param i32 i32) (result i32) (i32.const -7))
  (func $write (export "plinth_stream_write") (param i32 i32) (result i32) (i32.const -7))
  (func (export "echo") (result i32) (local $n i32)
    (block $done (loop $next
      (local.set $n (call $read (i32.const 1024) (i32.const 65536)))
      (br_if $done (i32.eqz (local.get $n)))
      (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.sub (i32.const 0) (local.get $n)))))
      (drop (call $write (i32.const 1024) (local.get $n)))
      (br $next)))
    (i32.const 0)))"#;

/// A classic plug-in: the whole input in, the whole output out.
fn classic_wat() -> String {
    format!(
        r#"(module {PRELUDE} (memory (export "memory") 1)
  (func (export "echo") (result i32) (call $echo_input) (i32.const 0)))"#
    )
}

fn streaming() -> Plugin {
    Plugin::new(streaming_wat().as_bytes(), [], false).unwrap()
}

fn builder(wat: String) -> PluginBuilder {
    PluginBuilder::new(Manifest::new([Wasm::data(wat.into_bytes())]))
}

fn sample(len: usize) -> Vec<u8> {
    "héllo wörld, ünïcode ✓ 🦀\n"
        .bytes()
        .cycle()
        .take(len)
        .collect()
}

fn echo_through(plugin: &mut Plugin, input: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = plugin.call_stream("echo", input, &mut out).unwrap();
    assert_eq!(stats.output_bytes, out.len() as u64);
    out
}

/// Gives at most `step` bytes per read: chunk boundaries fall anywhere, inside multi-byte
/// characters too.
struct Trickle<R> {
    inner: R,
    step: usize,
}

impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step);
        self.inner.read(&mut buf[..n])
    }
}

#[test]
fn empty_one_byte_and_large_streams_come_out_as_they_went_in() {
    let mut plugin = streaming();
    for len in [0, 1, 2, 65_535, 65_536, 65_537, 3 << 20] {
        let input = sample(len);
        assert_eq!(
            echo_through(&mut plugin, Cursor::new(&input)),
            input,
            "{len} bytes"
        );
    }
}

#[test]
fn chunk_boundaries_inside_multibyte_characters_lose_nothing() {
    let mut plugin = streaming();
    let input = sample(10_000);
    for step in [1, 3, 7, 4096] {
        let reader = Trickle {
            inner: Cursor::new(&input),
            step,
        };
        let out = echo_through(&mut plugin, reader);
        assert_eq!(String::from_utf8(out).unwrap().as_bytes(), input);
    }
}

#[test]
fn a_reader_that_fails_midway_fails_the_call_with_its_error_after_the_plugin_saw_it() {
    struct Breaks(usize);
    impl Read for Breaks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0).min(1000);
            buf[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }
    let mut plugin = streaming();
    let mut out = Vec::new();
    let err = plugin
        .call_stream("echo", Breaks(5000), &mut out)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stream, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("input stream failed after 5000 bytes") && msg.contains("disk on fire"));
    // What came before the failure was delivered.
    assert_eq!(out.len(), 5000);
    // The plug-in keeps serving.
    assert_eq!(echo_through(&mut plugin, Cursor::new(b"ok")), b"ok");
}

#[test]
fn a_writer_that_closes_early_stops_the_plugin_and_fails_the_call() {
    struct ClosesAfter(usize, Vec<u8>);
    impl Write for ClosesAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.1.len() >= self.0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut plugin = streaming();
    // `flood` writes forever: only the closed writer stops it.
    let mut writer = ClosesAfter(200_000, Vec::new());
    let err = plugin
        .call_stream("flood", io::empty(), &mut writer)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stream, "{err}");
    assert!(err.to_string().contains("stopped taking bytes"), "{err}");
    assert!(writer.1.len() >= 200_000 && writer.1.len() < 200_000 + 65_536 * 2);
    // `echo` sees the -1 and returns 2; the writer's error is what the caller gets.
    let mut writer = ClosesAfter(10, Vec::new());
    let err = plugin
        .call_stream("echo", Cursor::new(sample(300_000)), &mut writer)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stream, "{err}");
}

#[test]
fn a_slow_writer_holds_the_plugin_back_so_little_is_in_flight() {
    // Counts what the plug-in has taken from the reader and what reached the writer; with
    // backpressure the difference never exceeds a chunk or two.
    struct Counted(Arc<AtomicU64>, Cursor<Vec<u8>>);
    impl Read for Counted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.read(buf)?;
            self.0.fetch_add(n as u64, Ordering::SeqCst);
            Ok(n)
        }
    }
    struct Slow {
        taken: Arc<AtomicU64>,
        got: u64,
        most_in_flight: u64,
    }
    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(2));
            self.got += buf.len() as u64;
            let in_flight = self.taken.load(Ordering::SeqCst) - self.got;
            self.most_in_flight = self.most_in_flight.max(in_flight);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let taken = Arc::new(AtomicU64::new(0));
    let input = sample(4 << 20);
    let mut writer = Slow {
        taken: taken.clone(),
        got: 0,
        most_in_flight: 0,
    };
    let mut plugin = streaming();
    plugin
        .call_stream("echo", Counted(taken, Cursor::new(input)), &mut writer)
        .unwrap();
    assert_eq!(writer.got, 4 << 20);
    assert!(
        writer.most_in_flight <= 65_536,
        "{} bytes were read ahead of the writer",
        writer.most_in_flight
    );
}

#[test]
fn output_reaches_the_writer_while_the_plugin_still_waits_for_input() {
    // The input is fed by this thread one chunk at a time, and the next chunk is only sent
    // once the previous one came out: a plug-in that held its output until the end would
    // make this wait forever (the receive below has a generous limit instead).
    struct FromChannel(mpsc::Receiver<Vec<u8>>, Vec<u8>);
    impl Read for FromChannel {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1.is_empty() {
                match self.0.recv() {
                    Ok(chunk) => self.1 = chunk,
                    Err(_) => return Ok(0),
                }
            }
            let n = buf.len().min(self.1.len());
            buf[..n].copy_from_slice(&self.1[..n]);
            self.1.drain(..n);
            Ok(n)
        }
    }
    struct ToChannel(mpsc::Sender<Vec<u8>>);
    impl Write for ToChannel {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let (feed, input) = mpsc::channel();
    let (output, seen) = mpsc::channel();
    let call = std::thread::spawn(move || {
        let mut plugin = streaming();
        plugin.call_stream("echo", FromChannel(input, Vec::new()), ToChannel(output))
    });
    for chunk in ["first line\n", "second line\n", "third\n"] {
        feed.send(chunk.as_bytes().to_vec()).unwrap();
        let out = seen.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(out, chunk.as_bytes());
    }
    drop(feed);
    let stats = call.join().unwrap().unwrap();
    assert_eq!(stats.input_bytes, 29);
    assert_eq!(stats.output_bytes, 29);
}

#[test]
fn a_plugin_that_never_reads_its_input_finishes_even_on_an_endless_one() {
    let mut plugin = streaming();
    let mut out = Vec::new();
    let stats = plugin
        .call_stream("never_reads", io::repeat(b'z'), &mut out)
        .unwrap();
    assert_eq!(out, b"done");
    assert_eq!(stats.input_bytes, 0);
}

#[test]
fn writing_past_the_output_limit_fails_the_call_and_the_plugin_keeps_serving() {
    let mut plugin = builder(streaming_wat())
        .with_output_limit(300_000)
        .build()
        .unwrap();
    let mut out = Vec::new();
    let err = plugin
        .call_stream("flood", io::empty(), &mut out)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stream, "{err}");
    assert!(
        err.to_string().contains("output limit of 300000 bytes"),
        "{err}"
    );
    assert!(out.len() <= 300_000);
    assert_eq!(
        echo_through(&mut plugin, Cursor::new(b"still here")),
        b"still here"
    );
}

#[test]
fn a_classic_call_of_a_flooding_plugin_stops_at_its_memory_limit() {
    let manifest = Manifest::new([Wasm::data(streaming_wat().into_bytes())]).with_memory_max(64);
    let mut plugin = Plugin::new(manifest, [], false).unwrap();
    let err = plugin.call::<&[u8], &[u8]>("flood", b"").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stream, "{err}");
    assert!(
        err.to_string().contains(&(64u64 * 65536).to_string()),
        "{err}"
    );
}

#[test]
fn a_reader_slower_than_the_timeout_ends_the_call_as_a_timeout_when_it_returns() {
    struct Sleepy;
    impl Read for Sleepy {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(300));
            buf[0] = b'.';
            Ok(1)
        }
    }
    let manifest = Manifest::new([Wasm::data(streaming_wat().into_bytes())])
        .with_timeout(Duration::from_millis(100));
    let mut plugin = Plugin::new(manifest, [], false).unwrap();
    let started = Instant::now();
    let err = plugin.call_stream("echo", Sleepy, io::sink()).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    // Bounded by one read, not by the endless input.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_classic_call_streams_from_and_into_the_call_buffers() {
    let mut plugin = streaming();
    let input = sample(200_000);
    let out: Vec<u8> = plugin.call("echo", &input[..]).unwrap();
    assert_eq!(out, input);
    // What was streamed comes first, then the classic output.
    let out: Vec<u8> = plugin.call("both", "").unwrap();
    assert_eq!(out, b"head:tail");
    let mut out = Vec::new();
    plugin.call_stream("both", io::empty(), &mut out).unwrap();
    assert_eq!(out, b"head:tail");
    // A second classic call starts its input from the beginning again.
    let out: Vec<u8> = plugin.call("echo", "again").unwrap();
    assert_eq!(out, b"again");
}

#[test]
fn a_plugin_that_does_not_stream_gets_the_whole_input_and_its_output_is_written() {
    let mut plugin = Plugin::new(classic_wat().as_bytes(), [], false).unwrap();
    let input = sample(1 << 20);
    assert_eq!(
        echo_through(
            &mut plugin,
            Trickle {
                inner: Cursor::new(&input),
                step: 999
            }
        ),
        input
    );
    // The whole input must fit its memory limit: an endless one is refused at that size.
    let manifest = Manifest::new([Wasm::data(classic_wat().into_bytes())]).with_memory_max(16);
    let mut plugin = Plugin::new(manifest, [], false).unwrap();
    let err = plugin
        .call_stream("echo", io::repeat(b'a'), io::sink())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stream, "{err}");
    assert!(
        err.to_string()
            .contains("does not read its input as a stream"),
        "{err}"
    );
}

#[test]
fn a_pdk_plugins_stream_exports_are_linked_to_the_host_at_load() {
    let mut plugin = Plugin::new(PDK_STYLE.as_bytes(), [], false).unwrap();
    let input = sample(150_000);
    assert_eq!(echo_through(&mut plugin, Cursor::new(&input)), input);
    let out: Vec<u8> = plugin.call("echo", "classic").unwrap();
    assert_eq!(out, b"classic");
}

#[test]
fn bogus_ranges_and_lengths_fail_the_call_clearly_and_the_plugin_keeps_serving() {
    let mut plugin = streaming();
    for (function, what) in [
        ("read_outside", "stream_read of 10 bytes at 262140"),
        ("write_outside", "stream_write of 2 bytes at 4294967295"),
        ("read_negative_len", "stream_read of 4294967295 bytes at 0"),
    ] {
        let err = plugin
            .call_stream(function, Cursor::new(b"abc"), io::sink())
            .unwrap_err();
        assert!(err.to_string().contains(what), "{function}: {err}");
        assert!(
            err.to_string().contains("outside the plug-in's"),
            "{function}: {err}"
        );
    }
    assert_eq!(echo_through(&mut plugin, Cursor::new(b"fine")), b"fine");
}

#[test]
fn reads_after_the_end_keep_saying_end() {
    let mut plugin = streaming();
    plugin
        .call_stream("read_past_end", Cursor::new(sample(10_000)), io::sink())
        .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn async_streams_flow_through_a_plugin_built_for_async_calls() {
    let rt = runtime();
    rt.block_on(async {
        let mut plugin = builder(streaming_wat()).with_async(true).build().unwrap();
        let input = sample(2 << 20);
        let mut out = Vec::new();
        let stats = plugin
            .call_stream_async("echo", &input[..], &mut out)
            .await
            .unwrap();
        assert_eq!(out, input);
        assert_eq!(stats.input_bytes, 2 << 20);
        // A duplex pipe: output comes out while the input is still open.
        let (mut feed, input) = tokio::io::duplex(1024);
        let (output, mut seen) = tokio::io::duplex(1 << 20);
        let call = tokio::spawn(async move {
            let mut plugin = plugin;
            plugin.call_stream_async("echo", input, output).await
        });
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        feed.write_all(b"chunk one").await.unwrap();
        let mut buf = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(30), seen.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"chunk one");
        drop(feed);
        call.await.unwrap().unwrap();
    });
}

#[test]
fn an_async_stream_that_never_delivers_ends_at_the_timeout() {
    let rt = runtime();
    rt.block_on(async {
        let manifest = Manifest::new([Wasm::data(streaming_wat().into_bytes())])
            .with_timeout(Duration::from_millis(200));
        let mut plugin = PluginBuilder::new(manifest)
            .with_async(true)
            .build()
            .unwrap();
        // Nobody ever writes to the other end.
        let (_keep_open, input) = tokio::io::duplex(64);
        let started = Instant::now();
        let err = plugin
            .call_stream_async("echo", input, tokio::io::sink())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // And the plug-in is usable after it.
        let mut out = Vec::new();
        plugin
            .call_stream_async("echo", &b"after"[..], &mut out)
            .await
            .unwrap();
        assert_eq!(out, b"after");
    });
}

#[test]
fn async_streams_to_a_plugin_built_for_sync_calls_are_refused_clearly() {
    let rt = runtime();
    rt.block_on(async {
        let mut plugin = streaming();
        let err = plugin
            .call_stream_async("echo", &b"x"[..], tokio::io::sink())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Stream);
        assert!(err.to_string().contains("with_async(true)"), "{err}");
        // A plug-in that does not stream needs nothing of the kind.
        let mut classic = Plugin::new(classic_wat().as_bytes(), [], false).unwrap();
        let mut out = Vec::new();
        classic
            .call_stream_async("echo", &b"whole"[..], &mut out)
            .await
            .unwrap();
        assert_eq!(out, b"whole");
    });
}

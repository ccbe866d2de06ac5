package plinth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// streamWAT streams through plinth:host/env directly. echo copies 64 KiB chunks from input
// to output (1 when the input failed, 2 when the output closed); never_reads writes "done"
// without reading; flood writes 64 KiB chunks until the output closes; host calls the host
// function stop (which may fail) and then echoes.
const streamWAT = `(module
  (import "plinth:host/env" "stream_read" (func $sread (param i32 i32) (result i32)))
  (import "plinth:host/env" "stream_write" (func $swrite (param i32 i32) (result i32)))
  (import "extism:host/user" "stop" (func $stop (param i64) (result i64)))
  (memory (export "memory") 4)
  (data (i32.const 16) "done")
  (func $echo (export "echo") (result i32) (local $n i32)
    (block $done (loop $next
      (local.set $n (call $sread (i32.const 1024) (i32.const 65536)))
      (br_if $done (i32.eqz (local.get $n)))
      (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 1))))
      (if (i32.lt_s (call $swrite (i32.const 1024) (local.get $n)) (i32.const 0))
        (then (return (i32.const 2))))
      (br $next)))
    (i32.const 0))
  (func (export "never_reads") (result i32)
    (drop (call $swrite (i32.const 16) (i32.const 4))) (i32.const 0))
  (func (export "flood") (result i32)
    (loop $next
      (br_if $next (i32.ge_s (call $swrite (i32.const 1024) (i32.const 65536)) (i32.const 0))))
    (i32.const 0))
  (func (export "host") (result i32)
    (drop (call $stop (i64.const 0)))
    (call $echo)))`

// classicWAT does not stream: echo copies its whole input to its output through Extism's
// input and output functions.
const classicWAT = `(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1)
  (func (export "echo") (result i32) (local $n i64) (local $h i64) (local $i i64)
    (local.set $n (call $input_length)) (local.set $h (call $alloc (local.get $n)))
    (block $d (loop $l (br_if $d (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $l)))
    (call $output_set (local.get $h) (local.get $n)) (i32.const 0)))`

// stopKey is the context key whose value, when set, the stop host function returns as its
// error.
type stopKey struct{}

func loadStreaming(t *testing.T, opts ...Option) *Plugin {
	t.Helper()
	stop := NewHostFunctionContext("stop", []ValType{PTR}, []ValType{PTR},
		func(ctx context.Context, p *CurrentPlugin, in []Val, out []Val) error {
			if err, ok := ctx.Value(stopKey{}).(error); ok {
				return err
			}
			return nil
		}, nil)
	t.Cleanup(stop.Free)
	p, err := NewPlugin([]byte(streamWAT), append(opts, WithFunctions(stop))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// streamKind is err's kind, failing the test when err is no *Error.
func streamKind(t *testing.T, err error) *Error {
	t.Helper()
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("want a *plinth.Error, got %T %v", err, err)
	}
	return perr
}

func TestCallStreamEchoesMegabytes(t *testing.T) {
	p := loadStreaming(t)
	in := pattern(4 << 20)
	var out bytes.Buffer
	stats, err := p.CallStream("echo", bytes.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Fatalf("output: %d bytes, want the %d input bytes", out.Len(), len(in))
	}
	if stats != (StreamStats{InputBytes: uint64(len(in)), OutputBytes: uint64(len(in))}) {
		t.Fatalf("stats %+v", stats)
	}

	// Empty input, nil reader and nil writer.
	out.Reset()
	if stats, err := p.CallStream("echo", bytes.NewReader(nil), &out); err != nil || out.Len() != 0 || stats != (StreamStats{}) {
		t.Fatalf("empty: %d bytes, %+v, %v", out.Len(), stats, err)
	}
	if stats, err := p.CallStream("echo", nil, nil); err != nil || stats != (StreamStats{}) {
		t.Fatalf("nil reader and writer: %+v, %v", stats, err)
	}
	if stats, err := p.CallStream("echo", bytes.NewReader(in[:1000]), nil); err != nil || stats.OutputBytes != 1000 {
		t.Fatalf("nil writer discards: %+v, %v", stats, err)
	}
	// A plug-in that never reads answers without touching the reader.
	out.Reset()
	if _, err := p.CallStream("never_reads", failingReader{}, &out); err != nil || out.String() != "done" {
		t.Fatalf("never_reads: %q, %v", out.String(), err)
	}
}

// failingReader fails at once.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("never read me") }

// signalWriter collects what it is given and tells each write on a channel.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestCallStreamOutputComesBeforeInputEnds(t *testing.T) {
	p := loadStreaming(t)
	pr, pw := io.Pipe()
	w := &signalWriter{wrote: make(chan struct{}, 1)}
	type result struct {
		stats StreamStats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		stats, err := p.CallStream("echo", pr, w)
		done <- result{stats, err}
	}()
	// Each line must come out before the next goes in: the input is still open meanwhile.
	for i := 0; i < 3; i++ {
		line := fmt.Sprintf("line %d\n", i)
		if _, err := pw.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(30 * time.Second)
		for !strings.HasSuffix(w.String(), line) {
			select {
			case <-w.wrote:
			case <-deadline:
				t.Fatalf("line %d did not come out while the input was open; output so far %q", i, w.String())
			}
		}
	}
	pw.Close()
	r := <-done
	if r.err != nil || w.String() != "line 0\nline 1\nline 2\n" || r.stats.InputBytes != 21 {
		t.Fatalf("%q, %+v, %v", w.String(), r.stats, r.err)
	}
}

// brokenReader gives n bytes of pattern, then fails with err.
type brokenReader struct {
	data []byte
	err  error
}

func (r *brokenReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

var errDisk = errors.New("disk on fire")

func TestCallStreamFailingReader(t *testing.T) {
	p := loadStreaming(t)
	in := pattern(300000)
	var out bytes.Buffer
	_, err := p.CallStream("echo", &brokenReader{data: in, err: errDisk}, &out)
	perr := streamKind(t, err)
	if perr.Kind != KindStream || !errors.Is(err, errDisk) || !strings.Contains(perr.Message, "disk on fire") {
		t.Fatalf("kind %s, %v", perr.Kind, err)
	}
	// What came before the failure went through.
	if !bytes.Equal(out.Bytes(), in) {
		t.Fatalf("output before the failure: %d bytes of %d", out.Len(), len(in))
	}
	// Bytes and an error in one Read: the bytes go through first.
	out.Reset()
	_, err = p.CallStream("echo", io.MultiReader(strings.NewReader("abc"), &brokenReader{err: errDisk}), &out)
	if !errors.Is(err, errDisk) || out.String() != "abc" {
		t.Fatalf("%q, %v", out.String(), err)
	}
	// A panicking reader fails the call, not the program.
	_, err = p.CallStream("echo", panicReader{}, &out)
	if perr := streamKind(t, err); perr.Kind != KindStream || !strings.Contains(perr.Message, "reader panicked: oops") {
		t.Fatalf("panic: %v", err)
	}
	// The plug-in works after all that.
	out.Reset()
	if _, err := p.CallStream("echo", strings.NewReader("fine"), &out); err != nil || out.String() != "fine" {
		t.Fatalf("after failures: %q, %v", out.String(), err)
	}
}

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("oops") }

// limitedWriter takes max bytes, then fails with err.
type limitedWriter struct {
	n, max int
	err    error
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.max {
		return 0, w.err
	}
	w.n += len(p)
	return len(p), nil
}

var errClosedPipe = errors.New("client went away")

func TestCallStreamFailingWriter(t *testing.T) {
	p := loadStreaming(t)
	w := &limitedWriter{max: 300000, err: errClosedPipe}
	_, err := p.CallStream("flood", nil, w)
	perr := streamKind(t, err)
	if perr.Kind != KindStream || !errors.Is(err, errClosedPipe) {
		t.Fatalf("kind %s, %v", perr.Kind, err)
	}
	// flood wrote whole 64 KiB chunks until the first refused one, then stopped.
	if w.n != 4*65536 {
		t.Fatalf("%d bytes written", w.n)
	}
	// A writer that takes fewer bytes without an error breaks io.Writer's contract: a short
	// write.
	_, err = p.CallStream("never_reads", nil, shortWriter{})
	if !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("short write: %v", err)
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestCallStreamOutputLimit(t *testing.T) {
	p := loadStreaming(t, WithOutputLimit(200000))
	var out bytes.Buffer
	_, err := p.CallStream("flood", nil, &out)
	perr := streamKind(t, err)
	if perr.Kind != KindStream || !strings.Contains(perr.Message, "limit of 200000 bytes") {
		t.Fatalf("kind %s, %v", perr.Kind, err)
	}
	if out.Len() != 3*65536 {
		t.Fatalf("%d bytes delivered, want the 3 whole chunks under the limit", out.Len())
	}
	if err := p.SetOutputLimit(math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	w := &limitedWriter{max: 1 << 20, err: errClosedPipe}
	if _, err := p.CallStream("flood", nil, w); !errors.Is(err, errClosedPipe) || w.n != 1<<20 {
		t.Fatalf("no limit: %d bytes, %v", w.n, err)
	}

	// A compiled plug-in's instances (and a pool's) inherit it.
	c, err := NewCompiledPlugin([]byte(classicWAT), WithOutputLimit(10))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pool, err := NewPool(c, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	out.Reset()
	if _, err := pool.CallStream(context.Background(), "echo", strings.NewReader("short"), &out); err != nil || out.String() != "short" {
		t.Fatalf("pool, under the limit: %q, %v", out.String(), err)
	}
	_, err = pool.CallStream(context.Background(), "echo", strings.NewReader("more than ten bytes"), &out)
	if perr := streamKind(t, err); perr.Kind != KindStream {
		t.Fatalf("pool, over the limit: %v", err)
	}
}

func TestCallStreamNonStreamingPlugin(t *testing.T) {
	p, err := NewPlugin([]byte(classicWAT))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	in := pattern(100000)
	var out bytes.Buffer
	stats, err := p.CallStream("echo", bytes.NewReader(in), &out)
	if err != nil || !bytes.Equal(out.Bytes(), in) || stats.InputBytes != 100000 || stats.OutputBytes != 100000 {
		t.Fatalf("%d bytes, %+v, %v", out.Len(), stats, err)
	}
	// Its whole input is read before it runs: a failing reader fails the call, nothing is
	// written.
	out.Reset()
	_, err = p.CallStream("echo", &brokenReader{data: in[:5000], err: errDisk}, &out)
	if perr := streamKind(t, err); perr.Kind != KindStream || !errors.Is(err, errDisk) || out.Len() != 0 {
		t.Fatalf("%d bytes, %v", out.Len(), err)
	}
	// Classic calls still work on it, and on a streaming plug-in.
	if got, err := p.Call("echo", []byte("hi")); err != nil || string(got) != "hi" {
		t.Fatalf("classic: %q, %v", got, err)
	}
	sp := loadStreaming(t)
	if got, err := sp.Call("echo", []byte("classic input")); err != nil || string(got) != "classic input" {
		t.Fatalf("classic call of a streaming plug-in: %q, %v", got, err)
	}
}

func TestCallStreamContextAndHostFunctions(t *testing.T) {
	p := loadStreaming(t)
	// The host function sees the call's context: its error fails the call.
	errStop := errors.New("stop here")
	ctx := context.WithValue(context.Background(), stopKey{}, errStop)
	var out bytes.Buffer
	_, err := p.CallStreamContext(ctx, "host", strings.NewReader("x"), &out)
	if perr := streamKind(t, err); perr.Kind != KindHostFunction || !errors.Is(err, errStop) {
		t.Fatalf("host function error: %v", err)
	}
	if _, err := p.CallStream("host", strings.NewReader("ok"), &out); err != nil || out.String() != "ok" {
		t.Fatalf("host function without error: %q, %v", out.String(), err)
	}

	// A context that ends while the call runs stops it: the reader is not called again.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &cancelReader{cancel: cancel}
	_, err = p.CallStreamContext(ctx, "echo", r, io.Discard)
	if perr := streamKind(t, err); perr.Kind != KindCancelled || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if r.reads != 1 {
		t.Fatalf("%d reads after the context ended", r.reads-1)
	}
	// A context already done: nothing runs.
	_, err = p.CallStreamContext(ctx, "echo", r, io.Discard)
	if !errors.Is(err, context.Canceled) || r.reads != 1 {
		t.Fatalf("done context: %v", err)
	}

	p.Close()
	if _, err := p.CallStream("echo", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if err := p.SetOutputLimit(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetOutputLimit after Close: %v", err)
	}
}

// cancelReader gives one chunk and cancels its context as it does.
type cancelReader struct {
	cancel context.CancelFunc
	reads  int
}

func (r *cancelReader) Read(p []byte) (int, error) {
	r.reads++
	r.cancel()
	return copy(p, "chunk"), nil
}

// The plug-ins of plugins/rust built with the Plinth PDK (which links its stream functions
// at load time) and an Extism-PDK plug-in that does not stream.
func TestCallStreamPDKPlugins(t *testing.T) {
	echo := load(t, "stream_echo.wasm")
	in := pattern(3 << 20)
	var out bytes.Buffer
	stats, err := echo.CallStream("echo", bytes.NewReader(in), &out)
	if err != nil || !bytes.Equal(out.Bytes(), in) || stats.OutputBytes != uint64(len(in)) {
		t.Fatalf("stream_echo: %d bytes, %+v, %v", out.Len(), stats, err)
	}
	out.Reset()
	if _, err := echo.CallStream("read_all_then_write", bytes.NewReader(in), &out); err != nil || out.String() != fmt.Sprint(len(in)) {
		t.Fatalf("read_all_then_write: %q, %v", out.String(), err)
	}

	logs := "ok 1\nERROR disk\nok 2\nERROR net\n"
	out.Reset()
	filter := load(t, "stream_filter.wasm")
	if _, err := filter.CallStream("grep", strings.NewReader(logs), &out); err != nil || out.String() != "ERROR disk\nERROR net\n" {
		t.Fatalf("stream_filter grep: %q, %v", out.String(), err)
	}
	out.Reset()
	whole := load(t, "extism_line_filter.wasm")
	if _, err := whole.CallStream("grep", strings.NewReader(logs), &out); err != nil || out.String() != "ERROR disk\nERROR net\n" {
		t.Fatalf("extism_line_filter grep: %q, %v", out.String(), err)
	}
}

// slowReader gives one chunk, then sleeps before each next one.
type slowReader struct {
	sleep time.Duration
	reads int
}

func (r *slowReader) Read(p []byte) (int, error) {
	r.reads++
	if r.reads > 1 {
		time.Sleep(r.sleep)
	}
	return copy(p, "chunk"), nil
}

func TestCallStreamLimitsWhileBlockedOnTheReader(t *testing.T) {
	stop := NewHostFunction("stop", []ValType{PTR}, []ValType{PTR}, func(*CurrentPlugin, []Val, []Val) {}, nil)
	defer stop.Free()
	p, err := NewPluginFromManifest(Manifest{Wasm: []Wasm{WasmData([]byte(streamWAT))}, TimeoutMs: 100},
		WithFunctions(stop))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// A reader that blocks past timeout_ms: the call times out when it returns.
	r := &slowReader{sleep: 300 * time.Millisecond}
	_, err = p.CallStream("echo", r, io.Discard)
	if perr := streamKind(t, err); perr.Kind != KindTimeout {
		t.Fatalf("timeout while the reader blocks: %v", err)
	}
	if r.reads != 2 {
		t.Fatalf("%d reads: the call went on after its deadline", r.reads)
	}

	// A cancel while the reader blocks ends the call when the reader returns.
	q := loadStreaming(t)
	handle := q.CancelHandle()
	r = &slowReader{sleep: 200 * time.Millisecond}
	// Cancels until the call has ended: a cancel that lands before the call starts is dropped.
	ended := make(chan struct{})
	go func() {
		for {
			select {
			case <-ended:
				return
			case <-time.After(20 * time.Millisecond):
				handle.Cancel()
			}
		}
	}()
	_, err = q.CallStream("echo", r, io.Discard)
	close(ended)
	if perr := streamKind(t, err); perr.Kind != KindCancelled {
		t.Fatalf("cancel while the reader blocks: %v", err)
	}
}

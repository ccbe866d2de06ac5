package plinth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// greetThenSpinWAT calls greet and then loops forever: only a host function error (or a
// cancel) that stops the call lets it end.
const greetThenSpinWAT = `(module (import "extism:host/user" "greet" (func $greet (param i64) (result i64)))` +
	hostImports + ` (memory 1)
  (func (export "run") (result i32)
    (drop (call $greet (call $input_offset)))
    (loop $l (br $l)) (i32.const 0)))`

var errLookup = errors.New("no such user")

// waiter is a host function "greet" for greetWAT whose behaviour depends on the input:
// "wait" waits for the call's context to end (or a minute), "sleep" waits 50 ms, "fail"
// returns an error wrapping errLookup; anything else is greeted at once.
type waiter struct {
	started chan string // receives the input of each call that starts waiting
	ctxErr  chan error  // receives what a "wait" saw when its context ended
	running atomic.Int32
	peak    atomic.Int32
	calls   atomic.Int32
}

func newWaiter() *waiter {
	return &waiter{started: make(chan string, 1000), ctxErr: make(chan error, 1000)}
}

func (w *waiter) serve(ctx context.Context, p *CurrentPlugin, in []Val, out []Val) error {
	w.calls.Add(1)
	n := w.running.Add(1)
	defer w.running.Add(-1)
	for {
		peak := w.peak.Load()
		if n <= peak || w.peak.CompareAndSwap(peak, n) {
			break
		}
	}
	input, err := p.ReadString(in[0].Handle())
	if err != nil {
		return err
	}
	switch {
	case input == "wait":
		w.started <- input
		select {
		case <-ctx.Done():
			w.ctxErr <- ctx.Err()
			return ctx.Err()
		case <-time.After(time.Minute):
		}
	case strings.HasPrefix(input, "sleep"):
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	case input == "fail":
		return fmt.Errorf("looking up %q: %w", input, errLookup)
	}
	h, err := p.WriteString("hello, " + input)
	if err != nil {
		return err
	}
	out[0] = ValHandle(h)
	return nil
}

func (w *waiter) function(t *testing.T) *HostFunction {
	f := NewHostFunctionContext("greet", []ValType{PTR}, []ValType{PTR}, w.serve, nil)
	t.Cleanup(f.Free)
	return f
}

func waiterPlugin(t *testing.T, w *waiter, wat string) *Plugin {
	p, err := NewPlugin([]byte(wat), WithFunctions(w.function(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func waiterPool(t *testing.T, w *waiter, wat string, max int) *Pool {
	c, err := NewCompiledPlugin([]byte(wat), WithFunctions(w.function(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pool, err := NewPool(c, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// within fails the test when f has not returned after a generous while (a hang, not a speed
// check).
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the call did not return within 30 s")
	}
}

// wantContextError checks that err is the error of a call its context ended.
func wantContextError(t *testing.T, err error, cause error, kind ErrorKind) {
	t.Helper()
	var perr *Error
	if !errors.Is(err, cause) || !errors.As(err, &perr) || perr.Kind != kind {
		t.Fatalf("want an *Error of kind %v wrapping %v, got %#v (%v)", kind, cause, err, err)
	}
	if !strings.Contains(err.Error(), cause.Error()) {
		t.Fatalf("the message does not say why: %v", err)
	}
}

func TestHostFunctionWaitsAndAnswers(t *testing.T) {
	w := newWaiter()
	p := waiterPlugin(t, w, greetWAT)
	pool := waiterPool(t, w, greetWAT, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := p.CallStringContext(ctx, "run", "sleep"); err != nil || out != "hello, sleep" {
		t.Fatalf("plugin: %q, %v", out, err)
	}
	if out, err := pool.CallString(ctx, "run", "sleep"); err != nil || out != "hello, sleep" {
		t.Fatalf("pool: %q, %v", out, err)
	}
	var out string
	var jerr *json.SyntaxError
	if err := pool.CallJSON(ctx, "run", "Ada", &out); !errors.As(err, &jerr) {
		// greet answers `hello, "Ada"`, which is no JSON: the output is reached and parsed.
		t.Fatalf("want a JSON syntax error, got %q, %v", out, err)
	}
	// Calls without a context still work, and their host functions get a Background one.
	if out, err := p.CallString("run", "Ada"); err != nil || out != "hello, Ada" {
		t.Fatalf("plain call: %q, %v", out, err)
	}
}

func TestCurrentPluginContext(t *testing.T) {
	type key struct{}
	seen := make(chan context.Context, 2)
	f := NewHostFunction("greet", []ValType{PTR}, []ValType{PTR},
		func(p *CurrentPlugin, in []Val, out []Val) {
			seen <- p.Context()
			out[0] = in[0]
		}, nil)
	defer f.Free()
	p, err := NewPlugin([]byte(greetWAT), WithFunctions(f))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.WithValue(context.Background(), key{}, "request 7")
	if out, err := p.CallStringContext(ctx, "run", "x"); err != nil || out != "x" {
		t.Fatalf("%q, %v", out, err)
	}
	if got := (<-seen).Value(key{}); got != "request 7" {
		t.Fatalf("the host function got another context (value %v)", got)
	}
	if _, err := p.Call("run", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got == nil || got.Done() != nil {
		t.Fatalf("a call without a context gives host functions %v, want context.Background()", got)
	}
}

func TestCancelWhileHostFunctionWaits(t *testing.T) {
	// The same wait written both ways: NewHostFunctionContext, and NewHostFunction reading
	// CurrentPlugin.Context.
	w := newWaiter()
	plain := NewHostFunction("greet", []ValType{PTR}, []ValType{PTR},
		func(p *CurrentPlugin, in []Val, out []Val) {
			if s, _ := p.ReadString(in[0].Handle()); s != "wait" {
				out[0] = in[0]
				return
			}
			w.started <- "wait"
			<-p.Context().Done()
			w.ctxErr <- p.Context().Err()
		}, nil)
	defer plain.Free()
	q, err := NewPlugin([]byte(greetWAT), WithFunctions(plain))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for name, p := range map[string]*Plugin{"context": waiterPlugin(t, w, greetWAT), "plain": q} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := p.CallContext(ctx, "run", []byte("wait"))
				done <- err
			}()
			<-w.started
			cancel()
			within(t, func() { err = <-done })
			wantContextError(t, err, context.Canceled, KindCancelled)
			if seen := <-w.ctxErr; seen != context.Canceled {
				t.Fatalf("the host function saw %v", seen)
			}
			// The cancel stopped that call only.
			if out, err := p.CallString("run", "again"); err != nil || !strings.HasSuffix(out, "again") {
				t.Fatalf("after the cancel: %q, %v", out, err)
			}
		})
	}
}

func TestDeadlineWhileHostFunctionWaits(t *testing.T) {
	w := newWaiter()
	p := waiterPlugin(t, w, greetWAT)
	pool := waiterPool(t, w, greetWAT, 1)
	call := map[string]func(context.Context) error{
		"plugin": func(ctx context.Context) error { _, err := p.CallContext(ctx, "run", []byte("wait")); return err },
		"pool":   func(ctx context.Context) error { _, err := pool.Call(ctx, "run", []byte("wait")); return err },
	}
	for name, f := range call {
		t.Run(name, func(t *testing.T) {
			// The host function would wait a minute.
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			var err error
			within(t, func() { err = f(ctx) })
			wantContextError(t, err, context.DeadlineExceeded, KindTimeout)
			select {
			case <-w.started:
				if seen := <-w.ctxErr; seen != context.DeadlineExceeded {
					t.Fatalf("the host function saw %v", seen)
				}
			default:
				t.Log("the deadline passed before the call reached its host function")
			}
		})
	}
}

func TestContextStopsAComputingPlugin(t *testing.T) {
	p, err := NewPlugin([]byte(spinWAT))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	within(t, func() { _, err = p.CallContext(ctx, "spin", nil) })
	wantContextError(t, err, context.DeadlineExceeded, KindTimeout)

	cause := errors.New("the user went away")
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	time.AfterFunc(50*time.Millisecond, func() { cancel2(cause) })
	within(t, func() { _, err = p.CallContext(ctx2, "spin", nil) })
	wantContextError(t, err, context.Canceled, KindCancelled)
	if !strings.Contains(err.Error(), cause.Error()) {
		t.Fatalf("the message does not give the cause: %v", err)
	}
}

func TestDoneContextRunsNothing(t *testing.T) {
	w := newWaiter()
	p := waiterPlugin(t, w, greetWAT)
	pool := waiterPool(t, w, greetWAT, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.CallContext(ctx, "run", []byte("x"))
	wantContextError(t, err, context.Canceled, KindCancelled)
	_, err = pool.Call(ctx, "run", []byte("x"))
	wantContextError(t, err, context.Canceled, KindCancelled)
	if n := w.calls.Load(); n != 0 {
		t.Fatalf("the host function ran %d times", n)
	}
	if n := pool.Instances(); n != 0 {
		t.Fatalf("the pool made %d instances", n)
	}
}

func TestWaitingForTurnHonoursContext(t *testing.T) {
	w := newWaiter()
	p := waiterPlugin(t, w, greetWAT)
	pool := waiterPool(t, w, greetWAT, 1)
	for name, call := range map[string]func(context.Context, string) (string, error){
		"plugin": func(ctx context.Context, in string) (string, error) { return p.CallStringContext(ctx, "run", in) },
		"pool":   func(ctx context.Context, in string) (string, error) { return pool.CallString(ctx, "run", in) },
	} {
		t.Run(name, func(t *testing.T) {
			busy, stopBusy := context.WithCancel(context.Background())
			defer stopBusy()
			first := make(chan error, 1)
			go func() { _, err := call(busy, "wait"); first <- err }()
			<-w.started
			// The only instance is busy for as long as the first call waits.
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			var err error
			within(t, func() { _, err = call(ctx, "second") })
			wantContextError(t, err, context.DeadlineExceeded, KindTimeout)
			stopBusy()
			within(t, func() { err = <-first })
			wantContextError(t, err, context.Canceled, KindCancelled)
			<-w.ctxErr
			if out, err := call(context.Background(), "third"); err != nil || out != "hello, third" {
				t.Fatalf("after: %q, %v", out, err)
			}
		})
	}
}

func TestHostFunctionErrorReachesCaller(t *testing.T) {
	w := newWaiter()
	// greetThenSpinWAT loops forever after greet: the call ends only if the error stops it.
	p := waiterPlugin(t, w, greetThenSpinWAT)
	pool := waiterPool(t, w, greetThenSpinWAT, 2)
	c, err := NewCompiledPlugin([]byte(greetWAT), WithFunctions(w.function(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"plugin": func() error { _, err := p.CallContext(ctx, "run", []byte("fail")); return err },
		"plain":  func() error { _, err := p.Call("run", []byte("fail")); return err },
		"pool":   func() error { _, err := pool.Call(ctx, "run", []byte("fail")); return err },
		// CallFresh cannot stop the plug-in (greetWAT then returns), but reports the error.
		"fresh": func() error { _, err := c.CallFresh("run", []byte("fail")); return err },
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			within(t, func() { err = call() })
			var perr *Error
			if !errors.Is(err, errLookup) || !errors.As(err, &perr) || perr.Kind != KindHostFunction {
				t.Fatalf("want an *Error of kind host_function wrapping errLookup, got %#v", err)
			}
			for _, want := range []string{"greet", `looking up "fail"`, "no such user"} {
				if !strings.Contains(perr.Message, want) {
					t.Fatalf("message %q does not mention %q", perr.Message, want)
				}
			}
		})
	}
	// The failed calls left the plug-ins usable.
	q := waiterPlugin(t, w, greetWAT)
	if _, err := q.Call("run", []byte("fail")); err == nil {
		t.Fatal("want an error")
	}
	if out, err := q.CallString("run", "ok"); err != nil || out != "hello, ok" {
		t.Fatalf("after a host error: %q, %v", out, err)
	}
}

func TestPoolCallsRunConcurrently(t *testing.T) {
	w := newWaiter()
	const calls = 100
	pool := waiterPool(t, w, greetWAT, calls)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			in := fmt.Sprintf("sleep %d", i)
			out, err := pool.CallString(ctx, "run", in)
			if err == nil && out != "hello, "+in {
				err = fmt.Errorf("call %d got %q", i, out)
			}
			if err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d calls of 50 ms in %v, at most %d at once, %d instances", calls, elapsed, w.peak.Load(), pool.Instances())
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Each call waits 50 ms in its host function: one after another they would take 5 s.
	if elapsed > 2500*time.Millisecond {
		t.Fatalf("%d calls of 50 ms took %v: they were serialized", calls, elapsed)
	}
	if peak := w.peak.Load(); peak < 2 {
		t.Fatalf("at most %d host function ran at once", peak)
	}
	if n := pool.Instances(); n > calls {
		t.Fatalf("%d instances for at most %d", n, calls)
	}
}

func TestPoolIsBounded(t *testing.T) {
	w := newWaiter()
	pool := waiterPool(t, w, greetWAT, 3)
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := pool.Call(context.Background(), "run", []byte("sleep")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if peak := w.peak.Load(); peak > 3 || peak < 1 {
		t.Fatalf("%d calls ran at once in a pool of 3", peak)
	}
	if n := pool.Instances(); n < 1 || n > 3 {
		t.Fatalf("%d instances in a pool of 3", n)
	}
	pool.Close()
	if n := pool.Instances(); n != 0 {
		t.Fatalf("%d instances after Close", n)
	}
	if _, err := pool.Call(context.Background(), "run", []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestNewPoolArguments(t *testing.T) {
	var perr *Error
	if _, err := NewPool(nil, 1); !errors.As(err, &perr) || !strings.Contains(perr.Message, "nil") {
		t.Fatalf("nil: %v", err)
	}
	c, err := NewCompiledPlugin([]byte(spinWAT))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := NewPool(c, 0); !errors.As(err, &perr) || !strings.Contains(perr.Message, "at least 1") {
		t.Fatalf("0 instances: %v", err)
	}
	pool, err := NewPool(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := pool.Call(context.Background(), "spin", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("a pool of a closed compiled plug-in: %v", err)
	}
}

func TestContextCallsLeaveNoGoroutines(t *testing.T) {
	w := newWaiter()
	p := waiterPlugin(t, w, greetWAT)
	before := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := p.CallContext(ctx, "run", []byte("x")); err != nil {
			t.Fatal(err)
		}
		cancel()
		// And calls that the context stops, which start the watcher.
		ctx, cancel = context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := p.CallContext(ctx, "run", []byte("wait")); done <- err }()
		<-w.started
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("want a cancel error, got %v", err)
		}
		<-w.ctxErr
	}
	// Goroutines of timers and AfterFunc may take a moment to exit.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines before the calls, %d after", before, n)
	}
}

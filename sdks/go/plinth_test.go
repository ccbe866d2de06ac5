package plinth

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// plugins is target/wasm-plugins of the repository (built by scripts/build-plugins.sh).
var plugins = filepath.Join("..", "..", "target", "wasm-plugins")

func wasmPath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(plugins, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is not built (run scripts/build-plugins.sh): %v", p, err)
	}
	return p
}

func load(t testing.TB, name string, opts ...Option) *Plugin {
	t.Helper()
	p, err := NewPluginFromFile(wasmPath(t, name), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

const hostImports = `
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))`

// Hostile and helper WAT plug-ins.
const (
	spinWAT = `(module (memory 1)
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0)))`
	growWAT = `(module (memory 1)
  (func (export "grow") (result i32)
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))`
	// run: returns what host function greet returns for the input.
	greetWAT = `(module (import "extism:host/user" "greet" (func $greet (param i64) (result i64)))` +
		hostImports + ` (memory 1)
  (func (export "run") (result i32) (local $h i64)
    (local.set $h (call $greet (call $input_offset)))
    (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))`
)

func TestLoadFromPathBytesManifest(t *testing.T) {
	path := wasmPath(t, "count_vowels.wasm")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fromPath, err := NewPluginFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fromPath.Close()
	fromBytes, err := NewPlugin(data)
	if err != nil {
		t.Fatal(err)
	}
	defer fromBytes.Close()
	fromManifest, err := NewPluginFromManifest(Manifest{
		Wasm:   []Wasm{WasmFile(path)},
		Config: map[string]string{"vowels": "o"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fromManifest.Close()
	fromData, err := NewPluginFromManifest(Manifest{Wasm: []Wasm{WasmData(data)}})
	if err != nil {
		t.Fatal(err)
	}
	defer fromData.Close()
	wat, err := NewPluginFromFile(filepath.Join("..", "..", "examples", "plugins", "count_vowels.wat"))
	if err != nil {
		t.Fatal(err)
	}
	defer wat.Close()

	for name, p := range map[string]*Plugin{"path": fromPath, "bytes": fromBytes, "data": fromData, "wat": wat} {
		out, err := p.CallString("count_vowels", "Hello, world")
		if err != nil || out != `{"count":3,"total":3,"vowels":"aeiouAEIOU"}` {
			t.Errorf("%s: %q, %v", name, out, err)
		}
	}
	out, err := fromManifest.CallString("count_vowels", "Hello, world")
	if err != nil || out != `{"count":2,"total":2,"vowels":"o"}` {
		t.Errorf("manifest config: %q, %v", out, err)
	}
	if !fromPath.FunctionExists("count_vowels") || fromPath.FunctionExists("nope") {
		t.Error("FunctionExists")
	}
	if id := fromPath.ID(); len(id) != 36 || id == fromBytes.ID() {
		t.Errorf("ids %q %q", id, fromBytes.ID())
	}
}

func TestCountVowelsTotalAndConfig(t *testing.T) {
	p := load(t, "count_vowels.wasm")
	type report struct {
		Count  int    `json:"count"`
		Total  int    `json:"total"`
		Vowels string `json:"vowels"`
	}
	var r report
	for _, want := range []int{3, 6, 9} {
		out, err := p.Call("count_vowels", []byte("Hello, world"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), `"total":`+strconv.Itoa(want)) {
			t.Fatalf("want total %d: %s", want, out)
		}
	}
	v := "lw"
	if err := p.UpdateConfig(map[string]*string{"vowels": &v}); err != nil {
		t.Fatal(err)
	}
	out, err := p.Call("count_vowels", []byte("Hello, world"))
	if err != nil || !strings.Contains(string(out), `"count":4,"total":13,"vowels":"lw"`) {
		t.Fatalf("config set: %s, %v", out, err)
	}
	if err := p.UpdateConfig(map[string]*string{"vowels": nil}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Call("count_vowels", []byte("Hello, world")); err != nil {
		t.Fatal(err)
	}
	if err := p.CallJSON("count_vowels", "aaa", &r); err != nil {
		t.Fatal(err)
	}
	// Input is the JSON text "aaa" with quotes: 3 vowels.
	if r.Count != 3 || r.Total != 19 || r.Vowels != "aeiouAEIOU" {
		t.Fatalf("config deleted: %+v", r)
	}
	if err := p.Reset(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckoutJSON(t *testing.T) {
	p := load(t, "checkout.wasm")
	type cart struct {
		CartTotal     int  `json:"cart_total"`
		IsNewCustomer bool `json:"is_new_customer"`
		ProvidedEmail bool `json:"provided_email"`
	}
	var out struct {
		DiscountPercent float64 `json:"discount_percent"`
	}
	if err := p.CallJSON("before_checkout_finalize", cart{12000, true, true}, &out); err != nil || out.DiscountPercent != 20.0 {
		t.Fatalf("new customer: %v, %v", out, err)
	}
	if err := p.CallJSON("before_checkout_finalize", cart{12000, false, true}, &out); err != nil || out.DiscountPercent != 0.0 {
		t.Fatalf("returning customer: %v, %v", out, err)
	}
}

func TestHostFunctionRoundTrip(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	base := liveHostFuncs.Load()
	greet := NewHostFunction("greet", []ValType{PTR}, []ValType{PTR},
		func(p *CurrentPlugin, in []Val, out []Val) {
			name, err := p.ReadString(in[0].Handle())
			if err != nil {
				panic(err)
			}
			h, err := p.WriteString(p.UserData().(string) + name + "!")
			if err != nil {
				panic(err)
			}
			mu.Lock()
			calls++
			mu.Unlock()
			out[0] = ValHandle(h)
		}, "Hello, ")
	defer greet.Free()
	p := load(t, "host_greet.wasm", WithFunctions(greet))
	out, err := p.CallString("call_greet", "Ada")
	if err != nil || out != "Hello, Ada!" {
		t.Fatalf("%q, %v", out, err)
	}
	if n := liveHostFuncs.Load() - base; n != 1 {
		t.Fatalf("live host functions: %d", n)
	}
	// The same function in a second plug-in, after Free: plug-ins keep it alive.
	q := load(t, "host_greet.wasm", WithFunctions(greet))
	greet.Free()
	greet.Free()
	if out, err := q.CallString("call_greet", "Bob"); err != nil || out != "Hello, Bob!" {
		t.Fatalf("%q, %v", out, err)
	}
	q.Close()
	p.Close()
	if n := liveHostFuncs.Load() - base; n != 0 {
		t.Fatalf("%d host functions still held after the last plug-in closed", n)
	}
	if calls != 2 {
		t.Fatalf("calls = %d", calls)
	}
	if _, err := NewPluginFromFile(wasmPath(t, "host_greet.wasm"), WithFunctions(greet)); err == nil {
		t.Fatal("a freed function must be refused")
	}
	if _, err := NewPluginFromFile(wasmPath(t, "host_greet.wasm")); err == nil || !strings.Contains(err.Error(), "greet") {
		t.Fatalf("missing import: %v", err)
	}
}

func TestHostContextNamespaceAndPanic(t *testing.T) {
	ctxFn := NewHostFunction("greet", []ValType{PTR}, []ValType{PTR},
		func(p *CurrentPlugin, in []Val, out []Val) {
			s, _ := p.HostContext().(string)
			if s == "panic" {
				panic("boom")
			}
			if s == "" {
				s = "no context"
			}
			p.Free(in[0].Handle())
			h, _ := p.WriteString(s)
			out[0] = ValHandle(h)
		}, nil)
	defer ctxFn.Free()
	p, err := NewPlugin([]byte(greetWAT), WithFunctions(ctxFn))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if out, err := p.CallWithContext("run", []byte("x"), "from the host"); err != nil || string(out) != "from the host" {
		t.Fatalf("%q, %v", out, err)
	}
	if out, err := p.Call("run", nil); err != nil || string(out) != "no context" {
		t.Fatalf("%q, %v", out, err)
	}
	_, err = p.CallWithContext("run", nil, "panic")
	var perr *Error
	if !errors.As(err, &perr) || !strings.Contains(perr.Message, "panicked") || !strings.Contains(perr.Message, "boom") {
		t.Fatalf("panic: %v", err)
	}
	if out, err := p.Call("run", nil); err != nil || string(out) != "no context" {
		t.Fatalf("after a panic: %q, %v", out, err)
	}

	ns := NewHostFunction("greet", []ValType{PTR}, []ValType{PTR},
		func(p *CurrentPlugin, in []Val, out []Val) { out[0] = ValHandle(in[0].Handle()) }, nil)
	ns.SetNamespace("custom")
	defer ns.Free()
	nsWAT := strings.Replace(greetWAT, "extism:host/user", "custom", 1)
	q, err := NewPlugin([]byte(nsWAT), WithFunctions(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if out, err := q.Call("run", []byte("echo")); err != nil || string(out) != "echo" {
		t.Fatalf("namespace: %q, %v", out, err)
	}
}

func TestTimeout(t *testing.T) {
	p, err := NewPluginFromManifest(Manifest{Wasm: []Wasm{WasmData([]byte(spinWAT))}, TimeoutMs: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	_, err = p.Call("spin", nil)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("want a timeout, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %v", d)
	}
}

func TestMemoryLimit(t *testing.T) {
	p, err := NewPluginFromManifest(Manifest{Wasm: []Wasm{WasmData([]byte(growWAT))}, Memory: &MemoryOptions{MaxPages: 4}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Call("grow", nil)
	var perr *Error
	if !errors.As(err, &perr) || perr.Code != -1 || !strings.Contains(perr.Message, "memory") {
		t.Fatalf("want out of memory, got %v", err)
	}
	t.Logf("memory limit: %v", err)
}

func TestFuelLimit(t *testing.T) {
	p, err := NewPlugin([]byte(spinWAT), WithFuelLimit(10000))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Call("spin", nil); err == nil || !strings.Contains(err.Error(), "fuel") {
		t.Fatalf("want out of fuel, got %v", err)
	}
}

func TestCancelFromAnotherGoroutine(t *testing.T) {
	p, err := NewPlugin([]byte(spinWAT))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cancel := p.CancelHandle()
	done := make(chan error)
	go func() {
		_, err := p.Call("spin", nil)
		done <- err
	}()
	// A cancel before the call starts is dropped, so keep cancelling until it ends.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "cancelled") {
				t.Fatalf("want cancelled, got %v", err)
			}
			p.Close()
			if cancel.Cancel() {
				t.Fatal("Cancel after Close must return false")
			}
			return
		case <-tick.C:
			cancel.Cancel()
		case <-timeout:
			t.Fatal("cancel did not stop the call")
		}
	}
}

func TestErrors(t *testing.T) {
	p := load(t, "fail_with_code.wasm")
	_, err := p.Call("fail_with_code", nil)
	var perr *Error
	if !errors.As(err, &perr) || perr.Code != 42 || !strings.Contains(perr.Message, "custom failure") {
		t.Fatalf("fail_with_code: %#v", err)
	}
	_, err = p.Call("no_such_function", nil)
	if !errors.As(err, &perr) || perr.Code != -1 || !strings.Contains(perr.Message, "not found") {
		t.Fatalf("missing function: %#v", err)
	}
	if _, err := NewPlugin([]byte("\x00asm garbage")); !errors.As(err, &perr) || perr.Message == "" {
		t.Fatalf("bad wasm: %#v", err)
	}
	if _, err := NewPluginFromFile("/no/such.wasm"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := NewPluginFromManifest(Manifest{Wasm: []Wasm{WasmFile("/no/such.wasm")}}); err == nil {
		t.Fatal("manifest with a missing file must fail")
	}
	if err := p.UpdateConfig(nil); err != nil {
		t.Fatalf("empty config update: %v", err)
	}
}

func TestWASIAndClose(t *testing.T) {
	p := load(t, "count_vowels.wasm", WithWASI(true))
	if _, err := p.Call("count_vowels", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Call("count_vowels", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	if p.FunctionExists("count_vowels") || p.ID() != "" {
		t.Fatal("closed plug-in")
	}
}

func TestConcurrentCalls(t *testing.T) {
	p := load(t, "count_vowels.wasm")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if _, err := p.Call("count_vowels", []byte("aaaa")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	out, err := p.CallString("count_vowels", "")
	if err != nil || !strings.Contains(out, `"total":800`) {
		t.Fatalf("%q, %v", out, err)
	}
}

func rssKiB(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	t.Skip("no VmRSS")
	return 0
}

func TestCreateCallCloseLoopDoesNotLeak(t *testing.T) {
	data, err := os.ReadFile(wasmPath(t, "host_greet.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	greet := NewHostFunction("greet", []ValType{PTR}, []ValType{PTR},
		func(p *CurrentPlugin, in []Val, out []Val) {
			s, _ := p.ReadString(in[0].Handle())
			h, _ := p.WriteString("Hi " + s)
			out[0] = ValHandle(h)
		}, nil)
	compiled, err := NewCompiledPlugin(data, WithFunctions(greet))
	greet.Free()
	if err != nil {
		t.Fatal(err)
	}
	defer compiled.Close()
	round := func(n int) {
		for i := 0; i < n; i++ {
			p, err := compiled.Instance()
			if err != nil {
				t.Fatal(err)
			}
			if out, err := p.CallString("call_greet", "loop"); err != nil || out != "Hi loop" {
				t.Fatalf("%q, %v", out, err)
			}
			if _, err := p.Call("missing", nil); err == nil {
				t.Fatal("missing function")
			}
			p.Close()
		}
		runtime.GC()
	}
	round(300) // warm up allocators and caches
	before := rssKiB(t)
	round(2000)
	after := rssKiB(t)
	t.Logf("VmRSS %d KiB -> %d KiB", before, after)
	if after-before > 8*1024 {
		t.Fatalf("RSS grew by %d KiB over 2,000 plug-ins", after-before)
	}
	if _, err := NewCompiledPlugin(data, WithFuelLimit(1)); err == nil {
		t.Fatal("fuel limit on a compiled plug-in must be refused")
	}
}

func TestLogsAndVersion(t *testing.T) {
	if Version() == "" {
		t.Fatal("no version")
	}
	if !SetLogCustom("debug") {
		t.Skip("logging was set up already")
	}
	p := load(t, "count_vowels.wasm")
	if _, err := p.Call("count_vowels", []byte("aaa")); err != nil {
		t.Fatal(err)
	}
	var lines []string
	DrainLogs(func(line string) { lines = append(lines, line) })
	if !strings.Contains(strings.Join(lines, "\n"), "3 vowels") {
		t.Fatalf("logs: %q", lines)
	}
}

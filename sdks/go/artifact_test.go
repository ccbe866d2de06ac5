package plinth

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
)

// counterWAT adds one to a global on every call of count and outputs it as a digit: a kept
// instance answers "1", "2", "3", a fresh instance always "1".
const counterWAT = `(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1) (global $n (mut i32) (i32.const 0))
  (func (export "count") (result i32) (local $h i64)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (i32.add (i32.const 48) (global.get $n)))
    (call $output_set (local.get $h) (i64.const 1)) (i32.const 0))
  (func (export "trap") (result i32) unreachable))`

var artifactKey = []byte("0123456789abcdef0123456789abcdef")

func artifactKind(t *testing.T, err error) ErrorKind {
	t.Helper()
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("not an *Error: %#v", err)
	}
	return perr.Kind
}

func TestArtifactRoundTripAndRefusals(t *testing.T) {
	wasm, err := os.ReadFile(wasmPath(t, "count_vowels.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	artifact, err := CompileArtifact(wasm, artifactKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(artifact, []byte("plinth artifact")) {
		t.Fatalf("not an artifact: % x", artifact[:16])
	}
	c, err := NewCompiledPluginFromArtifact(artifact, artifactKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.IsPrecompiled() {
		t.Error("an artifact's plug-in is precompiled")
	}
	out, err := c.CallFresh("count_vowels", []byte("Hello, world"))
	if err != nil || !strings.Contains(string(out), `"count":3`) {
		t.Fatalf("CallFresh: %q, %v", out, err)
	}
	inst, err := c.Instance()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := inst.CallString("count_vowels", "aaa"); err != nil || !strings.Contains(out, `"count":3`) {
		t.Fatalf("an instance: %q, %v", out, err)
	}
	inst.Close()

	compiled, err := NewCompiledPlugin(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if compiled.IsPrecompiled() {
		t.Error("compiled from wasm, not precompiled")
	}
	compiled.Close()

	// One flipped bit anywhere, another key, a cut artifact, wasm: kind artifact.
	for _, at := range []int{0, 40, len(artifact) / 2, len(artifact) - 1} {
		tampered := append([]byte(nil), artifact...)
		tampered[at] ^= 1
		_, err := NewCompiledPluginFromArtifact(tampered, artifactKey)
		if k := artifactKind(t, err); k != KindArtifact || k.String() != "artifact" || k.Number() != 25 {
			t.Errorf("byte %d flipped: %v", at, err)
		}
	}
	_, err = NewCompiledPluginFromArtifact(artifact, []byte("fedcba9876543210fedcba9876543210"))
	if artifactKind(t, err) != KindArtifact || !strings.Contains(err.Error(), "another key") {
		t.Errorf("another key: %v", err)
	}
	_, err = NewCompiledPluginFromArtifact(artifact[:len(artifact)-7], artifactKey)
	if artifactKind(t, err) != KindArtifact {
		t.Errorf("cut short: %v", err)
	}
	_, err = NewCompiledPluginFromArtifact(wasm, artifactKey)
	if artifactKind(t, err) != KindArtifact {
		t.Errorf("wasm is no artifact: %v", err)
	}
	_, err = CompileArtifact(wasm, []byte("short"))
	if artifactKind(t, err) != KindArtifact {
		t.Errorf("a short key: %v", err)
	}
	_, err = CompileArtifact([]byte("\x00asm\x01\x00\x00\x00garbage"), artifactKey)
	if artifactKind(t, err) != KindCompile {
		t.Errorf("bad wasm: %v", err)
	}
	c.Close()
	if _, err := c.CallFresh("count_vowels", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if c.IsPrecompiled() {
		t.Error("closed: not precompiled")
	}
}

func TestCallFreshIsolatesCalls(t *testing.T) {
	artifact, err := CompileArtifact([]byte(counterWAT), artifactKey)
	if err != nil {
		t.Fatal(err)
	}
	fromArtifact, err := NewCompiledPluginFromArtifact(artifact, artifactKey)
	if err != nil {
		t.Fatal(err)
	}
	defer fromArtifact.Close()
	fromWAT, err := NewCompiledPlugin([]byte(counterWAT))
	if err != nil {
		t.Fatal(err)
	}
	defer fromWAT.Close()

	kept, err := fromWAT.Instance()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1", "2", "3"} {
		if out, err := kept.CallString("count", ""); err != nil || out != want {
			t.Fatalf("a kept instance: %q, %v; want %q", out, err, want)
		}
	}
	kept.Close()

	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		c := fromWAT
		if g%2 == 1 {
			c = fromArtifact
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if out, err := c.CallFresh("count", nil); err != nil || string(out) != "1" {
					t.Errorf("a fresh call: %q, %v", out, err)
					return
				}
			}
		}()
	}
	wg.Wait()

	_, err = fromArtifact.CallFresh("trap", nil)
	var perr *Error
	if !errors.As(err, &perr) || perr.Kind != KindTrap || perr.Code != 134 {
		t.Errorf("a trap: %#v", err)
	}
	_, err = fromArtifact.CallFresh("missing", nil)
	if !errors.As(err, &perr) || perr.Kind != KindFunctionNotFound || perr.Code != -1 {
		t.Errorf("a missing function: %#v", err)
	}
}

func TestCallFreshHostFunctions(t *testing.T) {
	greet := NewHostFunction("greet", []ValType{PTR}, []ValType{PTR},
		func(p *CurrentPlugin, in []Val, out []Val) {
			if p.HostContext() != nil {
				panic("a fresh call has no host context")
			}
			s, _ := p.ReadString(in[0].Handle())
			if s == "panic" {
				panic("boom")
			}
			h, _ := p.WriteString("Hello, " + s)
			out[0] = ValHandle(h)
		}, nil)
	defer greet.Free()
	c, err := NewCompiledPlugin([]byte(greetWAT), WithFunctions(greet))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if out, err := c.CallFresh("run", []byte("Ada")); err != nil || string(out) != "Hello, Ada" {
		t.Fatalf("a host function in a fresh call: %q, %v", out, err)
	}
	_, err = c.CallFresh("run", []byte("panic"))
	var perr *Error
	if !errors.As(err, &perr) || perr.Kind != KindHostFunction || !strings.Contains(perr.Message, "boom") {
		t.Errorf("a host function that panics: %#v", err)
	}
}

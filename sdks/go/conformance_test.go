package plinth

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The cross-SDK fixtures of tests/conformance (see its README.md): every Plinth SDK runs the
// same cases and must give the same answers (the Rust reference:
// crates/plinth/tests/all/conformance.rs).

var fixtures = filepath.Join("..", "..", "tests", "conformance")

type conformanceCase struct {
	File     string `json:"file"`
	Function string `json:"function"`
	Stage    string `json:"stage"`
	Kind     string `json:"kind"`
	KindCode int32  `json:"kind_code"`
	Code     int32  `json:"code"`
}

// inDir runs the rest of the test in dir as the working directory.
func inDir(t *testing.T, dir string) {
	t.Helper()
	old, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(old) })
}

func TestConformanceErrorCases(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join(fixtures, "errors"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []conformanceCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) < 8 {
		t.Fatalf("only %d cases", len(doc.Cases))
	}
	// Loaded by path from another working directory: a manifest's relative paths must not
	// resolve against it.
	inDir(t, t.TempDir())
	for _, c := range doc.Cases {
		t.Run(c.File+"/"+c.Function, func(t *testing.T) {
			p, err := NewPluginFromFile(filepath.Join(dir, c.File))
			switch {
			case c.Stage == "load" && err == nil:
				p.Close()
				t.Fatal("loaded, but the case expects a load failure")
			case c.Stage != "load" && err != nil:
				t.Fatalf("failed to load: %v", err)
			case c.Stage != "load":
				defer p.Close()
				_, err = p.Call(c.Function, nil)
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("want a *plinth.Error, got %T %v", err, err)
			}
			if perr.Kind.String() != c.Kind || perr.Kind.Number() != c.KindCode || perr.Code != c.Code {
				t.Errorf("got kind %s (%d), code %d; want %s (%d), code %d: %v",
					perr.Kind, perr.Kind.Number(), perr.Code, c.Kind, c.KindCode, c.Code, perr)
			}
		})
	}
}

func TestConformanceManifestPaths(t *testing.T) {
	wasm := wasmPath(t, "wasi_files.wasm")
	src := filepath.Join(fixtures, "paths")
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{
		filepath.Join(src, "manifest.json"):     "manifest.json",
		filepath.Join(src, "data", "hello.txt"): filepath.Join("data", "hello.txt"),
		wasm:                                    "wasi_files.wasm",
	} {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, to), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(filepath.Join(src, "data", "hello.txt"))
	if err != nil {
		t.Fatal(err)
	}
	inDir(t, t.TempDir()) // neither wasi_files.wasm nor data/ is here

	p, err := NewPluginFromFile(filepath.Join(home, "manifest.json"), WithWASI(true))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out, err := p.CallString("copy_file", "/data/hello.txt")
	if err != nil || out != "/data/hello.txt.out" {
		t.Fatalf("copy_file: %q, %v", out, err)
	}
	got, err := os.ReadFile(filepath.Join(home, "data", "hello.txt.out"))
	if err != nil || string(got) != string(want) {
		t.Fatalf("the copy in the manifest's data/: %q, %v", got, err)
	}

	// A compiled plug-in from the same path follows the same rule.
	c, err := NewCompiledPluginFromFile(filepath.Join(home, "manifest.json"), WithWASI(true))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inst, err := c.Instance()
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if out, err := inst.CallString("copy_file", "/data/hello.txt"); err != nil || out != "/data/hello.txt.out" {
		t.Fatalf("compiled copy_file: %q, %v", out, err)
	}
}

func TestErrorKinds(t *testing.T) {
	names := map[ErrorKind]string{
		KindManifest: "manifest", KindCompile: "compile", KindCompileLimit: "compile_limit",
		KindLink: "link", KindFunctionNotFound: "function_not_found",
		KindNotCallable: "not_callable", KindTrap: "trap", KindGuest: "guest", KindExit: "exit",
		KindTimeout: "timeout", KindCancelled: "cancelled", KindOutOfMemory: "out_of_memory",
		KindOutOfFuel: "out_of_fuel", KindHTTPDenied: "http_denied", KindHTTP: "http",
		KindVarStoreFull: "var_store_full", KindHostFunction: "host_function",
		KindReentrant: "reentrant", KindWASI: "wasi", KindConvert: "convert",
		KindMemory: "memory", KindClosed: "closed", KindBusy: "busy", KindOther: "other",
		KindArtifact: "artifact", KindStream: "stream",
	}
	if len(names) != 26 {
		t.Fatalf("%d kinds", len(names))
	}
	for k, name := range names {
		if k.String() != name {
			t.Errorf("kind %d is %q in libplinth, %q here", k.Number(), k.String(), name)
		}
	}
	for _, k := range []ErrorKind{KindNone, 27, -1} {
		if want := "ErrorKind(" + strconv.Itoa(int(k)) + ")"; k.String() != want {
			t.Errorf("%d: %q, want %q", int32(k), k.String(), want)
		}
	}

	// Closed: ErrClosed, and errors.Is for any error of kind closed.
	p := load(t, "count_vowels.wasm")
	p.Close()
	_, err := p.Call("count_vowels", nil)
	var perr *Error
	if !errors.Is(err, ErrClosed) || !errors.As(err, &perr) || perr.Kind != KindClosed {
		t.Errorf("after Close: %v", err)
	}
	if !errors.Is(&Error{Kind: KindClosed, Code: -1, Message: "x"}, ErrClosed) {
		t.Error("errors.Is by kind")
	}
	if errors.Is(&Error{Kind: KindTrap, Code: 134}, ErrClosed) {
		t.Error("a trap is not ErrClosed")
	}

	// A missing file is a manifest failure, as in every SDK.
	_, err = NewPluginFromFile(filepath.Join(t.TempDir(), "missing.wasm"))
	if !errors.As(err, &perr) || perr.Kind != KindManifest || perr.Code != -1 || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %#v", err)
	}
	_, err = NewCompiledPluginFromFile(filepath.Join(t.TempDir(), "missing.wasm"))
	if !errors.As(err, &perr) || perr.Kind != KindManifest {
		t.Errorf("missing file, compiled: %#v", err)
	}
	_, err = NewPluginFromFile("a\x00b")
	if !errors.As(err, &perr) || perr.Kind != KindOther {
		t.Errorf("NUL in a path: %#v", err)
	}
	// Bytes loads report their kind too.
	_, err = NewPlugin([]byte("\x00asm\x01\x00\x00\x00garbage"))
	if !errors.As(err, &perr) || perr.Kind != KindCompile {
		t.Errorf("bad wasm bytes: %#v", err)
	}
}

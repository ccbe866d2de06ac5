package plinth

/*
#cgo pkg-config: plinth
#include <stdint.h>
#include <stdlib.h>
#include "plinth.h"

// Implemented in Go (callbacks.go).
extern void plinthGoTrampoline(ExtismCurrentPlugin*, ExtismVal*, ExtismSize, ExtismVal*, ExtismSize, void*);
extern void plinthGoFreeUserData(void*);
extern void plinthGoLogLine(char*, ExtismSize);

ExtismFunction *plinthgo_function_new(const char *name, const ExtismValType *in, ExtismSize n_in,
                                    const ExtismValType *out, ExtismSize n_out, uintptr_t handle) {
  return extism_function_new(name, in, n_in, out, n_out, (ExtismFunctionType)plinthGoTrampoline,
                             (void *)handle, plinthGoFreeUserData);
}

static int32_t plinthgo_call(ExtismPlugin *p, const char *name, const uint8_t *data, ExtismSize len,
                           uintptr_t ctx) {
  return extism_plugin_call_with_host_context(p, name, data, len, (void *)ctx);
}

static int32_t plinthgo_call_fresh(ExtismCompiledPlugin *c, const char *name, const uint8_t *data,
                                   ExtismSize len, uintptr_t ctx, uint8_t **out, ExtismSize *out_len,
                                   char **errmsg) {
  return plinth_compiled_plugin_call_fresh_with_host_context(c, name, data, len, (void *)ctx, out, out_len,
                                                             errmsg);
}

static void plinthgo_log_drain(void) { extism_log_drain((ExtismLogDrainFunctionType)plinthGoLogLine); }
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// Version is the version of the libplinth in use, e.g. "0.1.0".
func Version() string { return C.GoString(C.extism_version()) }

// Option configures how a plug-in is loaded.
type Option func(*options)

type options struct {
	wasi    bool
	funcs   []*HostFunction
	fuel    uint64
	hasFuel bool
	// outputLimit caps a streaming call's output; math.MaxUint64 (libplinth's default) is no
	// cap. Set when hasOutputLimit.
	outputLimit    uint64
	hasOutputLimit bool
}

// WithWASI turns WASI (preview 1) on or off; it is off by default.
func WithWASI(on bool) Option { return func(o *options) { o.wasi = on } }

// WithFunctions gives the plug-in host functions to import. Functions it does not import
// are ignored; an import that no function satisfies makes loading fail.
func WithFunctions(fns ...*HostFunction) Option {
	return func(o *options) { o.funcs = append(o.funcs, fns...) }
}

// WithFuelLimit limits the work of each call to n units of fuel (roughly wasm
// instructions); a call that uses them up fails with a message that mentions "fuel". Not
// available for compiled plug-ins.
func WithFuelLimit(n uint64) Option { return func(o *options) { o.fuel, o.hasFuel = n, true } }

// WithOutputLimit caps what one streaming call (CallStream) may write to its writer, as
// Plugin.SetOutputLimit does; for a compiled plug-in, every instance made from it (Instance,
// and so a Pool's) gets the cap.
func WithOutputLimit(n uint64) Option {
	return func(o *options) { o.outputLimit, o.hasOutputLimit = n, true }
}

// limitOutput gives a new instance the output limit of o, if it has one.
func (o *options) limitOutput(ptr *C.ExtismPlugin) {
	if o.hasOutputLimit {
		C.plinth_plugin_set_output_limit(ptr, C.uint64_t(o.outputLimit))
	}
}

func collect(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// functionArray returns the C pointers of the host functions (C memory addresses held in
// Go memory, which cgo allows passing).
func (o *options) functionArray() ([]*C.ExtismFunction, error) {
	ptrs := make([]*C.ExtismFunction, 0, len(o.funcs))
	for _, f := range o.funcs {
		if f == nil || f.ptr == nil {
			return nil, &Error{Kind: KindOther, Code: -1, Message: "a host function is nil or freed"}
		}
		ptrs = append(ptrs, f.ptr)
	}
	return ptrs, nil
}

func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

func funcsPtr(f []*C.ExtismFunction) **C.ExtismFunction {
	if len(f) == 0 {
		return nil
	}
	return &f[0]
}

// takeErrmsg turns a creation error message into an *Error, with its kind, and frees it.
func takeErrmsg(errmsg *C.char, what string) error {
	if errmsg == nil {
		return &Error{Kind: KindOther, Code: -1, Message: what + " failed"}
	}
	defer C.extism_plugin_new_error_free(errmsg)
	return &Error{
		Kind:    kindOf(C.plinth_plugin_new_error_kind(errmsg)),
		Code:    -1,
		Message: C.GoString(errmsg),
	}
}

// Plugin is one loaded plug-in instance. It is safe for concurrent use, but its calls take
// turns: one instance runs one call at a time. For concurrent calls of one plug-in, use a
// [Pool]. Close it when done.
type Plugin struct {
	mu   turnLock     // serializes calls, so each call's output and error are read in turn
	life sync.RWMutex // guards ptr against Close, for the cancel handle (which skips mu)
	ptr  *C.ExtismPlugin
}

func newPlugin(ptr *C.ExtismPlugin) *Plugin {
	p := &Plugin{mu: newTurnLock(), ptr: ptr}
	runtime.SetFinalizer(p, (*Plugin).Close)
	return p
}

// NewPlugin loads a plug-in from wasm bytes, WAT text or an Extism manifest (JSON or TOML;
// relative paths in manifest bytes are relative to the working directory, as in Extism: load
// a manifest file with NewPluginFromFile to have them relative to its folder).
func NewPlugin(source []byte, opts ...Option) (*Plugin, error) {
	o := collect(opts)
	fns, err := o.functionArray()
	if err != nil {
		return nil, err
	}
	var errmsg *C.char
	var ptr *C.ExtismPlugin
	if o.hasFuel {
		ptr = C.extism_plugin_new_with_fuel_limit(bytesPtr(source), C.ExtismSize(len(source)),
			funcsPtr(fns), C.ExtismSize(len(fns)), C.bool(o.wasi), C.uint64_t(o.fuel), &errmsg)
	} else {
		ptr = C.extism_plugin_new(bytesPtr(source), C.ExtismSize(len(source)),
			funcsPtr(fns), C.ExtismSize(len(fns)), C.bool(o.wasi), &errmsg)
	}
	runtime.KeepAlive(o.funcs)
	if ptr == nil {
		return nil, takeErrmsg(errmsg, "loading the plug-in")
	}
	o.limitOutput(ptr)
	return newPlugin(ptr), nil
}

// NewPluginFromFile loads the plug-in in the file at path: a wasm binary, WAT text or a
// manifest (JSON or TOML), told apart by content. libplinth reads the file: in a manifest
// file, relative wasm paths and allowed_paths are relative to the manifest's folder, not to
// the working directory (as in every Plinth SDK and the plinth command). A file that cannot
// be read is an *Error of kind KindManifest.
func NewPluginFromFile(path string, opts ...Option) (*Plugin, error) {
	o := collect(opts)
	fns, err := o.functionArray()
	if err != nil {
		return nil, err
	}
	cpath, err := cPath(path)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cpath))
	var errmsg *C.char
	var ptr *C.ExtismPlugin
	if o.hasFuel {
		ptr = C.plinth_plugin_new_from_file_with_fuel_limit(cpath, funcsPtr(fns),
			C.ExtismSize(len(fns)), C.bool(o.wasi), C.uint64_t(o.fuel), &errmsg)
	} else {
		ptr = C.plinth_plugin_new_from_file(cpath, funcsPtr(fns), C.ExtismSize(len(fns)),
			C.bool(o.wasi), &errmsg)
	}
	runtime.KeepAlive(o.funcs)
	if ptr == nil {
		return nil, fileError(takeErrmsg(errmsg, "loading the plug-in"), path)
	}
	o.limitOutput(ptr)
	return newPlugin(ptr), nil
}

// cPath is path as a C string; a path holding a NUL byte is refused.
func cPath(path string) (*C.char, error) {
	for i := 0; i < len(path); i++ {
		if path[i] == 0 {
			return nil, &Error{Kind: KindOther, Code: -1, Message: fmt.Sprintf("path %q holds a NUL byte", path)}
		}
	}
	return C.CString(path), nil
}

// NewPluginFromManifest loads the plug-in a manifest describes.
func NewPluginFromManifest(m Manifest, opts ...Option) (*Plugin, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return NewPlugin(data, opts...)
}

// lastError is the plug-in's error message and kind as an *Error with the given code.
// Callers hold mu.
func (p *Plugin) lastError(code int32, what string) *Error {
	msg := C.extism_plugin_error(p.ptr)
	if msg == nil {
		return &Error{Kind: KindOther, Code: code, Message: what + " failed"}
	}
	return &Error{Kind: kindOf(C.plinth_plugin_error_kind(p.ptr)), Code: code, Message: C.GoString(msg)}
}

// Call calls the exported function name with input and returns a copy of its output.
func (p *Plugin) Call(name string, input []byte) ([]byte, error) {
	return p.call(context.Background(), name, input, nil)
}

// CallString is Call with a string input and output.
func (p *Plugin) CallString(name string, input string) (string, error) {
	out, err := p.call(context.Background(), name, []byte(input), nil)
	return string(out), err
}

// CallJSON marshals in as the input with encoding/json, calls name and unmarshals its
// output into out (skipped when out is nil).
func (p *Plugin) CallJSON(name string, in any, out any) error {
	return p.CallJSONContext(context.Background(), name, in, out)
}

// CallWithContext is Call with a per-call value, which the host functions this call runs
// get from CurrentPlugin.HostContext. (For cancellation and deadlines, see CallContext.)
func (p *Plugin) CallWithContext(name string, input []byte, ctx any) ([]byte, error) {
	return p.call(context.Background(), name, input, ctx)
}

// callContext is the host context of every call: the caller's values, the cancel handle
// of the instance running it (nil for CallFresh), and what host functions reported.
type callContext struct {
	user   any
	ctx    context.Context
	cancel *C.ExtismCancelHandle
	panics []string
	// hostErr is the first error a host function returned, hostFn that function's name.
	hostErr error
	hostFn  string
}

// stop cancels the running call, so that the plug-in does not run on after a host function
// failed or the call's context ended. A no-op for calls without a cancel handle.
func (cc *callContext) stop() {
	if cc.cancel != nil {
		C.extism_plugin_cancel(cc.cancel)
	}
}

// result turns a finished call's outcome into its error: a host function's panic first,
// then the end of ctx (which is why the call failed, whatever libplinth saw), then a host
// function's error, then libplinth's.
func (cc *callContext) result(err *Error) error {
	if len(cc.panics) > 0 {
		msg := "host function panicked: " + cc.panics[0]
		if err != nil {
			msg += "; " + err.Message
		}
		return &Error{Kind: KindHostFunction, Code: -1, Message: msg}
	}
	if err == nil && cc.hostErr == nil {
		return nil
	}
	if err == nil {
		// Only CallFresh gets here: it has no cancel handle, so the plug-in ran on.
		err = &Error{Kind: KindHostFunction, Code: -1}
	}
	if cc.ctx.Err() != nil {
		detail := err.Message
		if cc.hostErr != nil {
			detail = "host function " + cc.hostFn + ": " + cc.hostErr.Error()
		}
		return contextError(cc.ctx, err.Code, detail)
	}
	if cc.hostErr != nil {
		return &Error{Kind: KindHostFunction, Code: err.Code,
			Message: "host function " + cc.hostFn + " failed: " + cc.hostErr.Error(), cause: cc.hostErr}
	}
	return err
}

func (p *Plugin) call(ctx context.Context, name string, input []byte, user any) ([]byte, error) {
	if ctx.Err() != nil {
		return nil, contextError(ctx, -1, "")
	}
	if !p.mu.LockContext(ctx) {
		return nil, contextError(ctx, -1, "the call was waiting for the plug-in's previous call to end")
	}
	defer p.mu.Unlock()
	if p.ptr == nil {
		return nil, ErrClosed
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	cc := &callContext{user: user, ctx: ctx, cancel: C.extism_plugin_cancel_handle(p.ptr)}
	h := cgo.NewHandle(cc)
	defer h.Delete()
	stopWatch := watch(ctx, cc.cancel)
	rc := C.plinthgo_call(p.ptr, cname, bytesPtr(input), C.ExtismSize(len(input)), C.uintptr_t(h))
	stopWatch()
	runtime.KeepAlive(input)
	var err *Error
	// A plug-in that sets an error and returns 0 gets rc 0 (as from libextism), with the
	// message in extism_plugin_error: that is a failure too.
	if rc != 0 || C.extism_plugin_error(p.ptr) != nil {
		err = p.lastError(int32(rc), "the call")
	}
	if err := cc.result(err); err != nil {
		return nil, err
	}
	n := C.extism_plugin_output_length(p.ptr)
	out := make([]byte, int(n))
	if n > 0 {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(C.extism_plugin_output_data(p.ptr))), int(n)))
	}
	return out, nil
}

// FunctionExists reports whether the plug-in exports a callable function of that name.
func (p *Plugin) FunctionExists(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ptr == nil {
		return false
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return bool(C.extism_plugin_function_exists(p.ptr, cname))
}

// UpdateConfig changes the plug-in's config: a key with a nil value is removed, the others
// are set.
func (p *Plugin) UpdateConfig(config map[string]*string) error {
	if config == nil {
		config = map[string]*string{}
	}
	data, err := json.Marshal(config)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ptr == nil {
		return ErrClosed
	}
	if !C.extism_plugin_config(p.ptr, bytesPtr(data), C.ExtismSize(len(data))) {
		return p.lastError(-1, "updating the config")
	}
	return nil
}

// Reset releases the plug-in's Extism memory (vars stay).
func (p *Plugin) Reset() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ptr == nil {
		return ErrClosed
	}
	if !C.extism_plugin_reset(p.ptr) {
		return p.lastError(-1, "reset")
	}
	return nil
}

// AllowHTTPResponseHeaders lets the plug-in read the headers of its HTTP responses.
func (p *Plugin) AllowHTTPResponseHeaders() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ptr != nil {
		C.extism_plugin_allow_http_response_headers(p.ptr)
	}
}

// ID is the plug-in's unique id, a UUID such as "0b5c9a4e-...", or "" after Close.
func (p *Plugin) ID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ptr == nil {
		return ""
	}
	id := C.extism_plugin_id(p.ptr)
	if id == nil {
		return ""
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(id)), 16)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// CancelHandle returns a handle that cancels this plug-in's running call from any goroutine.
func (p *Plugin) CancelHandle() *CancelHandle { return &CancelHandle{p: p} }

// Close frees the plug-in, after waiting for a running call. Calling it again does nothing.
func (p *Plugin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.life.Lock()
	defer p.life.Unlock()
	if p.ptr != nil {
		C.extism_plugin_free(p.ptr)
		p.ptr = nil
		runtime.SetFinalizer(p, nil)
	}
	return nil
}

// CancelHandle cancels a plug-in's running call. It is safe for concurrent use.
type CancelHandle struct{ p *Plugin }

// Cancel makes the plug-in's running call fail with a message that mentions "cancelled".
// It does not affect later calls; when no call runs, or after Close, it does nothing. It
// returns false only after Close.
func (c *CancelHandle) Cancel() bool {
	c.p.life.RLock()
	defer c.p.life.RUnlock()
	if c.p.ptr == nil {
		return false
	}
	return bool(C.extism_plugin_cancel(C.extism_plugin_cancel_handle(c.p.ptr)))
}

// CompiledPlugin is a compiled plug-in from which instances are made without compiling
// again. It is safe for concurrent use. Close it when done; instances stay usable.
type CompiledPlugin struct {
	mu  sync.RWMutex
	ptr *C.ExtismCompiledPlugin
	// opts holds what instances inherit (the output limit).
	opts options
}

// NewCompiledPlugin compiles a plug-in from wasm bytes, WAT text or a manifest. The
// options are those of NewPlugin, except WithFuelLimit.
func NewCompiledPlugin(source []byte, opts ...Option) (*CompiledPlugin, error) {
	o := collect(opts)
	if o.hasFuel {
		return nil, &Error{Kind: KindOther, Code: -1, Message: "WithFuelLimit is not available for compiled plug-ins"}
	}
	fns, err := o.functionArray()
	if err != nil {
		return nil, err
	}
	var errmsg *C.char
	ptr := C.extism_compiled_plugin_new(bytesPtr(source), C.ExtismSize(len(source)),
		funcsPtr(fns), C.ExtismSize(len(fns)), C.bool(o.wasi), &errmsg)
	runtime.KeepAlive(o.funcs)
	if ptr == nil {
		return nil, takeErrmsg(errmsg, "compiling the plug-in")
	}
	return newCompiled(ptr, o), nil
}

func newCompiled(ptr *C.ExtismCompiledPlugin, o options) *CompiledPlugin {
	// Only what instances inherit; the host functions stay alive in libplinth.
	c := &CompiledPlugin{ptr: ptr, opts: options{outputLimit: o.outputLimit, hasOutputLimit: o.hasOutputLimit}}
	runtime.SetFinalizer(c, (*CompiledPlugin).Close)
	return c
}

// NewCompiledPluginFromFile compiles the plug-in in the file at path, read as
// NewPluginFromFile reads it (a manifest file's relative paths are relative to its folder).
// The options are those of NewPlugin, except WithFuelLimit.
func NewCompiledPluginFromFile(path string, opts ...Option) (*CompiledPlugin, error) {
	o := collect(opts)
	if o.hasFuel {
		return nil, &Error{Kind: KindOther, Code: -1, Message: "WithFuelLimit is not available for compiled plug-ins"}
	}
	fns, err := o.functionArray()
	if err != nil {
		return nil, err
	}
	cpath, err := cPath(path)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cpath))
	var errmsg *C.char
	ptr := C.plinth_compiled_plugin_new_from_file(cpath, funcsPtr(fns), C.ExtismSize(len(fns)),
		C.bool(o.wasi), &errmsg)
	runtime.KeepAlive(o.funcs)
	if ptr == nil {
		return nil, fileError(takeErrmsg(errmsg, "compiling the plug-in"), path)
	}
	return newCompiled(ptr, o), nil
}

// NewCompiledPluginFromManifest compiles the plug-in a manifest describes.
func NewCompiledPluginFromManifest(m Manifest, opts ...Option) (*CompiledPlugin, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return NewCompiledPlugin(data, opts...)
}

// CompileArtifact compiles a plug-in ahead of time into a precompiled artifact signed with
// key (at least 16 secret bytes; 32 random bytes are best), as `plinth compile` does. A host
// that holds the key loads it with NewCompiledPluginFromArtifact without compiling. The source
// is what NewCompiledPlugin takes (a manifest may have only its main module), and the options
// are its options: the host functions the plug-in imports and WASI are checked as at load
// time, and the artifact holds neither. A key that is too short is an *Error of kind
// KindArtifact.
//
// Whoever holds the key can make artifacts that a host holding it runs as native code: keep
// it as private as the host's own binaries.
func CompileArtifact(source []byte, key []byte, opts ...Option) ([]byte, error) {
	o := collect(opts)
	if o.hasFuel {
		return nil, &Error{Kind: KindOther, Code: -1, Message: "WithFuelLimit is not available for compiled plug-ins"}
	}
	fns, err := o.functionArray()
	if err != nil {
		return nil, err
	}
	var errmsg *C.char
	var size C.ExtismSize
	ptr := C.plinth_compile_artifact(bytesPtr(source), C.ExtismSize(len(source)), bytesPtr(key),
		C.ExtismSize(len(key)), funcsPtr(fns), C.ExtismSize(len(fns)), C.bool(o.wasi), &size, &errmsg)
	runtime.KeepAlive(source)
	runtime.KeepAlive(key)
	runtime.KeepAlive(o.funcs)
	if ptr == nil {
		return nil, takeErrmsg(errmsg, "compiling the artifact")
	}
	return takeBuffer(ptr, size), nil
}

// takeBuffer copies a buffer libplinth handed out into Go memory and frees it.
func takeBuffer(ptr *C.uint8_t, size C.ExtismSize) []byte {
	defer C.plinth_buffer_free(ptr)
	out := make([]byte, int(size))
	if size > 0 {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(ptr)), int(size)))
	}
	return out
}

// NewCompiledPluginFromArtifact loads a precompiled artifact (from CompileArtifact or
// `plinth compile`) without compiling. Its signature must verify under key, the key it was made
// with: bytes that are not an artifact, an artifact altered after it was made or one signed
// with another key fail with an *Error of kind KindArtifact, and nothing of it runs. An
// artifact made by another libplinth version or with other settings is compiled from the wasm
// it holds instead (IsPrecompiled then reports false). The options are those of
// NewCompiledPlugin.
func NewCompiledPluginFromArtifact(artifact []byte, key []byte, opts ...Option) (*CompiledPlugin, error) {
	o := collect(opts)
	if o.hasFuel {
		return nil, &Error{Kind: KindOther, Code: -1, Message: "WithFuelLimit is not available for compiled plug-ins"}
	}
	fns, err := o.functionArray()
	if err != nil {
		return nil, err
	}
	var errmsg *C.char
	ptr := C.plinth_compiled_plugin_new_from_artifact(bytesPtr(artifact), C.ExtismSize(len(artifact)),
		bytesPtr(key), C.ExtismSize(len(key)), funcsPtr(fns), C.ExtismSize(len(fns)), C.bool(o.wasi), &errmsg)
	runtime.KeepAlive(artifact)
	runtime.KeepAlive(key)
	runtime.KeepAlive(o.funcs)
	if ptr == nil {
		return nil, takeErrmsg(errmsg, "loading the artifact")
	}
	return newCompiled(ptr, o), nil
}

// IsPrecompiled reports whether the plug-in runs native code from a precompiled artifact
// (false when it was compiled, and after Close).
func (c *CompiledPlugin) IsPrecompiled() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ptr != nil && bool(C.plinth_compiled_plugin_is_precompiled(c.ptr))
}

// CallFresh calls the exported function name with input on a fresh instance made for this
// call alone, and returns a copy of its output. Nothing a call leaves behind (memory, globals,
// vars) is seen by the next, which isolates requests or tenants from each other; a fresh
// instance costs microseconds (libplinth pools instances). Safe for concurrent use. A failure
// is an *Error whose Code is Extism's return code, as for Plugin.Call, except that a plug-in
// that sets an error and returns 0 gives -1.
func (c *CompiledPlugin) CallFresh(name string, input []byte) ([]byte, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return nil, ErrClosed
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	cc := &callContext{ctx: context.Background()}
	h := cgo.NewHandle(cc)
	defer h.Delete()
	var out *C.uint8_t
	var size C.ExtismSize
	var errmsg *C.char
	rc := C.plinthgo_call_fresh(c.ptr, cname, bytesPtr(input), C.ExtismSize(len(input)), C.uintptr_t(h),
		&out, &size, &errmsg)
	runtime.KeepAlive(input)
	var res []byte
	if out != nil {
		res = takeBuffer(out, size)
	}
	var err *Error
	if rc != 0 {
		err, _ = takeErrmsg(errmsg, "the call").(*Error)
		err.Code = int32(rc)
	}
	if err := cc.result(err); err != nil {
		return nil, err
	}
	return res, nil
}

// Instance makes a new plug-in instance, with its own memory, vars and config.
func (c *CompiledPlugin) Instance() (*Plugin, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return nil, ErrClosed
	}
	var errmsg *C.char
	ptr := C.extism_plugin_new_from_compiled(c.ptr, &errmsg)
	if ptr == nil {
		return nil, takeErrmsg(errmsg, "instantiating the plug-in")
	}
	c.opts.limitOutput(ptr)
	return newPlugin(ptr), nil
}

// Close frees the compiled plug-in; instances made from it keep working. Calling it again
// does nothing.
func (c *CompiledPlugin) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr != nil {
		C.extism_compiled_plugin_free(c.ptr)
		c.ptr = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

// SetLogFile sends Plinth's and plug-ins' logs at level (trace, debug, info, warn, error or
// a tracing filter) to filename ("stdout" and "stderr" name the streams). Only the first
// logging setup of a process takes effect; later ones return false.
func SetLogFile(filename, level string) bool {
	cf, cl := C.CString(filename), C.CString(level)
	defer C.free(unsafe.Pointer(cf))
	defer C.free(unsafe.Pointer(cl))
	return bool(C.extism_log_file(cf, cl))
}

// SetLogCustom buffers logs at level until DrainLogs hands them out. Only the first logging
// setup of a process takes effect; later ones return false.
func SetLogCustom(level string) bool {
	cl := C.CString(level)
	defer C.free(unsafe.Pointer(cl))
	return bool(C.extism_log_custom(cl))
}

var drainMu sync.Mutex
var drainLines []string

// DrainLogs calls handler once per buffered log line (see SetLogCustom) and empties the
// buffer.
func DrainLogs(handler func(line string)) {
	drainMu.Lock()
	C.plinthgo_log_drain()
	lines := drainLines
	drainLines = nil
	drainMu.Unlock()
	for _, l := range lines {
		handler(l)
	}
}

package plinth

/*
#include <stdint.h>
#include <stdlib.h>
#include "plinth.h"

extern ExtismFunction *plinthgo_function_new(const char *name, const ExtismValType *in, ExtismSize n_in,
                                           const ExtismValType *out, ExtismSize n_out, uintptr_t handle);
*/
import "C"

import (
	"context"
	"errors"
	"math"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"unsafe"
)

// liveHostFuncs counts the host functions whose Go side libplinth still holds (for tests).
var liveHostFuncs atomic.Int64

// ValType is a wasm value type.
type ValType int32

// The wasm value types. Extism memory handles are I64 (PTR).
const (
	I32 ValType = iota
	I64
	F32
	F64
	V128
	FuncRef
	ExternRef
	// PTR is the type of an Extism memory handle.
	PTR = I64
)

func (t ValType) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	case V128:
		return "v128"
	case FuncRef:
		return "funcref"
	case ExternRef:
		return "externref"
	}
	return "ValType(?)"
}

// Val is a wasm value: its type and its bits. Make one with ValI32, ValI64, ValF32, ValF64
// or ValHandle, and read one with its methods.
type Val struct {
	Type ValType
	bits uint64
}

// ValI32 is an i32 value.
func ValI32(v int32) Val { return Val{I32, uint64(uint32(v))} }

// ValI64 is an i64 value.
func ValI64(v int64) Val { return Val{I64, uint64(v)} }

// ValF32 is an f32 value.
func ValF32(v float32) Val { return Val{F32, uint64(math.Float32bits(v))} }

// ValF64 is an f64 value.
func ValF64(v float64) Val { return Val{F64, math.Float64bits(v)} }

// ValHandle is an Extism memory handle (an i64).
func ValHandle(h uint64) Val { return Val{I64, h} }

// I32 is the value as an i32.
func (v Val) I32() int32 { return int32(uint32(v.bits)) }

// I64 is the value as an i64.
func (v Val) I64() int64 { return int64(v.bits) }

// F32 is the value as an f32.
func (v Val) F32() float32 { return math.Float32frombits(uint32(v.bits)) }

// F64 is the value as an f64.
func (v Val) F64() float64 { return math.Float64frombits(v.bits) }

// Handle is the value as an Extism memory handle.
func (v Val) Handle() uint64 { return v.bits }

// HostFunc is the Go code of a host function. inputs holds the arguments; outputs has one
// zero value of each result type, for the function to set (e.g. outputs[0] =
// ValHandle(h)). A panic is recovered: the results stay zero and the call fails.
type HostFunc func(p *CurrentPlugin, inputs []Val, outputs []Val)

// HostFuncContext is the Go code of a host function that receives its call's context and
// may fail. ctx is the context given to CallContext or Pool.Call (context.Background() for
// calls without one): a function that waits should return when ctx is done. A returned error
// stops the call, which fails with an *Error of kind KindHostFunction that wraps the error
// (so errors.Is and errors.As reach it), or, when ctx ended, with the context's error (see
// Plugin.CallContext). The outputs are then left zero.
type HostFuncContext func(ctx context.Context, p *CurrentPlugin, inputs []Val, outputs []Val) error

// hostFunc is what the cgo handle given to libplinth as user data refers to.
type hostFunc struct {
	name     string
	results  []ValType
	fn       HostFunc
	fnCtx    HostFuncContext
	userData any
}

// HostFunction is a Go function that plug-ins may import. Give it to plug-ins with
// WithFunctions; one HostFunction may serve many plug-ins, concurrently. Free it (or let
// the finalizer do it) when no more plug-ins are to be made with it: plug-ins already made
// keep working.
type HostFunction struct {
	mu   sync.Mutex
	ptr  *C.ExtismFunction
	name string
}

// NewHostFunction makes a host function named name, with wasm parameter and result types
// params and results, in the namespace extism:host/user. userData is handed to fn through
// CurrentPlugin.UserData.
func NewHostFunction(name string, params, results []ValType, fn HostFunc, userData any) *HostFunction {
	return newHostFunction(&hostFunc{name: name, results: append([]ValType(nil), results...), fn: fn,
		userData: userData}, params)
}

// NewHostFunctionContext is NewHostFunction for a function that receives its call's
// context and returns an error (see HostFuncContext). Plug-ins call it synchronously, as any
// host function; while it waits, only its own call waits: other calls, on other instances
// (see Pool), go on.
func NewHostFunctionContext(name string, params, results []ValType, fn HostFuncContext, userData any) *HostFunction {
	return newHostFunction(&hostFunc{name: name, results: append([]ValType(nil), results...), fnCtx: fn,
		userData: userData}, params)
}

func newHostFunction(hf *hostFunc, params []ValType) *HostFunction {
	cparams := valTypes(params)
	cresults := valTypes(hf.results)
	cname := C.CString(hf.name)
	defer C.free(unsafe.Pointer(cname))
	h := cgo.NewHandle(hf) // deleted by libplinth's free_user_data callback
	liveHostFuncs.Add(1)
	ptr := C.plinthgo_function_new(cname, typesPtr(cparams), C.ExtismSize(len(cparams)),
		typesPtr(cresults), C.ExtismSize(len(cresults)), C.uintptr_t(h))
	if ptr == nil {
		h.Delete()
		liveHostFuncs.Add(-1)
		panic("plinth: extism_function_new failed")
	}
	f := &HostFunction{ptr: ptr, name: hf.name}
	runtime.SetFinalizer(f, (*HostFunction).Free)
	return f
}

func valTypes(ts []ValType) []C.ExtismValType {
	out := make([]C.ExtismValType, len(ts))
	for i, t := range ts {
		out[i] = C.ExtismValType(t)
	}
	return out
}

func typesPtr(ts []C.ExtismValType) *C.ExtismValType {
	if len(ts) == 0 {
		return nil
	}
	return &ts[0]
}

// Name is the function's import name.
func (f *HostFunction) Name() string { return f.name }

// SetNamespace sets the module name the plug-in imports the function from (default
// "extism:host/user"). Set it before making plug-ins with the function.
func (f *HostFunction) SetNamespace(namespace string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ptr == nil {
		return
	}
	cns := C.CString(namespace)
	defer C.free(unsafe.Pointer(cns))
	C.extism_function_set_namespace(f.ptr, cns)
}

// Free releases the function; plug-ins already made with it keep working, and its user
// data is released with the last of them. Calling it again does nothing. Do not call it
// while a NewPlugin with this function runs.
func (f *HostFunction) Free() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ptr != nil {
		C.extism_function_free(f.ptr)
		f.ptr = nil
		runtime.SetFinalizer(f, nil)
	}
}

// CurrentPlugin is the plug-in that called a host function. It is valid only during that
// call; afterwards its methods fail.
type CurrentPlugin struct {
	ptr  *C.ExtismCurrentPlugin
	fn   *hostFunc
	call *callContext
}

var errInvalid = errors.New("plinth: CurrentPlugin used after its host function returned")

// memory is the plug-in's Extism memory from handle h, n bytes long.
func (c *CurrentPlugin) memory(h, n uint64) ([]byte, error) {
	base := C.extism_current_plugin_memory(c.ptr)
	if base == nil {
		return nil, errors.New("plinth: the plug-in has no Extism memory")
	}
	if n == 0 {
		return []byte{}, nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(base), uintptr(h))), int(n)), nil
}

// ReadBytes returns a copy of the memory block at handle.
func (c *CurrentPlugin) ReadBytes(handle uint64) ([]byte, error) {
	if c.ptr == nil {
		return nil, errInvalid
	}
	n := uint64(C.extism_current_plugin_memory_length(c.ptr, C.ExtismMemoryHandle(handle)))
	mem, err := c.memory(handle, n)
	if err != nil {
		return nil, err
	}
	return append([]byte{}, mem...), nil
}

// ReadString returns the memory block at handle as a string.
func (c *CurrentPlugin) ReadString(handle uint64) (string, error) {
	b, err := c.ReadBytes(handle)
	return string(b), err
}

// WriteBytes copies b into a new memory block of the plug-in and returns its handle, e.g.
// to return it as a host function result (outputs[0] = ValHandle(h)).
func (c *CurrentPlugin) WriteBytes(b []byte) (uint64, error) {
	h, err := c.Alloc(uint64(len(b)))
	if err != nil {
		return 0, err
	}
	mem, err := c.memory(h, uint64(len(b)))
	if err != nil {
		return 0, err
	}
	copy(mem, b)
	return h, nil
}

// WriteString is WriteBytes for a string.
func (c *CurrentPlugin) WriteString(s string) (uint64, error) { return c.WriteBytes([]byte(s)) }

// Alloc allocates n bytes of the plug-in's memory and returns the block's handle.
func (c *CurrentPlugin) Alloc(n uint64) (uint64, error) {
	if c.ptr == nil {
		return 0, errInvalid
	}
	h := uint64(C.extism_current_plugin_memory_alloc(c.ptr, C.ExtismSize(n)))
	if h == 0 {
		return 0, errors.New("plinth: allocating plug-in memory failed")
	}
	return h, nil
}

// Free frees the memory block at handle.
func (c *CurrentPlugin) Free(handle uint64) {
	if c.ptr != nil {
		C.extism_current_plugin_memory_free(c.ptr, C.ExtismMemoryHandle(handle))
	}
}

// Length is the length of the memory block at handle, 0 if there is none.
func (c *CurrentPlugin) Length(handle uint64) uint64 {
	if c.ptr == nil {
		return 0
	}
	return uint64(C.extism_current_plugin_memory_length(c.ptr, C.ExtismMemoryHandle(handle)))
}

// HostContext is the ctx given to Plugin.CallWithContext for this call, or nil.
func (c *CurrentPlugin) HostContext() any {
	if c.call == nil {
		return nil
	}
	return c.call.user
}

// UserData is the userData given to NewHostFunction.
func (c *CurrentPlugin) UserData() any { return c.fn.userData }

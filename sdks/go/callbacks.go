package plinth

// Functions libplinth calls. This file's preamble only includes the header: cgo copies it
// into _cgo_export.h.

/*
#include "plinth.h"
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"unsafe"
)

//export plinthGoTrampoline
func plinthGoTrampoline(cp *C.ExtismCurrentPlugin, inputs *C.ExtismVal, nIn C.ExtismSize,
	outputs *C.ExtismVal, nOut C.ExtismSize, data unsafe.Pointer) {
	var cc *callContext
	if ctx := C.extism_current_plugin_host_context(cp); ctx != nil {
		cc, _ = cgo.Handle(uintptr(ctx)).Value().(*callContext)
	}
	cout := unsafe.Slice(outputs, int(nOut))
	var hf *hostFunc
	zero := func() {
		for i := range cout {
			cout[i] = C.ExtismVal{}
			if hf != nil && i < len(hf.results) {
				cout[i].t = C.ExtismValType(hf.results[i])
			}
		}
	}
	defer func() {
		if r := recover(); r != nil {
			zero()
			if cc != nil {
				name := "?"
				if hf != nil {
					name = hf.name
				}
				cc.panics = append(cc.panics, fmt.Sprintf("%s: %v", name, r))
				cc.stop()
			}
		}
	}()
	hf = cgo.Handle(uintptr(data)).Value().(*hostFunc)
	cin := unsafe.Slice(inputs, int(nIn))
	in := make([]Val, len(cin))
	for i, v := range cin {
		in[i] = Val{Type: ValType(v.t), bits: *(*uint64)(unsafe.Pointer(&v.v))}
		switch in[i].Type {
		case I32, F32:
			in[i].bits &= 0xffffffff
		}
	}
	out := make([]Val, len(cout))
	for i := range out {
		if i < len(hf.results) {
			out[i].Type = hf.results[i]
		}
	}
	cur := &CurrentPlugin{ptr: cp, fn: hf, call: cc}
	defer func() { cur.ptr = nil }()
	var err error
	if hf.fnCtx != nil {
		err = hf.fnCtx(cur.Context(), cur, in, out)
	} else {
		hf.fn(cur, in, out)
	}
	if cc != nil && (err != nil || cc.ctx.Err() != nil) {
		// Stop the plug-in before it runs on: libplinth checks for a cancel as the host
		// function returns.
		cc.stop()
		if err != nil && cc.hostErr == nil {
			cc.hostErr, cc.hostFn = err, hf.name
		}
	}
	if err != nil {
		zero()
		return
	}
	for i, v := range out {
		t := v.Type
		if i < len(hf.results) {
			t = hf.results[i]
		}
		cout[i].t = C.ExtismValType(t)
		bits := v.bits
		if t == I32 || t == F32 {
			bits &= 0xffffffff
		}
		*(*uint64)(unsafe.Pointer(&cout[i].v)) = bits
	}
}

//export plinthGoFreeUserData
func plinthGoFreeUserData(data unsafe.Pointer) {
	defer func() { _ = recover() }()
	cgo.Handle(uintptr(data)).Delete()
	liveHostFuncs.Add(-1)
}

//export plinthGoLogLine
func plinthGoLogLine(data *C.char, size C.ExtismSize) {
	drainLines = append(drainLines, C.GoStringN(data, C.int(size)))
}

package plinth

/*
#include <stdint.h>
#include <stdlib.h>
#include "plinth.h"

// Implemented in Go (stream_callbacks.go).
extern int64_t plinthGoStreamRead(void*, uint8_t*, uint64_t);
extern int64_t plinthGoStreamWrite(void*, uint8_t*, uint64_t);

static int32_t plinthgo_call_stream(ExtismPlugin *p, const char *name, uintptr_t streams,
                                    uintptr_t ctx, PlinthStreamStats *stats) {
  return plinth_plugin_call_stream_with_host_context(p, name, (PlinthStreamRead)plinthGoStreamRead,
                                                     (PlinthStreamWrite)plinthGoStreamWrite,
                                                     (void *)streams, (void *)ctx, stats);
}
*/
import "C"

import (
	"context"
	"io"
	"runtime/cgo"
	"unsafe"
)

// StreamStats is what went through a streaming call.
type StreamStats struct {
	// InputBytes is the number of input bytes the plug-in was given.
	InputBytes uint64
	// OutputBytes is the number of bytes written to the output.
	OutputBytes uint64
}

// CallStream calls the exported function name with r as its input stream and w as its
// output stream, and returns what went through. A plug-in that streams (one that reads its
// input with plinth:host/env stream_read, as the Plinth PDKs' input and output streams do)
// reads r a chunk at a time as it asks for it, and each chunk it writes reaches w before its
// write returns: output comes out while input still goes in, memory stays bounded, and a
// slow w slows the plug-in. A plug-in that does not stream (any Extism-PDK plug-in) gets all
// of r first, up to what its memory can hold, and its output is written to w at the end.
//
// r and w are used on the calling goroutine, only during the call; the slices handed to them
// point into the plug-in's memory and must not be kept (as io.Reader and io.Writer require).
// A nil r is an empty input; a nil w discards the output.
//
// An error of r or w (other than io.EOF), an output over the output limit (SetOutputLimit)
// or an input too large for a plug-in that does not stream fails the call with an *Error of
// kind KindStream, which wraps the reader's or writer's own error: errors.Is(err, yourErr)
// works. A panic in r or w fails the call the same way. The plug-in's other limits
// (timeout_ms, fuel, memory) apply as to Call.
func (p *Plugin) CallStream(name string, r io.Reader, w io.Writer) (StreamStats, error) {
	return p.callStream(context.Background(), name, r, w)
}

// CallStreamContext is CallStream bound to ctx, as CallContext is. When ctx ends, the plug-in
// is stopped and the reader is not called again; a Read or Write that is blocked when ctx
// ends holds the call until it returns (close the pipe or connection behind it to end it).
func (p *Plugin) CallStreamContext(ctx context.Context, name string, r io.Reader, w io.Writer) (StreamStats, error) {
	return p.callStream(ctx, name, r, w)
}

// SetOutputLimit caps what one streaming call (CallStream) may write to its writer: a write
// that would go over fails the call with an *Error of kind KindStream, after the bytes before
// it were written. There is no cap by default (or WithOutputLimit's); n = math.MaxUint64
// removes it. Classic calls
// (Call) are not affected: their output is bounded by the plug-in's memory.
func (p *Plugin) SetOutputLimit(n uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ptr == nil {
		return ErrClosed
	}
	C.plinth_plugin_set_output_limit(p.ptr, C.uint64_t(n))
	return nil
}

// CallStream calls name on a free instance with r and w as its streams, as
// Plugin.CallStreamContext does; ctx also ends the wait for a free instance. The instances
// have the compiled plug-in's WithOutputLimit.
func (p *Pool) CallStream(ctx context.Context, name string, r io.Reader, w io.Writer) (StreamStats, error) {
	inst, err := p.get(ctx)
	if err != nil {
		return StreamStats{}, err
	}
	defer p.put(inst)
	return inst.callStream(ctx, name, r, w)
}

// streams is what the stream callbacks reach through their user data.
type streams struct {
	r   io.Reader
	w   io.Writer
	ctx context.Context
	// rest is what the reader returned with its last bytes (io.EOF or an error), for the
	// next read.
	rest error
	// readErr and writeErr are the errors that failed the call's streams.
	readErr, writeErr error
}

func (p *Plugin) callStream(ctx context.Context, name string, r io.Reader, w io.Writer) (StreamStats, error) {
	if r == nil {
		r = eofReader{}
	}
	if w == nil {
		w = io.Discard
	}
	if ctx.Err() != nil {
		return StreamStats{}, contextError(ctx, -1, "")
	}
	if !p.mu.LockContext(ctx) {
		return StreamStats{}, contextError(ctx, -1, "the call was waiting for the plug-in's previous call to end")
	}
	defer p.mu.Unlock()
	if p.ptr == nil {
		return StreamStats{}, ErrClosed
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	cc := &callContext{ctx: ctx, cancel: C.extism_plugin_cancel_handle(p.ptr)}
	h := cgo.NewHandle(cc)
	defer h.Delete()
	s := &streams{r: r, w: w, ctx: ctx}
	sh := cgo.NewHandle(s)
	defer sh.Delete()
	var stats C.PlinthStreamStats
	stopWatch := watch(ctx, cc.cancel)
	rc := C.plinthgo_call_stream(p.ptr, cname, C.uintptr_t(sh), C.uintptr_t(h), &stats)
	stopWatch()
	var err *Error
	if rc != 0 {
		err = p.lastError(int32(rc), "the streaming call")
		if err.Kind == KindStream {
			// The caller's own error, in the message and for errors.Is and errors.As.
			if s.readErr != nil {
				err.cause = s.readErr
				err.Message += "; the reader's error: " + s.readErr.Error()
			} else if s.writeErr != nil {
				err.cause = s.writeErr
				err.Message += "; the writer's error: " + s.writeErr.Error()
			}
		}
	}
	if err := cc.result(err); err != nil {
		return StreamStats{}, err
	}
	return StreamStats{InputBytes: uint64(stats.input_bytes), OutputBytes: uint64(stats.output_bytes)}, nil
}

// eofReader is the empty input of a nil reader.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

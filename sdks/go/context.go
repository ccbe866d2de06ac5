package plinth

/*
#include "plinth.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// CallContext is Call bound to ctx. When ctx is done before the call starts, or while it
// waits for its turn on the plug-in, the call does not run; when ctx is done while the call
// runs, the plug-in is stopped (as by its CancelHandle) and host functions see ctx end
// through CurrentPlugin.Context. Either way the error is an *Error of kind KindTimeout
// (ctx's deadline passed) or KindCancelled that wraps ctx.Err(), so errors.Is(err,
// context.DeadlineExceeded) and errors.Is(err, context.Canceled) work. A call that finished
// before it could be stopped returns its output.
func (p *Plugin) CallContext(ctx context.Context, name string, input []byte) ([]byte, error) {
	return p.call(ctx, name, input, nil)
}

// CallStringContext is CallContext with a string input and output.
func (p *Plugin) CallStringContext(ctx context.Context, name string, input string) (string, error) {
	out, err := p.call(ctx, name, []byte(input), nil)
	return string(out), err
}

// CallJSONContext is CallJSON bound to ctx, as CallContext is.
func (p *Plugin) CallJSONContext(ctx context.Context, name string, in any, out any) error {
	return callJSON(in, out, func(data []byte) ([]byte, error) { return p.call(ctx, name, data, nil) })
}

func callJSON(in any, out any, call func([]byte) ([]byte, error)) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	res, err := call(data)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(res, out)
}

// Context is the context of the call that runs the host function: the ctx given to
// CallContext (or Pool.Call), context.Background() for calls without one. A host function
// that waits (on a channel, the network, a timer) should give up when it is done: libplinth
// cannot interrupt Go code, so a host function that ignores it keeps its call running.
func (c *CurrentPlugin) Context() context.Context {
	if c.call == nil || c.call.ctx == nil {
		return context.Background()
	}
	return c.call.ctx
}

// contextError is the error of a call that ctx stopped or kept from running: of kind
// KindTimeout when ctx's deadline passed, else KindCancelled, wrapping ctx.Err(). detail
// says what else went on, if anything.
func contextError(ctx context.Context, code int32, detail string) *Error {
	cerr := ctx.Err()
	kind := KindCancelled
	if errors.Is(cerr, context.DeadlineExceeded) {
		kind = KindTimeout
	}
	msg := "the call's context ended: " + cerr.Error()
	if cause := context.Cause(ctx); cause != nil && cause != cerr {
		msg += " (" + cause.Error() + ")"
	}
	if detail != "" {
		msg += "; " + detail
	}
	return &Error{Kind: kind, Code: code, Message: msg, cause: cerr}
}

// watch stops the running call through cancel once ctx is done, until the returned function
// is called (when the call has returned). libplinth drops a cancel that lands before the
// call has started, so the watcher cancels again, at growing intervals (each cancel also
// interrupts the engine's other calls briefly), until then. The returned function waits for
// a watcher that has started, so that none of its cancels can reach a later call.
func watch(ctx context.Context, cancel *C.ExtismCancelHandle) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	returned := make(chan struct{})
	finished := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		defer close(finished)
		wait := 5 * time.Millisecond
		for {
			C.extism_plugin_cancel(cancel)
			t := time.NewTimer(wait)
			select {
			case <-returned:
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, 500*time.Millisecond)
		}
	})
	return func() {
		close(returned)
		if !stopAfter() {
			<-finished
		}
	}
}

// turnLock is a mutex whose waiters may give up when a context ends.
type turnLock struct{ ch chan struct{} }

func newTurnLock() turnLock { return turnLock{ch: make(chan struct{}, 1)} }

func (l turnLock) Lock() { l.ch <- struct{}{} }

func (l turnLock) Unlock() { <-l.ch }

// LockContext locks, or gives up and returns false when ctx is done first.
func (l turnLock) LockContext(ctx context.Context) bool {
	select {
	case l.ch <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

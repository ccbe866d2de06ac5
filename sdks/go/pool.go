package plinth

import (
	"context"
	"fmt"
	"sync"
)

// Pool runs calls of one compiled plug-in concurrently: each call borrows an instance of its
// own, made with CompiledPlugin.Instance and kept for later calls, so calls never wait for
// one another while instances are free. At most maxInstances exist; a call that finds them
// all busy waits for one, or gives up when its context is done. It is safe for concurrent
// use.
//
// The instances are interchangeable: which one a call gets is unspecified, so state a
// plug-in keeps between calls (vars, memory) is per instance. Use a Pool for plug-ins whose
// calls stand alone, and a Plugin when calls must see each other's state.
type Pool struct {
	compiled *CompiledPlugin
	// slots holds one token per call in progress; its capacity bounds the instances.
	slots  chan struct{}
	mu     sync.Mutex
	idle   []*Plugin
	live   int // instances made and not yet closed
	closed bool
}

// NewPool makes a pool of at most maxInstances instances of compiled. Instances are made
// as calls need them. The pool does not own compiled: closing it is the caller's business,
// and instances already made keep working after it.
func NewPool(compiled *CompiledPlugin, maxInstances int) (*Pool, error) {
	if compiled == nil {
		return nil, &Error{Kind: KindOther, Code: -1, Message: "NewPool: the compiled plug-in is nil"}
	}
	if maxInstances < 1 {
		return nil, &Error{Kind: KindOther, Code: -1,
			Message: fmt.Sprintf("NewPool: maxInstances is %d; give at least 1", maxInstances)}
	}
	return &Pool{compiled: compiled, slots: make(chan struct{}, maxInstances)}, nil
}

// Call calls the exported function name with input on a free instance and returns a copy
// of its output. ctx works as in Plugin.CallContext, and also ends the wait for a free
// instance.
func (p *Pool) Call(ctx context.Context, name string, input []byte) ([]byte, error) {
	inst, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	defer p.put(inst)
	return inst.call(ctx, name, input, nil)
}

// CallString is Call with a string input and output.
func (p *Pool) CallString(ctx context.Context, name string, input string) (string, error) {
	out, err := p.Call(ctx, name, []byte(input))
	return string(out), err
}

// CallJSON marshals in as the input with encoding/json, calls name and unmarshals its
// output into out (skipped when out is nil), as Plugin.CallJSON does.
func (p *Pool) CallJSON(ctx context.Context, name string, in any, out any) error {
	return callJSON(in, out, func(data []byte) ([]byte, error) { return p.Call(ctx, name, data) })
}

// Instances is the number of instances the pool holds now (busy or idle).
func (p *Pool) Instances() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live
}

// Close frees the idle instances, and those in use as their calls return. Calls after Close
// return ErrClosed. Calling it again does nothing.
func (p *Pool) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.live -= len(idle)
	p.mu.Unlock()
	for _, inst := range idle {
		inst.Close()
	}
	return nil
}

// get takes a slot, then an idle instance or, when there is none, a new one.
func (p *Pool) get(ctx context.Context) (*Plugin, error) {
	if ctx.Err() != nil {
		return nil, contextError(ctx, -1, "")
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, contextError(ctx, -1, fmt.Sprintf("the call was waiting for a free instance (all %d busy)", cap(p.slots)))
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		inst := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return inst, nil
	}
	p.mu.Unlock()
	inst, err := p.compiled.Instance()
	if err != nil {
		<-p.slots
		return nil, err
	}
	p.mu.Lock()
	p.live++
	p.mu.Unlock()
	return inst, nil
}

// put gives an instance back after its call, and its slot.
func (p *Pool) put(inst *Plugin) {
	p.mu.Lock()
	if p.closed {
		p.live--
		p.mu.Unlock()
		inst.Close()
	} else {
		p.idle = append(p.idle, inst)
		p.mu.Unlock()
	}
	<-p.slots
}

// Package plinth runs WebAssembly plug-ins from Go, through libplinth: the C API of Plinth,
// a WebAssembly plug-in runtime (Rust, wasmtime) that speaks the Extism plug-in ABI. Plug-ins
// built with the Extism PDKs or Plinth's own PDKs load unchanged.
//
// # Loading and calling
//
// A plug-in is loaded from wasm bytes, WAT text or an Extism manifest (JSON or TOML), or from
// a file holding one of them. libplinth reads the file: in a manifest file, relative wasm
// paths and allowed_paths are relative to the manifest's folder, not to the working
// directory, as in every Plinth SDK and the plinth command:
//
//	p, err := plinth.NewPluginFromFile("checkout.wasm", plinth.WithWASI(false))
//	if err != nil { ... }
//	defer p.Close()
//	out, err := p.Call("count_vowels", []byte("Hello"))
//
// Each call method has a form bound to a [context.Context] ([Plugin.CallContext],
// [Plugin.CallStringContext], [Plugin.CallJSONContext]): the context cancels the call or
// gives it a deadline, also while a host function that honours it waits (see below):
//
//	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
//	defer cancel()
//	out, err := p.CallContext(ctx, "count_vowels", []byte("Hello"))
//	if errors.Is(err, context.DeadlineExceeded) { ... } // an *Error of kind KindTimeout
//
// [Plugin.Call] copies the output, so it stays valid after later calls. [Plugin.CallJSON]
// marshals the input and unmarshals the output with encoding/json. To make many instances of
// one plug-in without compiling it again, use [NewCompiledPlugin] and
// [CompiledPlugin.Instance]; [CompiledPlugin.CallFresh] runs one call on an instance of its
// own. [CompileArtifact] and [NewCompiledPluginFromArtifact] skip compiling at load time with
// a precompiled artifact signed by a secret key.
//
// # Concurrency
//
// A [Plugin] is one instance of a plug-in: it runs one call at a time, and concurrent calls
// on it take turns. For concurrent calls of one plug-in, make a [Pool] over a
// [CompiledPlugin]: each call borrows an instance of its own (made as needed, kept for reuse,
// at most the pool's bound), so calls whose host functions wait do not hold each other up:
//
//	c, _ := plinth.NewCompiledPluginFromFile("plugin.wasm", plinth.WithFunctions(fetch))
//	pool, _ := plinth.NewPool(c, 64)
//	defer pool.Close()
//	out, err := pool.Call(ctx, "handle", request) // from any number of goroutines
//
// # Host functions
//
// [NewHostFunction] makes a Go function that plug-ins import (namespace extism:host/user
// unless [HostFunction.SetNamespace] says otherwise). It receives the calling plug-in as a
// [CurrentPlugin], whose methods read and write the plug-in's Extism memory, and reach the
// function's user data, the call's [context.Context] ([CurrentPlugin.Context]) and the
// per-call value given to [Plugin.CallWithContext]. [NewHostFunctionContext] makes one that
// receives the context and returns an error:
//
//	lookup := plinth.NewHostFunctionContext("lookup", []plinth.ValType{plinth.PTR}, []plinth.ValType{plinth.PTR},
//		func(ctx context.Context, p *plinth.CurrentPlugin, in, out []plinth.Val) error {
//			key, err := p.ReadString(in[0].Handle())
//			if err != nil {
//				return err
//			}
//			value, err := store.Get(ctx, key) // waits, and gives up when ctx is done
//			if err != nil {
//				return err // the call stops and returns an *Error wrapping err
//			}
//			h, err := p.WriteString(value)
//			out[0] = plinth.ValHandle(h)
//			return err
//		}, nil)
//
// Plug-ins call host functions synchronously (the Extism ABI is unchanged): while one waits,
// its call waits, and the goroutine that made the call blocks; other calls, on other
// instances, go on. libplinth cannot interrupt Go code, so a host function that waits should
// honour its context: when the call's context ends, the call fails as soon as the host
// function returns. (A manifest's timeout_ms, too, is acted on only when a host function
// returns; give calls that wait a context deadline.)
//
// A host function's error, or a panic, stops the call as the function returns (on a
// [Plugin] or [Pool]; under [CompiledPlugin.CallFresh] the plug-in runs on with zero results)
// and the call returns an *[Error] of kind KindHostFunction. A panic is recovered before it
// reaches libplinth.
//
// # Limits
//
// [Manifest.TimeoutMs] limits the wall-clock time of each call, [MemoryOptions.MaxPages]
// the plug-in's memory, [WithFuelLimit] the work of each call, and [CancelHandle.Cancel]
// stops a running call from another goroutine, as the end of a call's context does. A plug-in that traps, times out, runs out of
// memory or is cancelled is replaced by a fresh instance at its next call; the host keeps
// running.
//
// # Errors
//
// Every failure of libplinth is returned as an *[Error] with libplinth's message, its
// [ErrorKind] and, for a failed call, Extism's return code: the plug-in's own code when it
// returned one, 134 for a trap, else -1 (timeouts, cancellation, host errors; loading). The
// kind's name (Kind.String(), e.g. "timeout") and number (Kind.Number(), e.g. 10) are the
// runtime's, the same in every Plinth SDK. Use errors.As to get it:
//
//	var perr *plinth.Error
//	if errors.As(err, &perr) && perr.Kind == plinth.KindTimeout { ... }
//
// A call stopped or kept from running by its context returns an *[Error] of kind KindTimeout
// (the context's deadline passed) or KindCancelled that wraps ctx.Err(), so errors.Is(err,
// context.DeadlineExceeded) and errors.Is(err, context.Canceled) work. A host function's
// error is wrapped too: errors.Is and errors.As reach it.
//
// Calls on a closed plug-in return [ErrClosed] (errors.Is matches every error of kind
// KindClosed). A plug-in file that cannot be read is an error of kind KindManifest that wraps
// the os error, so errors.Is(err, fs.ErrNotExist) works.
//
// # Thread safety
//
// libplinth lets a plug-in be used from any thread, with calls on it taking turns, and lets
// a compiled plug-in be shared by threads freely. This package keeps those rules:
//   - A [Plugin] may be used from many goroutines. Its calls run one at a time, and each
//     call's output and error are read before the next call starts. A call with a context
//     stops waiting for its turn when the context ends.
//   - A [Pool] may be used from many goroutines; its calls run concurrently, each on an
//     instance of its own.
//   - A [CompiledPlugin] may be shared; [CompiledPlugin.Instance] and
//     [CompiledPlugin.CallFresh] may run concurrently.
//   - A [CancelHandle] may be used from any goroutine, also after [Plugin.Close] (it then
//     does nothing).
//   - A [CurrentPlugin] is valid only during the host function call that received it.
//   - A host function must not call the [Plugin] that is calling it: libplinth would refuse
//     that call, but this package serializes calls on a Plugin first, so it waits for good
//     (or until its context ends). Use another instance instead.
//   - [Plugin.Close] waits for a running call to finish; cancel the call first to end it
//     early.
//
// Resources are freed by Close; a finalizer frees a forgotten Plugin, CompiledPlugin or
// HostFunction as a safety net.
//
// # Building
//
// The package uses cgo and finds libplinth with pkg-config (package "plinth"); see the
// README for installing libplinth and setting PKG_CONFIG_PATH.
package plinth

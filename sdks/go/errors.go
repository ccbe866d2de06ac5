package plinth

/*
#include <stdint.h>
#include "plinth.h"
*/
import "C"

import (
	"fmt"
	"os"
)

// ErrorKind is the kind of a failure: the runtime's error kind, with the same stable number
// and name in every Plinth SDK and in the C API (plinth.h's PLINTH_ERROR_KIND_*). Its String
// is the name ("trap", "function_not_found", "timeout", ...); converted to an integer it is
// the number. Numbers never change meaning; new kinds get new numbers.
type ErrorKind int32

// The kinds of failure.
const (
	// KindNone is no failure; no Error has it.
	KindNone ErrorKind = 0
	// KindManifest: the manifest or plug-in file could not be read or parsed, or is invalid
	// (a missing file, a hash mismatch, an unknown field).
	KindManifest ErrorKind = 1
	// KindCompile: a module is not valid WebAssembly or WAT.
	KindCompile ErrorKind = 2
	// KindCompileLimit: a module is over a compile limit (size, function count, deadline).
	KindCompileLimit ErrorKind = 3
	// KindLink: the plug-in's imports cannot be satisfied, or its start-up failed.
	KindLink ErrorKind = 4
	// KindFunctionNotFound: no callable export has the name called.
	KindFunctionNotFound ErrorKind = 5
	// KindNotCallable: the export called is not a function of a plug-in's type.
	KindNotCallable ErrorKind = 6
	// KindTrap: the plug-in trapped (Code 134).
	KindTrap ErrorKind = 7
	// KindGuest: the plug-in reported a failure of its own (Code is its return code).
	KindGuest ErrorKind = 8
	// KindExit: the plug-in exited through WASI proc_exit with a non-zero code.
	KindExit ErrorKind = 9
	// KindTimeout: the call ran past the manifest's timeout_ms.
	KindTimeout ErrorKind = 10
	// KindCancelled: the call was cancelled through a CancelHandle.
	KindCancelled ErrorKind = 11
	// KindOutOfMemory: the plug-in went over its memory budget.
	KindOutOfMemory ErrorKind = 12
	// KindOutOfFuel: the call used up its fuel (WithFuelLimit).
	KindOutOfFuel ErrorKind = 13
	// KindHTTPDenied: an HTTP request went to a host outside allowed_hosts.
	KindHTTPDenied ErrorKind = 14
	// KindHTTP: an HTTP request failed or was refused for its shape.
	KindHTTP ErrorKind = 15
	// KindVarStoreFull: the var store is over memory.max_var_bytes.
	KindVarStoreFull ErrorKind = 16
	// KindHostFunction: a host function failed (or panicked).
	KindHostFunction ErrorKind = 17
	// KindReentrant: a host function called back into the plug-in that called it.
	KindReentrant ErrorKind = 18
	// KindWASI: WASI could not be set up (a bad allowed_paths entry).
	KindWASI ErrorKind = 19
	// KindConvert: input or output could not be converted.
	KindConvert ErrorKind = 20
	// KindMemory: a memory handle or allocation was refused.
	KindMemory ErrorKind = 21
	// KindClosed: the plug-in was closed.
	KindClosed ErrorKind = 22
	// KindBusy: the plug-in is running a call elsewhere and the caller asked not to wait.
	KindBusy ErrorKind = 23
	// KindOther: anything else, including a bad argument.
	KindOther ErrorKind = 24
	// KindArtifact: a precompiled artifact was refused: not an artifact, altered after it was
	// made, signed with another key, or compiled from another module (or the key is shorter
	// than 16 bytes).
	KindArtifact ErrorKind = 25
	// KindStream: a streaming call's reader or writer failed (the *Error wraps its error),
	// its output went over the output limit, or its input is too large for a plug-in that
	// does not stream.
	KindStream ErrorKind = 26
)

// String is the kind's stable name, from libplinth ("trap", "out_of_fuel", ...), or
// "ErrorKind(N)" for a number that is no kind.
func (k ErrorKind) String() string {
	if name := C.plinth_error_kind_name(C.int32_t(k)); name != nil {
		return C.GoString(name)
	}
	return fmt.Sprintf("ErrorKind(%d)", int32(k))
}

// Number is the kind's stable number (int32(k)).
func (k ErrorKind) Number() int32 { return int32(k) }

// Error is a failure reported by libplinth. Get it with errors.As:
//
//	var perr *plinth.Error
//	if errors.As(err, &perr) && perr.Kind == plinth.KindTimeout { ... }
type Error struct {
	// Kind is the kind of failure; Kind.String() is its name and int32(Kind) its number,
	// the same in every Plinth SDK.
	Kind ErrorKind
	// Code is Extism's return code of a failed call: the plug-in's own code when it returned
	// one (0 when it set an error and returned 0), 134 when it trapped, else -1. It is -1
	// for failures outside calls (loading, config).
	Code int32
	// Message is libplinth's message, e.g. "custom failure" or one that says what went
	// wrong and what to do.
	Message string

	// cause is the os error of a plug-in file that cannot be read (for errors.Is(err,
	// fs.ErrNotExist)), or the error of a streaming call's reader or writer, else nil.
	cause error
}

func (e *Error) Error() string {
	if e.Code == -1 {
		return "plinth: " + e.Message
	}
	return fmt.Sprintf("plinth: %s (code %d)", e.Message, e.Code)
}

// Is makes errors.Is(err, ErrClosed) true for every error of kind KindClosed.
func (e *Error) Is(target error) bool {
	return target == ErrClosed && e.Kind == KindClosed
}

// Unwrap is the os error (an *fs.PathError) when a plug-in file cannot be read, so that
// errors.Is(err, fs.ErrNotExist) works on NewPluginFromFile's errors, or the error of the
// reader or writer that failed a streaming call (CallStream); else nil.
func (e *Error) Unwrap() error { return e.cause }

// fileError adds the os error of path to a load failure of kind KindManifest, when the file
// cannot be read.
func fileError(err error, path string) error {
	if perr, ok := err.(*Error); ok && perr.Kind == KindManifest {
		if f, oerr := os.Open(path); oerr != nil {
			perr.cause = oerr
		} else {
			f.Close()
		}
	}
	return err
}

// ErrClosed is returned by methods of a Plugin or CompiledPlugin after Close. It is an *Error
// of kind KindClosed.
var ErrClosed error = &Error{Kind: KindClosed, Code: -1, Message: "plug-in is closed"}

// kindOf is the kind libplinth reported, or KindOther when it reported none.
func kindOf(k C.int32_t) ErrorKind {
	if k <= 0 {
		return KindOther
	}
	return ErrorKind(k)
}

package plinth

// The read and write callbacks of streaming calls (stream.go), which libplinth calls on the
// goroutine that called CallStream. This file's preamble only includes the header: cgo
// copies it into _cgo_export.h.

/*
#include <stdint.h>
#include "plinth.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime/cgo"
	"unsafe"
)

// plinthGoStreamRead fills buf with up to n bytes of the reader: the number read, 0 at the
// end, -1 when the reader failed (its error kept in readErr).
//
//export plinthGoStreamRead
func plinthGoStreamRead(data unsafe.Pointer, buf *C.uint8_t, n C.uint64_t) (ret C.int64_t) {
	s, ok := cgo.Handle(uintptr(data)).Value().(*streams)
	if !ok {
		return -1
	}
	defer func() {
		if r := recover(); r != nil {
			s.readErr = fmt.Errorf("the reader panicked: %v", r)
			ret = -1
		}
	}()
	if s.readErr != nil {
		return -1
	}
	if err := s.ctx.Err(); err != nil {
		s.readErr = err
		return -1
	}
	if s.rest != nil {
		return s.end(s.rest)
	}
	p := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
	for {
		k, err := s.r.Read(p)
		if k < 0 || k > len(p) {
			s.readErr = fmt.Errorf("the reader returned %d for a buffer of %d bytes", k, len(p))
			return -1
		}
		if k > 0 {
			// Bytes first; what came with them is the next read's answer.
			s.rest = err
			return C.int64_t(k)
		}
		if err != nil {
			return s.end(err)
		}
		// 0 bytes and no error: io.Reader allows it, and it means "nothing yet".
		if err := s.ctx.Err(); err != nil {
			s.readErr = err
			return -1
		}
	}
}

// end is the answer to a read after the reader returned err with no bytes: 0 at io.EOF
// (every time after), else -1.
func (s *streams) end(err error) C.int64_t {
	s.rest = err
	if errors.Is(err, io.EOF) {
		return 0
	}
	s.readErr = err
	return -1
}

// plinthGoStreamWrite writes the n bytes at buf to the writer: 0 when it took them, -1 when
// it failed (its error kept in writeErr).
//
//export plinthGoStreamWrite
func plinthGoStreamWrite(data unsafe.Pointer, buf *C.uint8_t, n C.uint64_t) (ret C.int64_t) {
	s, ok := cgo.Handle(uintptr(data)).Value().(*streams)
	if !ok {
		return -1
	}
	defer func() {
		if r := recover(); r != nil {
			s.writeErr = fmt.Errorf("the writer panicked: %v", r)
			ret = -1
		}
	}()
	if s.writeErr != nil {
		return -1
	}
	p := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
	k, err := s.w.Write(p)
	if err == nil && k != len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.writeErr = err
		return -1
	}
	return 0
}

package main

import (
	"errors"
	"fmt"

	"github.com/certsrv/certsrv/certadm"
)

// HRESULT values the exports produce themselves, as in include/certbcli.h.
// Everything the server or the certadm library reports is mapped by
// certadm.HRESULT instead.
const (
	sOK                     uint32 = 0x00000000
	sFalse                  uint32 = 0x00000001
	eUnexpected             uint32 = 0x8000FFFF
	ePointer                uint32 = 0x80004003
	eHandle                 uint32 = 0x80070006
	eOutOfMemory            uint32 = 0x8007000E
	eInvalidArg             uint32 = 0x80070057
	eInsufficientBuffer     uint32 = 0x8007007A
	eTimeout                uint32 = 0x800705B4
	hrInvalidBackupSequence uint32 = 0xC8000209
)

// Sentinel errors of the C layer. Each is reported as the HRESULT hrOf
// gives it.
var (
	// errNullPointer: a required pointer argument is NULL. E_POINTER.
	errNullPointer = errors.New("required pointer is NULL")
	// errBadHandle: the handle is unknown, ended, or of the other kind.
	// E_HANDLE.
	errBadHandle = errors.New("invalid handle")
	// errBadString: a string argument is not valid UTF-16 or is too long.
	// E_INVALIDARG.
	errBadString = errors.New("invalid string argument")
	// errBufferTooSmall: CertSrvBackupRead got a buffer of 0 bytes.
	// ERROR_INSUFFICIENT_BUFFER.
	errBufferTooSmall = errors.New("buffer too small")
	// errNoFile: CertSrvBackupRead or CertSrvBackupClose with no file open.
	// hrInvalidBackupSequence.
	errNoFile = errors.New("no backup file is open")
	// errOutOfMemory: malloc failed for a list. E_OUTOFMEMORY.
	errOutOfMemory = errors.New("out of memory")
	// errReadTimeout: CertSrvBackupRead saw no data for readTimeout.
	// ERROR_TIMEOUT.
	errReadTimeout = errors.New("no data from the server within the read timeout")
	// errPanic: an export recovered from a panic. E_UNEXPECTED.
	errPanic = errors.New("internal error")
)

// ArgError is an argument the C layer refused: which export, which
// parameter, and the sentinel (errNullPointer, errBadString, ...).
type ArgError struct {
	Func  string
	Param string
	Err   error
}

// Error names the parameter; the function is in Func, and the trace
// line of the export names it.
func (e *ArgError) Error() string { return fmt.Sprintf("%s: %v", e.Param, e.Err) }

func (e *ArgError) Unwrap() error { return e.Err }

// hrOf returns the HRESULT for err: the C layer's own conditions first,
// then certadm.HRESULT for everything else (which gives S_OK for nil).
func hrOf(err error) uint32 {
	switch {
	case err == nil:
		return sOK
	case errors.Is(err, errNullPointer):
		return ePointer
	case errors.Is(err, errBadHandle):
		return eHandle
	case errors.Is(err, errBadString):
		return eInvalidArg
	case errors.Is(err, errBufferTooSmall):
		return eInsufficientBuffer
	case errors.Is(err, errNoFile):
		return hrInvalidBackupSequence
	case errors.Is(err, errOutOfMemory):
		return eOutOfMemory
	case errors.Is(err, errReadTimeout):
		return eTimeout
	case errors.Is(err, errPanic):
		return eUnexpected
	}
	return certadm.HRESULT(err)
}

package server

import (
	"errors"
	"fmt"
)

// Sentinel errors.
var (
	// ErrAlreadyServed is returned by Serve when it is called a second time.
	ErrAlreadyServed = errors.New("server already served")
	// ErrTLSMaterial is wrapped by a TLSError: the server's TLS certificate,
	// key or trust anchor cannot be used.
	ErrTLSMaterial = errors.New("unusable TLS material")
	// ErrNoDataDir is returned by New for a CA that has no data directory.
	ErrNoDataDir = errors.New("CA has no data directory")
)

// TLSError names the TLS file the server could not use. It unwraps to both
// ErrTLSMaterial and the underlying cause.
type TLSError struct {
	Path string // the file that could not be used
	Err  error  // the cause
}

// Error implements error.
func (e *TLSError) Error() string {
	return fmt.Sprintf("load TLS material %s: %v", e.Path, e.Err)
}

// Unwrap returns ErrTLSMaterial and the cause.
func (e *TLSError) Unwrap() []error { return []error{ErrTLSMaterial, e.Err} }

// ListenError names the address a listener could not be opened on.
type ListenError struct {
	What string // "admin" or "http"
	Addr string // the address asked for
	Err  error  // the cause
}

// Error implements error.
func (e *ListenError) Error() string {
	return fmt.Sprintf("listen %s on %s: %v", e.What, e.Addr, e.Err)
}

// Unwrap returns the cause.
func (e *ListenError) Unwrap() error { return e.Err }

package backup

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors the API reports are *apierr.Error values (see
// doc.go for which condition gets which code); these are their causes where
// a cause helps a caller in the same process, matched with errors.Is.
var (
	// ErrClosed is the cause of every error returned after Close.
	ErrClosed = errors.New("backup service closed")
	// ErrChangedWhileServed means a log generation's bytes changed between
	// the read that is served and its verification, or differ from what the
	// log wrote for that generation.
	ErrChangedWhileServed = errors.New("log generation changed while it was being served")
	// ErrNoPrincipal means the call carries no authenticated principal.
	ErrNoPrincipal = errors.New("no authenticated principal")
)

// LogError names the log generation a backup could not serve: its number,
// its path, the byte offset where damage was found (0 when unknown or for
// the whole file) and the cause, which is a *wal.CorruptError, an I/O error
// or ErrChangedWhileServed.
type LogError struct {
	Gen    uint32
	Path   string
	Offset int64
	Err    error
}

func (e *LogError) Error() string {
	return fmt.Sprintf("log generation %d (%s) at offset %d: %v", e.Gen, e.Path, e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *LogError) Unwrap() error { return e.Err }

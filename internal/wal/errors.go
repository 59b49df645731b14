package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every *CorruptError matches ErrCorrupt and, when it has
// one, its more specific sentinel (ErrChain, ErrMissingGeneration,
// ErrSignature, ErrVersion) through errors.Is.
var (
	// ErrCorrupt means a generation file is damaged in a way that is not a
	// torn tail of the newest generation.
	ErrCorrupt = errors.New("log corrupt")
	// ErrChain means a generation's header does not match the creation time
	// or final checksum of the generation before it.
	ErrChain = errors.New("log generation chain broken")
	// ErrMissingGeneration means a generation number between the oldest and
	// the newest present generation has no file, or that records asked for
	// live in generations that are no longer present.
	ErrMissingGeneration = errors.New("log generation missing")
	// ErrSignature means a generation belongs to another log set.
	ErrSignature = errors.New("log set signature mismatch")
	// ErrVersion means a generation header has a format version this code
	// does not know.
	ErrVersion = errors.New("unknown log format version")
	// ErrClosed is returned by every method of a closed Log.
	ErrClosed = errors.New("log closed")
	// ErrTooLarge is returned by Append for a payload larger than MaxPayload.
	ErrTooLarge = errors.New("log record too large")
	// ErrInvalidType is returned by Append for record type 0.
	ErrInvalidType = errors.New("invalid log record type")
	// ErrOutOfRange means TruncateAfter was asked to end the log at an LSN
	// it cannot end at: past its last record, or below its oldest
	// generation (see *RangeError).
	ErrOutOfRange = errors.New("LSN outside the log")
	// ErrKeepDir means TruncateAfter was given no directory to move later
	// generations into, or the log directory itself.
	ErrKeepDir = errors.New("bad keep directory")
	// ErrNoSpace is returned by Append and Roll when the log's file system
	// was full (or the quota exhausted) when the record or the new
	// generation was written: the record is not in the log, the log stays
	// usable, and a later Append may succeed once there is space (see
	// dropUnsynced).
	ErrNoSpace = errors.New("log file system full: record not written")
)

// CorruptError describes damage found in one generation file. Offset is the
// byte offset in the file where the damage was found (0 for whole-file
// problems such as a missing generation). Err is the specific sentinel, or
// ErrCorrupt when there is none more specific.
type CorruptError struct {
	Path   string
	Gen    uint32
	Offset int64
	Reason string
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("log generation %d (%s) at offset %d: %s: %v", e.Gen, e.Path, e.Offset, e.Reason, e.sentinel())
}

func (e *CorruptError) sentinel() error {
	if e.Err == nil {
		return ErrCorrupt
	}
	return e.Err
}

// Unwrap returns ErrCorrupt and, when different, the specific sentinel, so
// that errors.Is matches both.
func (e *CorruptError) Unwrap() []error {
	if e.Err == nil || e.Err == ErrCorrupt {
		return []error{ErrCorrupt}
	}
	return []error{ErrCorrupt, e.Err}
}

func corrupt(path string, gen uint32, off int64, sentinel error, format string, args ...any) *CorruptError {
	return &CorruptError{Path: path, Gen: gen, Offset: off, Reason: fmt.Sprintf(format, args...), Err: sentinel}
}

// RangeError is a cut point TruncateAfter refused: the log in Dir can end
// at any LSN from Low (the LSN before its oldest generation's first LSN)
// through High (its last record), and LSN is outside that range.
type RangeError struct {
	Dir       string
	LSN       LSN
	Low, High LSN
}

func (e *RangeError) Error() string {
	if e.LSN < e.Low {
		return fmt.Sprintf("cut log in %s after LSN %d: the oldest generation starts at LSN %d, so the log cannot end before LSN %d: %v",
			e.Dir, e.LSN, e.Low+1, e.Low, ErrMissingGeneration)
	}
	return fmt.Sprintf("cut log in %s after LSN %d: the log ends at LSN %d: %v", e.Dir, e.LSN, e.High, ErrOutOfRange)
}

// Unwrap returns ErrOutOfRange and, when LSN is below the log,
// ErrMissingGeneration.
func (e *RangeError) Unwrap() []error {
	if e.LSN < e.Low {
		return []error{ErrOutOfRange, ErrMissingGeneration}
	}
	return []error{ErrOutOfRange}
}

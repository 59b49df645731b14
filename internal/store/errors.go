package store

import (
	"errors"
	"fmt"

	"github.com/certsrv/certsrv/internal/wal"
)

// Sentinel errors. Typed errors below unwrap to one or more of them, so
// callers match with errors.Is and read the details with errors.As.
var (
	// ErrNotFound means the request, certificate, CRL or principal named by
	// the call does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotPending means a request is not in the pending state the
	// operation needs (it was already issued or denied).
	ErrNotPending = errors.New("request is not pending")
	// ErrAlreadyRevoked means the certificate or principal is already
	// revoked (a certificate on hold may still be revoked with another
	// reason).
	ErrAlreadyRevoked = errors.New("already revoked")
	// ErrNotOnHold means Unrevoke was called for a certificate that is not
	// revoked with reason certificateHold (6).
	ErrNotOnHold = errors.New("not on hold")
	// ErrDuplicateSerial means a certificate with the serial number exists.
	ErrDuplicateSerial = errors.New("duplicate serial number")
	// ErrCRLNumber means a CRL number does not exceed the last recorded one.
	ErrCRLNumber = errors.New("CRL number does not exceed the last one")
	// ErrPrincipalRevoked means roles were granted to a revoked principal.
	ErrPrincipalRevoked = errors.New("principal is revoked")
	// ErrInvalidArgument means a call's arguments are malformed (empty
	// serial, unknown reason code, ...). Nothing was written.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrClosed is returned by every method of a closed DB or Snapshot.
	ErrClosed = errors.New("database closed")
	// ErrFailed means the database stopped accepting calls after an error
	// it cannot recover from in process (a failed log write or a record that
	// could not be applied). Reopening runs recovery.
	ErrFailed = errors.New("database failed")
	// ErrStalled means the database file cannot take more records for now
	// (its disk or quota is full): a write is refused before it reaches
	// the log, and records already in the log wait to be applied. Writes
	// are accepted again, without a restart, once every waiting record is
	// applied (see stall.go).
	ErrStalled = errors.New("database cannot be written: disk full")
	// ErrExists means Create found an existing database, log or checkpoint.
	ErrExists = errors.New("database already exists")
	// ErrNoDatabase means Open or Replay found no database file.
	ErrNoDatabase = errors.New("no database file")
	// ErrIntegrity means SQLite's integrity_check found damage.
	ErrIntegrity = errors.New("database integrity check failed")
	// ErrSchema means the database file is not a certsrv database or has a
	// schema version this code does not know.
	ErrSchema = errors.New("unknown database schema")
	// ErrSignatureMismatch means the signatures of the database, the
	// checkpoint and the logs do not agree (see *SignatureError).
	ErrSignatureMismatch = errors.New("signature mismatch")
	// ErrCheckpointCorrupt means the checkpoint file cannot be decoded.
	ErrCheckpointCorrupt = errors.New("checkpoint file corrupt")
	// ErrCheckpointMismatch means the checkpoint file belongs to another
	// database or log set.
	ErrCheckpointMismatch = errors.New("checkpoint belongs to another database")
	// ErrCheckpointMissing means the checkpoint file does not exist. Open
	// rebuilds it (with a warning); Check reports it.
	ErrCheckpointMissing = errors.New("checkpoint file missing")
	// ErrMissingLog means log records the database needs are not in the log
	// directory (see *MissingLogError).
	ErrMissingLog = errors.New("log generation missing")
	// ErrLogBehind means the database reflects log records that the logs no
	// longer hold: the log directory is older than the database.
	ErrLogBehind = errors.New("log ends before the database")
	// ErrLogConflict means one generation found in two log directories has
	// different contents.
	ErrLogConflict = errors.New("log generation differs between directories")
	// ErrRecord means a log record's payload cannot be decoded.
	ErrRecord = errors.New("bad log record")
	// ErrApply means a log record could not be applied to the database (see
	// *ApplyError); the database is marked failed.
	ErrApply = errors.New("cannot apply log record")
	// ErrOFDLocking means SQLite's open-file-description locking could not
	// be enabled; without it a snapshot can be corrupt, so the store refuses
	// to open.
	ErrOFDLocking = errors.New("cannot enable SQLite OFD locking")
	// ErrSnapshotOpen means a snapshot was asked for while another is
	// open: while one pins the database file SQLite cannot backfill the WAL,
	// so no second consistent image of the file can be made.
	ErrSnapshotOpen = errors.New("another snapshot is open")
	// ErrSnapshotBusy means the snapshot fence could not fully checkpoint
	// the SQLite WAL in time (a long-running reader).
	ErrSnapshotBusy = errors.New("snapshot fence timed out")
)

// SignatureError says which component's signature disagrees with the
// database's. Which is "checkpoint" or "log"; Path names the file, Gen the
// log generation when Which is "log".
type SignatureError struct {
	Which string
	Path  string
	Gen   uint32
	Want  [16]byte
	Got   [16]byte
	Err   error // a more specific sentinel (ErrCheckpointMismatch, wal.ErrSignature) or nil
}

func (e *SignatureError) Error() string {
	where := e.Which
	if e.Gen != 0 {
		where = fmt.Sprintf("%s generation %d", e.Which, e.Gen)
	}
	msg := fmt.Sprintf("%s %s: signature %x, the database has %x: %v", where, e.Path, e.Got[:], e.Want[:], ErrSignatureMismatch)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrSignatureMismatch and the specific sentinel, if any.
func (e *SignatureError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrSignatureMismatch}
	}
	return []error{ErrSignatureMismatch, e.Err}
}

// MissingLogError says which log generation is needed but absent. NeedLSN is
// the first LSN that cannot be read; Gen the generation that should hold it
// (the one before the oldest present when the gap is at the start); Oldest
// the oldest generation present (0 when the directory has none).
type MissingLogError struct {
	Dir     string
	Gen     uint32
	NeedLSN uint64
	Oldest  uint32
	Reason  string
	Err     error // underlying error, usually a *wal.CorruptError, or nil
}

func (e *MissingLogError) Error() string {
	s := fmt.Sprintf("log generation %d in %s is missing: %s", e.Gen, e.Dir, e.Reason)
	if e.Gen == 0 {
		// No generation at all: there is no number to name.
		s = fmt.Sprintf("no log in %s (the database needs the records from LSN %d on): %s", e.Dir, e.NeedLSN, e.Reason)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrMissingLog, wal.ErrMissingGeneration and the underlying error.
func (e *MissingLogError) Unwrap() []error {
	errs := []error{ErrMissingLog, wal.ErrMissingGeneration}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// ApplyError is a log record that could not be applied: its LSN and type,
// and the reason. It matches ErrApply and the reason's own sentinels.
type ApplyError struct {
	LSN  uint64
	Type wal.RecordType
	Err  error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("apply log record %d (%s): %v", e.LSN, TypeName(e.Type), e.Err)
}

// Unwrap returns ErrApply and the reason.
func (e *ApplyError) Unwrap() []error { return []error{ErrApply, e.Err} }

// CheckpointError is a checkpoint file that could not be used: its path,
// what is wrong, and the sentinel (ErrCheckpointCorrupt,
// ErrCheckpointMissing, ErrCheckpointMismatch) or an I/O error.
type CheckpointError struct {
	Path   string
	Reason string
	Err    error
}

func (e *CheckpointError) Error() string {
	return fmt.Sprintf("checkpoint %s: %s: %v", e.Path, e.Reason, e.Err)
}

// Unwrap returns the sentinel or I/O error.
func (e *CheckpointError) Unwrap() error { return e.Err }

// invalid returns an error matching ErrInvalidArgument.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidArgument)
}

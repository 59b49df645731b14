package restore

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. The typed errors below unwrap to them, so callers match
// with errors.Is and read details with errors.As. Errors of the packages
// restore builds on (internal/backupset, internal/store, internal/wal,
// internal/datadir) are kept in the chain.
var (
	// ErrCARunning means another process holds the data directory's lock:
	// the CA is running (or another restore or recovery is). It also
	// matches datadir.ErrLocked.
	ErrCARunning = errors.New("the CA is running; stop it first")
	// ErrRegistrationPending means a restore was registered but never
	// completed (the restoring program stopped before RegisterComplete).
	// The CA refuses to start and a new restore refuses to begin until it
	// is completed again or cancelled; see *PendingError.
	ErrRegistrationPending = errors.New("a restore was registered but not completed")
	// ErrRestoreFailed means the restoring program completed its
	// registration with a failure status. The CA refuses to start until the
	// restore is run again or cancelled.
	ErrRestoreFailed = errors.New("the registered restore failed")
	// ErrRecoveryPending means a completed restore waits for hard recovery
	// (or an interrupted recovery waits to resume). A new restore refuses to
	// begin; starting the CA or `certsrv recover` runs the recovery.
	ErrRecoveryPending = errors.New("a restore waits for recovery")
	// ErrNothingPending means there is no restore record to recover or
	// cancel.
	ErrNothingPending = errors.New("no restore is registered")
	// ErrRecordCorrupt means restore/restore.json cannot be read: not the
	// documented format, a wrong checksum, or values that contradict each
	// other.
	ErrRecordCorrupt = errors.New("restore record corrupt")
	// ErrRecordVersion means restore/restore.json has a format version this
	// program does not know. It also matches ErrRecordCorrupt.
	ErrRecordVersion = errors.New("unknown restore record format version")
	// ErrInvalidArgument means a registration or an option is malformed:
	// a relative path, a restore map without exactly one database, a
	// generation range that is empty, an until bound that cannot be parsed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrSequence means a Registration method was called out of order (for
	// example Complete before Register, or anything after End).
	ErrSequence = errors.New("restore calls out of order")
	// ErrBackupLogs means the backup's log generations cannot be replayed:
	// one is missing, extra, damaged, of another log set, or they do not
	// continue the database snapshot. See *LogError.
	ErrBackupLogs = errors.New("backup logs unusable")
	// ErrDatabase means the restored database file is missing, unreadable,
	// or does not match the registration (another log set, another snapshot
	// position).
	ErrDatabase = errors.New("restored database unusable")
	// ErrUntilBeforeSnapshot means the point in time asked for lies before
	// the database snapshot: the snapshot already holds later changes. See
	// *UntilError for the earliest possible point.
	ErrUntilBeforeSnapshot = errors.New("the point in time lies before the backup's snapshot")
	// ErrTargetNotEmpty means restore was asked into a data directory that
	// holds a CA, without --force.
	ErrTargetNotEmpty = errors.New("data directory not empty")
	// ErrForeignTarget means the data directory holds another CA (another
	// CA certificate, CA name or log base) than the backup set.
	ErrForeignTarget = errors.New("data directory holds another CA")
	// ErrNoKey means neither the data directory nor the backup set holds
	// the CA key: the set was made without --with-key and the target has no
	// key of that CA.
	ErrNoKey = errors.New("no CA key available")
	// ErrPasswordRequired means the set's PKCS#12 key file is needed and no
	// password was given.
	ErrPasswordRequired = errors.New("the key file's password is required")
	// ErrKeyMismatch means the set's PKCS#12 file holds another certificate
	// than the set's CA certificate (the one the manifest names, or for a
	// set without manifest the one in Dynamic/).
	ErrKeyMismatch = errors.New("key file does not belong to the backup set's CA")
	// ErrNoCACert means a backup set without manifest.json holds no CA
	// certificate of its CA in Dynamic/, so restore cannot tell which CA
	// certificate (and so which key, and which target) belongs to it.
	ErrNoCACert = errors.New("the backup set does not identify its CA certificate")
	// ErrLogInstall means the log directory could not be brought to the
	// recovered position (see doc.go, "The live log after recovery").
	ErrLogInstall = errors.New("cannot rebuild the log directory")
)

// PendingError says which restore record blocks an operation, in which
// state, and what the operator can do. It matches ErrRegistrationPending,
// ErrRestoreFailed or ErrRecoveryPending.
type PendingError struct {
	Path   string // restore/restore.json
	State  State
	Status string // the failure status given to Complete, for StateFailed
	Err    error
}

func (e *PendingError) Error() string {
	switch e.State {
	case StateRegistered:
		return fmt.Sprintf("%v (%s): run the restore again to completion, or cancel it with `certsrv restore --cancel` "+
			"(or remove %s); the CA does not start until then", e.Err, e.Path, e.Path)
	case StateFailed:
		return fmt.Sprintf("%v (%s): %s; run the restore again, or cancel it with `certsrv restore --cancel` "+
			"(or remove %s); the CA does not start until then", e.Err, e.Path, e.Status, e.Path)
	}
	return fmt.Sprintf("%v (%s, state %s): start the CA or run `certsrv recover` to finish it, "+
		"or cancel it with `certsrv restore --cancel`", e.Err, e.Path, e.State)
}

// Unwrap returns the sentinel.
func (e *PendingError) Unwrap() error { return e.Err }

// LogError is a problem with a log generation or a log directory used by a
// restore: the directory, the generation (0 when not tied to one), what is
// wrong, and the sentinel (ErrBackupLogs, ErrLogInstall) joined with the
// underlying error of internal/wal or internal/store, if any.
type LogError struct {
	Dir    string
	Gen    uint32
	Reason string
	Err    error // sentinel
	Cause  error // underlying error or nil
}

func (e *LogError) Error() string {
	s := e.Err.Error() + ": " + e.Dir
	if e.Gen != 0 {
		s += fmt.Sprintf(": generation %d", e.Gen)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the sentinel and the cause.
func (e *LogError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// UntilError is a point-in-time bound that recovery cannot reach because
// the database snapshot is later. EarliestLSN is the snapshot's LSN;
// EarliestTime the earliest time bound accepted (see doc.go, "Point in
// time"), zero when the snapshot holds no record.
type UntilError struct {
	Until        Until
	EarliestLSN  uint64
	EarliestTime time.Time
}

func (e *UntilError) Error() string {
	s := fmt.Sprintf("%v: --until %s, but the snapshot is at LSN %d", ErrUntilBeforeSnapshot, e.Until, e.EarliestLSN)
	if !e.EarliestTime.IsZero() {
		s += fmt.Sprintf("; the earliest point possible is %s (or lsn:%d)", e.EarliestTime.UTC().Format(time.RFC3339Nano), e.EarliestLSN)
	} else {
		s += fmt.Sprintf("; the earliest point possible is lsn:%d", e.EarliestLSN)
	}
	return s
}

// Unwrap returns ErrUntilBeforeSnapshot.
func (e *UntilError) Unwrap() error { return ErrUntilBeforeSnapshot }

// invalid returns an error matching ErrInvalidArgument.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidArgument)
}

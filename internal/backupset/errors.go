package backupset

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error this package returns for a property of a set
// matches exactly the sentinels that describe it, through errors.Is; the
// typed errors below carry the context (which file, which generation, what
// was expected and found).
var (
	// ErrNoManifest means DIR has no manifest.json: it is not a backup set,
	// a backup into it never completed, or other backup software wrote it
	// (Derive and Load read such a set from its files).
	ErrNoManifest = errors.New("backup set has no manifest")
	// ErrNotASet means DIR holds neither a manifest nor any file of a set
	// (a database snapshot, a log generation or a restore map), or is not
	// a directory.
	ErrNotASet = errors.New("not a backup set")
	// ErrManifestFormat means manifest.json is not a valid format-1
	// manifest: not JSON, an unknown field or version, a malformed value,
	// or records that contradict each other.
	ErrManifestFormat = errors.New("manifest malformed")
	// ErrManifestChecksum means the manifest's checksum does not match its
	// content: the manifest was edited or damaged after it was written.
	ErrManifestChecksum = errors.New("manifest checksum mismatch")
	// ErrManifestMismatch means the manifest describes the files differently
	// from what they hold: a backup's LSN range or the snapshot LSN differs
	// from the one in the logs or the database.
	ErrManifestMismatch = errors.New("manifest does not match the files")
	// ErrMissingFile means a file the manifest lists is absent or is not a
	// regular file.
	ErrMissingFile = errors.New("file missing from backup set")
	// ErrExtraFile means the set holds a file the manifest does not list
	// (other than manifest.json and verified.json).
	ErrExtraFile = errors.New("file not listed in manifest")
	// ErrIncomplete means the set holds a *.part file: a write into the set
	// was interrupted. A set that also lacks its manifest never completed.
	ErrIncomplete = errors.New("backup set incomplete")
	// ErrSizeMismatch means a file's size differs from the one the manifest
	// (or, while writing, the source) gives.
	ErrSizeMismatch = errors.New("file size mismatch")
	// ErrTruncated means a file is shorter than the manifest says. Such an
	// error also matches ErrSizeMismatch.
	ErrTruncated = errors.New("file truncated")
	// ErrDigestMismatch means a file's SHA-256 differs from the manifest's.
	ErrDigestMismatch = errors.New("file digest mismatch")
	// ErrChainGap means the backups or log generations of a set do not
	// continue one another: a generation or LSN is missing or repeated
	// between two backups, between two log files, or between the database
	// snapshot and the first log.
	ErrChainGap = errors.New("backup chain gap")
	// ErrForeignLog means a log generation carries another log-set
	// signature than the set's: it belongs to another CA or database.
	ErrForeignLog = errors.New("log generation from another log set")
	// ErrForeignDatabase means the database snapshot carries other
	// signatures than the set's manifest records.
	ErrForeignDatabase = errors.New("database from another CA")
	// ErrForeignSet means a backup about to be appended comes from another
	// CA, database or location than the set's.
	ErrForeignSet = errors.New("backup set belongs to another CA")
	// ErrLogCorrupt means a log generation in the set fails verification
	// (header, record CRCs, LSNs or the chain to the generation before it).
	// The error also wraps the internal/wal error that says what failed.
	ErrLogCorrupt = errors.New("log generation corrupt")
	// ErrLogOrder means a log file holds another generation than its name
	// says: the log files were renamed or put out of order. Such an error
	// also matches ErrLogCorrupt.
	ErrLogOrder = errors.New("log file holds another generation than its name says")
	// ErrDatabase means the database snapshot cannot be read as a certsrv
	// database (no meta row, not SQLite, unreadable), or SQLite finds it
	// damaged.
	ErrDatabase = errors.New("database snapshot unreadable")
	// ErrConfig means Config/certsrv.json does not parse as a certsrv
	// configuration, or names another CA or log base than the set's.
	ErrConfig = errors.New("configuration does not match the set")
	// ErrBadRestoreMap means certbkxp.dat is malformed, fails its checksum,
	// or lacks one of the entries a restore needs.
	ErrBadRestoreMap = errors.New("restore map malformed")
	// ErrBadPath means a relative path does not fit the set layout for its
	// kind, or leaves the set directory.
	ErrBadPath = errors.New("path outside the backup set layout")
	// ErrNotEmpty means a full backup was asked into a directory that
	// already holds files.
	ErrNotEmpty = errors.New("directory not empty")
	// ErrClosed means a Writer or Appender was used after Commit or Abort.
	ErrClosed = errors.New("backup set writer closed")
)

// FileError is a problem with one file of a set. Path is relative to the
// set directory, slash-separated. Want and Got describe the expected and
// found values (a size, a digest) when there are such. Err is the sentinel
// (or a chain ending in one).
type FileError struct {
	Path      string
	Want, Got string
	Err       error
}

func (e *FileError) Error() string {
	if e.Want != "" || e.Got != "" {
		return fmt.Sprintf("%s: %v: expected %s, found %s", e.Path, e.Err, e.Want, e.Got)
	}
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}

// Unwrap returns the cause. A truncated file's error unwraps to both
// ErrTruncated and ErrSizeMismatch.
func (e *FileError) Unwrap() []error {
	if e.Err == ErrTruncated {
		return []error{ErrTruncated, ErrSizeMismatch}
	}
	return []error{e.Err}
}

// ChainError is a discontinuity or mismatch in the chain of backups or log
// generations. Backup is the index of the backup in the manifest (-1 when
// the problem is not tied to one); the message numbers backups from 1, as
// people count them (backup 1 is the full backup, backup 2 the first
// logs-only one). Gen is the log generation concerned (0 when none), Reason
// what is wrong in words. Err is the sentinel: ErrChainGap,
// ErrForeignLog, ErrForeignDatabase, ErrForeignSet, ErrManifestMismatch or
// ErrLogCorrupt (then also wrapping the internal/wal error in Cause).
type ChainError struct {
	Backup int
	Gen    uint32
	Reason string
	Err    error
	Cause  error
}

func (e *ChainError) Error() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	if e.Backup >= 0 {
		fmt.Fprintf(&b, ": backup %d", e.Backup+1)
	}
	if e.Gen != 0 {
		fmt.Fprintf(&b, ": log generation %d", e.Gen)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Cause != nil {
		fmt.Fprintf(&b, ": %v", e.Cause)
	}
	return b.String()
}

// Unwrap returns the sentinel and, when there is one, the cause. An
// ErrLogOrder error also unwraps to ErrLogCorrupt.
func (e *ChainError) Unwrap() []error {
	errs := []error{e.Err}
	if e.Err == ErrLogOrder {
		errs = append(errs, ErrLogCorrupt)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// VerifyError is the outcome of a Verify that found problems: every problem
// found, in the order found. errors.Is matches any problem's sentinel.
type VerifyError struct {
	Dir      string
	Problems []error
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "backup set %s: %d problem", e.Dir, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	for i, p := range e.Problems {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-5)
			break
		}
		b.WriteString("; ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems.
func (e *VerifyError) Unwrap() []error { return e.Problems }

// countOf writes n and the noun that goes with it, for messages: one for
// 1, else many.
func countOf(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// chainErr builds a *ChainError.
func chainErr(sentinel error, backup int, gen uint32, format string, args ...any) *ChainError {
	return &ChainError{Backup: backup, Gen: gen, Reason: fmt.Sprintf(format, args...), Err: sentinel}
}

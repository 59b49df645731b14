package backup

import (
	"context"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// Type is a backup type, with the values of certbcli.h's CSBACKUP_TYPE_*.
type Type uint32

// The backup types.
const (
	// Full copies the database snapshot and the logs written since it
	// (CSBACKUP_TYPE_FULL).
	Full Type = 1
	// LogsOnly copies the logs written since the last recorded backup
	// (CSBACKUP_TYPE_LOGS_ONLY).
	LogsOnly Type = 2
)

// String returns "full" or "logs-only".
func (t Type) String() string {
	switch t {
	case Full:
		return "full"
	case LogsOnly:
		return "logs-only"
	}
	return "unknown"
}

// File type tags of a certbcli.h file list.
const (
	TagDatabase      = 0x44 // 'D': a database file
	TagLog           = 0x21 // '!': a log generation
	TagLogDir        = 0x82 // restore map: the log directory
	TagCheckpointDir = 0x83 // restore map: the checkpoint directory
	TagDynamic       = 0    // a dynamic file, fetched over HTTP
)

// Record is one completed backup as the database records it: its type,
// the log generations it copied and the LSN range it covers.
type Record struct {
	Type              Type
	FirstGen, LastGen uint32
	FirstLSN, LastLSN uint64
	Time              time.Time
}

// Truncation is what a log truncation did: the generations it deleted,
// ascending, and, when it deleted none or fewer than asked, why.
type Truncation struct {
	Deleted []uint32
	Reason  string
}

// Paths are the server-side locations of the database, as absolute paths.
type Paths struct {
	DB      string // the SQLite database file
	LogDir  string // the directory of log generations
	SysDir  string // the directory of the checkpoint file
	LogBase string // the log file name base ("ca")
}

// DynamicFile is a file the CA publishes over HTTP (CA certificate, CRLs).
// Backup lists dynamic files but never serves them.
type DynamicFile struct {
	Name string // file name, e.g. "Example CA.crl"
	Path string // absolute path on the server
	URL  string // where clients fetch it
	Size int64
}

// Snapshot is a consistent copy of the database as of log position LSN,
// pinned until Close. ReadAt reads the copy's bytes; offsets at or past
// Size return io.EOF. ReadAt may be called concurrently with itself but not
// after or during Close. Close releases the pin and may be called more than
// once.
type Snapshot interface {
	LSN() uint64
	Size() int64
	ReadAt(p []byte, off int64) (int, error)
	// ReleaseLogs drops the snapshot's hold on the log generations after
	// its position (which the engine keeps from deletion while a snapshot
	// is open); the snapshot stays readable. Idempotent.
	ReleaseLogs()
	Close() error
}

// Engine is what a backup session needs from the CA database engine. The
// implementation for the real database is StoreEngine.
type Engine interface {
	// Snapshot pins a consistent copy of the database while writers
	// continue.
	Snapshot(ctx context.Context) (Snapshot, error)
	// RollLog seals the current log generation after every record appended
	// before the call is durable, starts the next one, and returns the
	// sealed generation's number.
	RollLog(ctx context.Context) (sealed uint32, err error)
	// Generations describes the present log generations, ascending. Sizes,
	// LSNs and checksums of sealed generations are final.
	Generations() []wal.GenInfo
	// TruncateLogs deletes log generations numbered throughGen or lower
	// under the engine's safety rules and says exactly what it deleted.
	TruncateLogs(ctx context.Context, throughGen uint32) (Truncation, error)
	// RecordBackup records a completed backup durably (in the log and the
	// checkpoint).
	RecordBackup(ctx context.Context, r Record) error
	// LastBackups returns the last recorded full and logs-only backups; nil
	// when there is none.
	LastBackups() (full, logsOnly *Record)
	// NeedFullBackup reports whether the next backup must be full (set
	// after a restore).
	NeedFullBackup() bool
	// CircularLogging reports whether logs below the checkpoint are deleted
	// automatically.
	CircularLogging() bool
	// Paths returns the database's locations.
	Paths() Paths
	// HoldLogs keeps log generations fromGen and later from deletion (by
	// TruncateLogs or circular logging) until release is called; release
	// is idempotent.
	HoldLogs(fromGen uint32) (release func())
}

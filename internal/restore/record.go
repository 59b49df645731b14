package restore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
)

// RecordFormat is the format version of restore/restore.json this package
// writes and reads.
const RecordFormat = 1

// RecordFile is the name of the restore-pending record in the data
// directory's restore/ directory.
const RecordFile = "restore.json"

// maxRecordSize bounds the size of a record a reader accepts.
const maxRecordSize = 1 << 20

// State is the state of a restore record; doc.go describes the life cycle.
type State string

// The states of a restore record, in the order a restore goes through them.
const (
	// StateRegistered: Register wrote the record; the restoring program is
	// copying files. The CA refuses to start.
	StateRegistered State = "registered"
	// StateFailed: the restoring program completed with a failure status.
	// The CA refuses to start.
	StateFailed State = "failed"
	// StateComplete: the restore completed; hard recovery runs at the next
	// start of the CA or by `certsrv recover`.
	StateComplete State = "complete"
	// StateRecovering: hard recovery verified its inputs and is replaying
	// logs into the database. An interrupted replay resumes.
	StateRecovering State = "recovering"
	// StateReplayed: the replay ended at Recovery.LastLSN; the log directory
	// is being brought to that position.
	StateReplayed State = "replayed"
	// StateInstalled: the log directory ends at the recovered position; the
	// database is being opened, marked for a full backup and checkpointed.
	StateInstalled State = "installed"
)

// blocking reports whether the state keeps the CA from starting without
// recovery being possible.
func (s State) blocking() bool { return s == StateRegistered || s == StateFailed }

// recoverable reports whether Recover can proceed from the state.
func (s State) recoverable() bool {
	switch s {
	case StateComplete, StateRecovering, StateReplayed, StateInstalled:
		return true
	}
	return false
}

func (s State) valid() bool { return s.blocking() || s.recoverable() }

// MapEntry is one entry of a restore map: a database file's path on the
// host the backup was taken from (Old) and where it was restored (New).
type MapEntry struct {
	Old string `json:"old"`
	New string `json:"new"`
}

// Record is the restore-pending record, restore/restore.json. doc.go gives
// the file format member by member. The zero values of the optional fields
// mean: SnapshotLSN 0, read it from the database; Until zero, no bound;
// CAName and LogBase empty, take them from the data directory's
// configuration.
type Record struct {
	Format         int        `json:"format"`
	State          State      `json:"state"`
	CAName         string     `json:"ca_name"`
	CheckpointDir  string     `json:"checkpoint_dir"`
	LogDir         string     `json:"log_dir"`
	LogBase        string     `json:"log_base"`
	RestoreMap     []MapEntry `json:"restore_map"`
	BackupLogDir   string     `json:"backup_log_dir"`
	LowGen         uint32     `json:"low_generation"`
	HighGen        uint32     `json:"high_generation"`
	SnapshotLSN    uint64     `json:"snapshot_lsn"`
	Until          Until      `json:"until"`
	CatchUp        bool       `json:"catch_up"`
	NewCredentials bool       `json:"new_credentials"`
	OwnsBackupLogs bool       `json:"owns_backup_logs"`
	Status         string     `json:"status"`
	Registered     time.Time  `json:"registered"`
	Completed      time.Time  `json:"completed,omitzero"`
	Recovery       *Progress  `json:"recovery,omitempty"`
}

// Progress is what hard recovery records about itself in the record, so
// that an interrupted recovery resumes with the same decisions.
type Progress struct {
	Started  time.Time `json:"started"`
	Attempts int       `json:"attempts"`
	// DBSignature and LogSignature are the restored database's signatures,
	// 32 lower-case hex digits each.
	DBSignature  string `json:"db_signature"`
	LogSignature string `json:"log_signature"`
	// CatchUpSkipped says why the live log directory was not replayed
	// although catch-up was asked for; "" when it was used or not asked.
	CatchUpSkipped string `json:"catch_up_skipped"`
	// LastLSN is the database's applied LSN when the replay ended (set in
	// StateReplayed and later); StopReason says why it ended there.
	LastLSN    uint64 `json:"last_lsn"`
	StopReason string `json:"stop_reason"`
	// BackupRecords and LiveRecords count the records replayed from the
	// backup logs and from the live logs, over every attempt.
	BackupRecords int `json:"backup_records"`
	LiveRecords   int `json:"live_records"`
	// SetAside names the directory under restore/ that receives the files
	// recovery moves out of the way; it never deletes them.
	SetAside string `json:"set_aside"`
	// Plan is how the log directory is brought to LastLSN; set with
	// StateReplayed.
	Plan *InstallPlan `json:"plan,omitempty"`
}

// DatabasePath returns the restored database file: the New path of the
// restore map's entry.
func (r *Record) DatabasePath() string {
	if len(r.RestoreMap) == 0 {
		return ""
	}
	return r.RestoreMap[0].New
}

// clone returns a deep copy of r.
func (r *Record) clone() *Record {
	c := *r
	c.RestoreMap = append([]MapEntry(nil), r.RestoreMap...)
	if r.Recovery != nil {
		p := *r.Recovery
		if p.Plan != nil {
			plan := *p.Plan
			plan.SetAside = append([]string(nil), p.Plan.SetAside...)
			p.Plan = &plan
		}
		c.Recovery = &p
	}
	return &c
}

// validate checks a record's fields against each other. Errors match
// ErrInvalidArgument; readers turn them into ErrRecordCorrupt.
func (r *Record) validate() error {
	abs := func(name, p string) error {
		if p == "" || !filepath.IsAbs(p) || strings.ContainsRune(p, 0) {
			return invalid("%s %q is not an absolute path", name, p)
		}
		return nil
	}
	switch {
	case r.Format != RecordFormat:
		return invalid("format %d, want %d", r.Format, RecordFormat)
	case !r.State.valid():
		return invalid("state %q", r.State)
	case len(r.RestoreMap) != 1:
		return invalid("the restore map has %d entries; it must name exactly one database", len(r.RestoreMap))
	case r.RestoreMap[0].Old == "":
		return invalid("the restore map entry has no old database path")
	case r.LowGen == 0 || r.HighGen < r.LowGen:
		return invalid("log generations %d..%d", r.LowGen, r.HighGen)
	case r.LogBase == "" || strings.ContainsAny(r.LogBase, "/\x00"):
		return invalid("log base %q", r.LogBase)
	case (r.State == StateFailed) != (r.Status != ""):
		return invalid("state %s with status %q", r.State, r.Status)
	case (r.State == StateRecovering || r.State == StateReplayed || r.State == StateInstalled) != (r.Recovery != nil):
		return invalid("state %s and recovery progress do not agree", r.State)
	case (r.State == StateReplayed || r.State == StateInstalled) != (r.Recovery != nil && r.Recovery.Plan != nil):
		return invalid("state %s and the log directory plan do not agree", r.State)
	case r.Recovery != nil && (r.Recovery.SetAside == "" || r.Recovery.SetAside != filepath.Base(r.Recovery.SetAside) || strings.HasPrefix(r.Recovery.SetAside, ".")):
		return invalid("set-aside directory %q is not a plain name", r.Recovery.SetAside)
	}
	for _, x := range []struct{ name, p string }{
		{"checkpoint directory", r.CheckpointDir}, {"log directory", r.LogDir},
		{"backup log directory", r.BackupLogDir}, {"database", r.RestoreMap[0].New},
	} {
		if err := abs(x.name, x.p); err != nil {
			return err
		}
	}
	return r.Until.validate()
}

// checksumMember is the text that introduces the checksum, the last member
// of the record's JSON object (see doc.go).
const checksumMember = ",\n  \"checksum\": \""

// encodeRecord returns the file form of r: the record as indented JSON
// whose last member is the checksum of every byte before that member.
func encodeRecord(r *Record) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode restore record: %w", err)
	}
	body, ok := bytes.CutSuffix(b, []byte("\n}"))
	if !ok {
		return nil, fmt.Errorf("encode restore record: unexpected JSON layout")
	}
	sum := sha256.Sum256(body)
	out := make([]byte, 0, len(body)+len(checksumMember)+64+4)
	out = append(out, body...)
	out = append(out, checksumMember...)
	out = hex.AppendEncode(out, sum[:])
	out = append(out, "\"\n}\n"...)
	return out, nil
}

// decodeRecord parses the file form of a record. A format version other
// than RecordFormat matches ErrRecordVersion; every other problem
// ErrRecordCorrupt.
func decodeRecord(b []byte) (*Record, error) {
	var head struct {
		Format json.Number `json:"format"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&head); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %v", ErrRecordCorrupt, err)
	}
	if head.Format.String() != fmt.Sprint(RecordFormat) {
		return nil, fmt.Errorf("%w: format %q, this program reads format %d: %w", ErrRecordVersion, head.Format, RecordFormat, ErrRecordCorrupt)
	}
	const tail = "\"\n}\n"
	n := len(b) - len(tail) - 64 - len(checksumMember)
	if n <= 0 || !bytes.HasSuffix(b, []byte(tail)) || string(b[n:n+len(checksumMember)]) != checksumMember {
		return nil, fmt.Errorf("%w: the file does not end with the checksum member", ErrRecordCorrupt)
	}
	want, err := hex.DecodeString(string(b[n+len(checksumMember) : len(b)-len(tail)]))
	if err != nil || strings.ToLower(string(b[n+len(checksumMember):len(b)-len(tail)])) != string(b[n+len(checksumMember):len(b)-len(tail)]) {
		return nil, fmt.Errorf("%w: the checksum is not 64 lower-case hex digits", ErrRecordCorrupt)
	}
	if got := sha256.Sum256(b[:n]); !bytes.Equal(got[:], want) {
		return nil, fmt.Errorf("%w: checksum mismatch: the file records %x, its content has %x", ErrRecordCorrupt, want, got)
	}
	var wrapped struct {
		Record
		Checksum string `json:"checksum"`
	}
	dec = json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wrapped); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecordCorrupt, err)
	}
	r := wrapped.Record
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecordCorrupt, err)
	}
	return &r, nil
}

// RecordPath returns the restore-pending record of dir, restore/restore.json.
func RecordPath(dir datadir.Dir) string { return filepath.Join(dir.RestoreDir(), RecordFile) }

// readRecordFile reads and decodes the record at path. A missing file is an
// error matching fs.ErrNotExist.
func readRecordFile(path string) (*Record, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxRecordSize {
		return nil, fmt.Errorf("read restore record %s: %w: %d bytes", path, ErrRecordCorrupt, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read restore record: %w", err)
	}
	r, err := decodeRecord(b)
	if err != nil {
		return nil, fmt.Errorf("read restore record %s: %w", path, err)
	}
	return r, nil
}

// ReadRecordFile reads a restore record from path: restore/restore.json or
// a copy written by RegisterThroughFile.
func ReadRecordFile(path string) (*Record, error) { return readRecordFile(path) }

// writeRecordFile writes r to path durably (fsutil.WriteFileAtomic: a crash
// leaves the old record or the new one, never a mix), creating the parent
// directory if needed.
func writeRecordFile(path string, r *Record) error {
	b, err := encodeRecord(r)
	if err != nil {
		return fmt.Errorf("write restore record: %w", err)
	}
	parent := filepath.Dir(path)
	if _, err := os.Stat(parent); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return fmt.Errorf("write restore record: %w", err)
		}
		if err := fsutil.SyncDir(filepath.Dir(parent)); err != nil {
			return fmt.Errorf("write restore record: %w", err)
		}
	}
	if err := fsutil.WriteFileAtomic(path, b, 0o600); err != nil {
		return fmt.Errorf("write restore record: %w", err)
	}
	return nil
}

// removeRecord deletes the record durably. A missing record is not an
// error.
func removeRecord(dir datadir.Dir) error {
	p := RecordPath(dir)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove restore record: %w", err)
	}
	return fsutil.SyncDir(filepath.Dir(p))
}

// Pending returns the data directory's restore record, or nil when there
// is none. A record that keeps the CA from starting without recovery being
// possible (registered but not completed, or completed with a failure) is
// returned together with a *PendingError that says how to finish or cancel
// it. A record returned with a nil error means hard recovery must run
// (Recover) before the database is opened. A record that cannot be read is
// an error matching ErrRecordCorrupt; the CA must not start then either.
// Pending only reads; it takes no lock.
func Pending(dir datadir.Dir) (*Record, error) {
	p := RecordPath(dir)
	r, err := readRecordFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	switch r.State {
	case StateRegistered:
		return r, &PendingError{Path: p, State: r.State, Err: ErrRegistrationPending}
	case StateFailed:
		return r, &PendingError{Path: p, State: r.State, Status: r.Status, Err: ErrRestoreFailed}
	}
	return r, nil
}

// Cancel removes the data directory's restore record, whatever its state,
// and returns it (nil when it could not be decoded). It takes the data
// directory's lock (ErrCARunning while the CA runs) and fails with
// ErrNothingPending when there is no record. It changes nothing else: the
// files a cancelled restore copied stay where they are, and a database a
// cancelled recovery replayed part of stays as it is; the next start runs
// soft recovery on whatever the directories hold. Cancel is how an operator
// abandons a restore that was registered but never completed.
func Cancel(dir datadir.Dir) (*Record, error) {
	lock, err := acquire(dir)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	p := RecordPath(dir)
	r, err := readRecordFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("cancel restore in %s: %w", dir.Root, ErrNothingPending)
	case err != nil && !errors.Is(err, ErrRecordCorrupt):
		return nil, fmt.Errorf("cancel restore: %w", err)
	}
	if err := removeRecord(dir); err != nil {
		return nil, fmt.Errorf("cancel restore: %w", err)
	}
	return r, nil
}

// acquire takes the data directory's lock; a held lock is ErrCARunning
// (also matching datadir.ErrLocked).
func acquire(dir datadir.Dir) (*datadir.Lock, error) {
	lock, err := dir.Acquire()
	if err != nil {
		if errors.Is(err, datadir.ErrLocked) {
			return nil, fmt.Errorf("%w: %w", ErrCARunning, err)
		}
		return nil, err
	}
	return lock, nil
}

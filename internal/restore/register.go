package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/wal"
)

// Registration is a restore in progress on the CA host, the analogue of
// certbcli.h's restore context: Prepare took the data directory's lock,
// Register records what was restored, Complete marks the restore done (or
// failed), End releases the lock. A Registration is for one goroutine at a
// time.
type Registration struct {
	dir   datadir.Dir
	lock  *datadir.Lock
	rec   *Record // what Register wrote; nil before
	done  bool    // Complete was called
	ended bool
}

// Prepare starts a restore into dir (CertSrvRestorePrepare). It takes the
// data directory's lock, so it fails with ErrCARunning while the CA (or
// another restore, or a recovery) runs. It refuses, with a *PendingError,
// while restore/restore.json holds a restore that was registered but not
// completed (ErrRegistrationPending) or a completed one still waiting for
// recovery (ErrRecoveryPending); a restore completed with a failure status
// may be run again. A record that cannot be read is refused too
// (ErrRecordCorrupt); Cancel removes it. The caller must End the
// Registration, which releases the lock.
func Prepare(dir datadir.Dir) (*Registration, error) {
	lock, err := acquire(dir)
	if err != nil {
		return nil, fmt.Errorf("restore prepare: %w", err)
	}
	p := RecordPath(dir)
	r, err := readRecordFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		lock.Release()
		return nil, fmt.Errorf("restore prepare: %w; cancel it with `certsrv restore --cancel` or remove %s", err, p)
	case r.State == StateRegistered:
		lock.Release()
		return nil, fmt.Errorf("restore prepare: %w", &PendingError{Path: p, State: r.State, Err: ErrRegistrationPending})
	case r.State.recoverable():
		lock.Release()
		return nil, fmt.Errorf("restore prepare: %w", &PendingError{Path: p, State: r.State, Err: ErrRecoveryPending})
	}
	return &Registration{dir: dir, lock: lock}, nil
}

// Dir returns the data directory being restored.
func (g *Registration) Dir() datadir.Dir { return g.dir }

// Record returns a copy of the record Register wrote, or nil before.
func (g *Registration) Record() *Record {
	if g.rec == nil {
		return nil
	}
	return g.rec.clone()
}

// usable fails after End.
func (g *Registration) usable(op string) error {
	if g.ended {
		return fmt.Errorf("%s: %w: the restore context has ended", op, ErrSequence)
	}
	return nil
}

// Register records the restore (CertSrvRestoreRegister): rec names the
// checkpoint directory, the log directory, the restore map (one database:
// its old path on the backed-up host and its new path here), the directory
// holding the backup's log generations and their range LowGen..HighGen,
// and optionally the snapshot LSN, a point-in-time bound, catch-up and
// whether recovery must make a new admin credential. Format, State and
// Registered are set by Register; an empty CAName or LogBase is taken from
// the data directory's configuration (LogBase "ca" without one).
//
// When the data directory has a configuration, the new database path, the
// log directory and the checkpoint directory must be the ones the CA uses
// (db/<CA>.db, log/, sys/), since the CA reads nothing else; otherwise the
// registration is refused with ErrInvalidArgument. The record is written
// atomically in state "registered", which keeps the CA from starting until
// Complete. Register may be called again, before Complete, to replace it.
func (g *Registration) Register(rec Record) error {
	const op = "restore register"
	if err := g.usable(op); err != nil {
		return err
	}
	if g.done {
		return fmt.Errorf("%s: %w: the restore was already completed", op, ErrSequence)
	}
	r := rec.clone()
	r.Format = RecordFormat
	r.State = StateRegistered
	r.Status = ""
	r.Registered = time.Now().UTC()
	r.Completed = time.Time{}
	r.Recovery = nil
	cfg, err := g.dir.LoadConfig()
	switch {
	case err == nil:
		if r.CAName == "" {
			r.CAName = cfg.CAName
		}
		if r.LogBase == "" {
			r.LogBase = cfg.LogBase
		}
	case errors.Is(err, datadir.ErrNotInitialized):
		cfg = nil
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
	if r.LogBase == "" {
		r.LogBase = wal.DefaultBase
	}
	for i := range r.RestoreMap {
		r.RestoreMap[i].New = filepath.Clean(r.RestoreMap[i].New)
	}
	for _, p := range []*string{&r.CheckpointDir, &r.LogDir, &r.BackupLogDir} {
		if *p != "" {
			*p = filepath.Clean(*p)
		}
	}
	if err := r.validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if cfg != nil {
		if err := checkLayout(g.dir, cfg, r); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := writeRecordFile(RecordPath(g.dir), r); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	g.rec = r
	return nil
}

// filesInPlace checks that the files a completed registration promises
// are there: the restored database and every backup log generation.
func (r *Record) filesInPlace() error {
	if fi, err := os.Stat(r.DatabasePath()); err != nil || !fi.Mode().IsRegular() {
		return invalid("the restored database %s is not there: copy it before completing the restore", r.DatabasePath())
	}
	for gen := r.LowGen; ; gen++ {
		p := filepath.Join(r.BackupLogDir, wal.FileName(r.LogBase, gen))
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return invalid("backup log generation %d (%s) is not there: copy generations %d..%d into %s before completing the restore",
				gen, p, r.LowGen, r.HighGen, r.BackupLogDir)
		}
		if gen >= r.HighGen {
			return nil
		}
	}
}

// checkLayout checks that a registration names the paths the CA of dir
// uses.
func checkLayout(dir datadir.Dir, cfg *datadir.Config, r *Record) error {
	want := []struct{ name, got, want string }{
		{"database", r.DatabasePath(), dir.DBPath(cfg.CAName)},
		{"log directory", r.LogDir, dir.LogDir()},
		{"checkpoint directory", r.CheckpointDir, dir.SysDir()},
	}
	for _, w := range want {
		if w.got != w.want {
			return invalid("the %s %s is not the one the CA in %s uses (%s)", w.name, w.got, dir.Root, w.want)
		}
	}
	if r.CAName != cfg.CAName {
		return invalid("CA name %q, the configuration's is %q", r.CAName, cfg.CAName)
	}
	if r.LogBase != cfg.LogBase {
		return invalid("log base %q, the configuration's is %q", r.LogBase, cfg.LogBase)
	}
	return nil
}

// RegisterThroughFile writes the registration Register made, in the same
// format as restore/restore.json, to the file at path as well
// (CertSrvRestoreRegisterThroughFile), atomically, for example into the
// backup medium for the operator's records. The data directory's record
// stays the one the CA reads; ReadRecordFile reads such a copy. It fails
// with ErrSequence before Register.
func (g *Registration) RegisterThroughFile(path string) error {
	const op = "restore register through file"
	if err := g.usable(op); err != nil {
		return err
	}
	if g.rec == nil {
		return fmt.Errorf("%s: %w: nothing registered yet", op, ErrSequence)
	}
	if path == "" {
		return fmt.Errorf("%s: %w", op, invalid("empty path"))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if abs == RecordPath(g.dir) {
		return fmt.Errorf("%s: %w", op, invalid("%s is the data directory's own record", abs))
	}
	if err := writeRecordFile(abs, g.rec); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Complete ends the registration (CertSrvRestoreRegisterComplete). A nil
// status means the restore succeeded: the record moves to state
// "complete" and hard recovery runs at the next start of the CA (or by
// Recover). A non-nil status records the failure (state "failed"): the CA
// keeps refusing to start, and the operator runs the restore again or
// cancels it. Complete fails with ErrSequence before Register or after a
// first Complete. A nil status is refused with ErrInvalidArgument, and the
// registration stays as it was, when the restored files are not in place:
// the database the restore map names, or one of the backup's log
// generations LowGen..HighGen in BackupLogDir.
func (g *Registration) Complete(status error) error {
	const op = "restore register complete"
	if err := g.usable(op); err != nil {
		return err
	}
	if g.rec == nil {
		return fmt.Errorf("%s: %w: nothing registered", op, ErrSequence)
	}
	if g.done {
		return fmt.Errorf("%s: %w: already completed", op, ErrSequence)
	}
	if status == nil {
		if err := g.rec.filesInPlace(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	r := g.rec.clone()
	r.Completed = time.Now().UTC()
	if status == nil {
		r.State = StateComplete
	} else {
		r.State = StateFailed
		r.Status = status.Error()
		if r.Status == "" {
			r.Status = "failed"
		}
	}
	if err := writeRecordFile(RecordPath(g.dir), r); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	g.rec, g.done = r, true
	return nil
}

// End releases the data directory's lock (CertSrvRestoreEnd). A restore
// registered but not completed stays registered, and the CA refuses to
// start until it is completed or cancelled. End after End fails with
// ErrSequence.
func (g *Registration) End() error {
	if g.ended {
		return fmt.Errorf("restore end: %w: already ended", ErrSequence)
	}
	g.ended = true
	return g.lock.Release()
}

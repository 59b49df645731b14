package certadm

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/restore"
)

// RestoreFlags selects what a restore restores, with the values of
// certbcli.h's CSRESTORE_TYPE_* flags.
type RestoreFlags int

// RestoreFull is CSRESTORE_TYPE_FULL (1): the database and its logs. It is
// the only restore type.
const RestoreFull RestoreFlags = 1

// ErrCARunning: the CA (or another restore or recovery) holds the data
// directory, so a restore cannot begin; stop it first.
// ERROR_BUSY 0x800700AA.
var ErrCARunning = errors.New("the CA is running")

// Conditions of the restore functions that the server never reports.
var (
	condCARunning         = condition{apierr.Code{Reason: "ERROR_BUSY", HRESULT: 0x800700AA}, []error{ErrCARunning}}
	condRestoreInProgress = condition{apierr.RestoreInProgress, []error{ErrRestoreInProgress}}
)

// RestoreMapEntry is one entry of the restore map given to Register (the
// C RESTOREMAPW structure): a database file's path on the host the backup
// was taken from, as the backup's restore map (DatabaseLocations, saved in
// the set as certbkxp.dat) names it, and the path it was restored to.
type RestoreMapEntry struct {
	// DatabaseName is the database file's path on the host the backup
	// was taken from, exactly as the backup's restore map lists it.
	DatabaseName string
	// NewDatabaseName is where the database file was restored to on
	// this host: the data directory's db/<CA>.db.
	NewDatabaseName string
}

// RestoreContext is a restore in progress on the CA host, the Go form of
// the certbcli.h restore context handle. Call Register (or first copy the
// files and then Register), RegisterComplete and End, in that order. It
// holds the data directory's lock from RestorePrepare to End. A
// RestoreContext is for one goroutine at a time.
//
// The restore functions work on the local data directory, not over the
// network, and need the CA stopped: the database cannot be replaced under
// a running CA. The hard recovery that makes the restored files a CA again
// runs when the CA next starts (certsrv serve) or at `certsrv recover`;
// until it has run, every client call is answered with ErrServerSuspended.
type RestoreContext struct {
	g *restore.Registration
}

// RestorePrepare begins a restore into the data directory dataDir
// (CertSrvRestorePrepare). flags must be RestoreFull (ErrInvalidArg
// otherwise). It fails with ErrCARunning while the CA, or another restore
// or recovery, holds the directory, and with ErrRestoreInProgress while a
// restore registered earlier was not completed, or was completed and
// still waits for recovery; the error's message says how to finish or
// cancel it. The caller must End the context.
func RestorePrepare(dataDir string, flags RestoreFlags) (*RestoreContext, error) {
	const op = "restore prepare"
	if flags != RestoreFull {
		return nil, newError(condInvalidArg, op, "restore flags %d: only RestoreFull (1) is defined", int(flags))
	}
	dir, err := datadir.New(dataDir)
	if err != nil {
		return nil, newError(condInvalidArg, op, "%w", err)
	}
	g, err := restore.Prepare(dir)
	if err != nil {
		return nil, restoreError(op, err)
	}
	return &RestoreContext{g: g}, nil
}

// Register records the restore (CertSrvRestoreRegister): checkpointPath is
// the directory the checkpoint file goes to (the restore map's 0x83
// entry, mapped to this host), logPath the log directory (0x82),
// restoreMap the database restored (exactly one entry), backupLogPath the
// directory holding the backup's log generations lowLog..highLog (as
// BackupLogs listed them), copied there by the caller. Relative paths are
// made absolute. When the data directory has a configuration, the new
// database path and the two directories must be the ones the CA uses
// (db/<CA>.db, log/, sys/; ErrInvalidArg otherwise).
//
// From Register on, the CA refuses to start until RegisterComplete. Catch-up
// is on: hard recovery replays, after the backup's logs, the live logs still
// in logPath that continue them. Register may be called again before
// RegisterComplete to replace the registration.
func (r *RestoreContext) Register(checkpointPath, logPath string, restoreMap []RestoreMapEntry, backupLogPath string, lowLog, highLog uint32) error {
	const op = "restore register"
	rec := restore.Record{LowGen: lowLog, HighGen: highLog, CatchUp: true}
	var err error
	abs := func(p string) string {
		if p == "" || err != nil {
			return p
		}
		var a string
		a, err = filepath.Abs(p)
		return a
	}
	rec.CheckpointDir = abs(checkpointPath)
	rec.LogDir = abs(logPath)
	rec.BackupLogDir = abs(backupLogPath)
	for _, e := range restoreMap {
		rec.RestoreMap = append(rec.RestoreMap, restore.MapEntry{Old: e.DatabaseName, New: abs(e.NewDatabaseName)})
	}
	if err != nil {
		return newError(condInvalidArg, op, "%w", err)
	}
	if err := r.g.Register(rec); err != nil {
		return restoreError(op, err)
	}
	return nil
}

// RegisterThroughFile writes the registration Register made to the file
// at path as well (CertSrvRestoreRegisterThroughFile), in the format of the
// data directory's restore/restore.json, atomically. The data directory's
// own record stays the one the CA reads. It fails with
// ErrInvalidBackupSequence before Register.
func (r *RestoreContext) RegisterThroughFile(path string) error {
	if err := r.g.RegisterThroughFile(path); err != nil {
		return restoreError("restore register through file", err)
	}
	return nil
}

// RegisterComplete ends the registration (CertSrvRestoreRegisterComplete).
// A nil status means the files are in place: hard recovery runs at the
// next start of the CA. That is checked: when the restored database or one
// of the backup log generations lowLog..highLog in backupLogPath is
// missing, RegisterComplete(nil) fails with ErrInvalidArg naming it, and
// the registration stays as it was. A non-nil status (the C hrRestoreState) records
// that the restore failed: the CA keeps refusing to start until the restore
// is run again to completion or cancelled (`certsrv restore --cancel`). It
// fails with ErrInvalidBackupSequence before Register or when called twice.
func (r *RestoreContext) RegisterComplete(status error) error {
	if err := r.g.Complete(status); err != nil {
		return restoreError("restore register complete", err)
	}
	return nil
}

// End releases the data directory (CertSrvRestoreEnd). A registration
// that was not completed stays, and keeps the CA from starting. A second
// End fails with ErrInvalidBackupSequence.
func (r *RestoreContext) End() error {
	if err := r.g.End(); err != nil {
		return restoreError("restore end", err)
	}
	return nil
}

// restoreError converts an error of internal/restore into an *Error that
// keeps it as its cause.
func restoreError(op string, err error) error {
	c := condUnexpected
	switch {
	case errors.Is(err, restore.ErrCARunning):
		c = condCARunning
	case errors.Is(err, restore.ErrRegistrationPending), errors.Is(err, restore.ErrRecoveryPending):
		c = condRestoreInProgress
	case errors.Is(err, restore.ErrSequence):
		c = condSequence
	case errors.Is(err, restore.ErrInvalidArgument):
		c = condInvalidArg
	}
	e := newError(c, op, "%w", err)
	// internal/restore's errors already start with the operation.
	e.Message = strings.TrimPrefix(e.Message, op+": ")
	return e
}

// String returns "full" for RestoreFull.
func (f RestoreFlags) String() string {
	if f == RestoreFull {
		return "full"
	}
	return fmt.Sprintf("RestoreFlags(%d)", int(f))
}

package main

/*
#define CERTBCLI_NO_PROTOTYPES
#include "certbcli.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"path/filepath"
	"unsafe"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/datadir"
)

// maxRestoreMap bounds crstmap; certsrv's restore map has one entry, so
// anything larger is certainly a caller's mistake.
const maxRestoreMap = 16

// throughFileName is the file CertSrvRestoreRegisterThroughFile writes into
// the backup log directory: a copy of the registration in the format of
// the data directory's restore/restore.json.
const throughFileName = "restore.json"

// restoreSession is what a restore handle holds.
type restoreSession struct {
	rc  *certadm.RestoreContext
	dir datadir.Dir
}

// locations is the restore map of the data directory being restored, as
// CertSrvRestoreGetDatabaseLocationsW returns it for a restore handle: the
// database file, the log directory and the checkpoint directory the CA in
// that directory uses. A directory without a configuration (an empty one
// on a new host) has no CA name yet, so its database path is unknown:
// certadm.ErrNotFound.
func (r *restoreSession) locations() ([]certadm.File, error) {
	cfg, err := r.dir.LoadConfig()
	if errors.Is(err, datadir.ErrNotInitialized) {
		return nil, fmt.Errorf("database locations of %s: no configuration yet, so no CA name: %w", r.dir.Root, certadm.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("database locations of %s: %w: %v", r.dir.Root, certadm.ErrInvalidArg, err)
	}
	return []certadm.File{
		{Type: certadm.FileDatabase, Name: r.dir.DBPath(cfg.CAName)},
		{Type: certadm.FileLogDirectory, Name: r.dir.LogDir()},
		{Type: certadm.FileCheckpointDirectory, Name: r.dir.SysDir()},
	}, nil
}

// optString converts an optional string argument: NULL is "".
func optString(fn, param string, p *C.WCHAR) (string, error) {
	if p == nil {
		return "", nil
	}
	return argString(fn, param, p)
}

// registration is the arguments of CertSrvRestoreRegisterW, converted.
type registration struct {
	checkpoint, logs, backupLogs string
	restoreMap                   []certadm.RestoreMapEntry
	low, high                    uint32
}

func convertRegistration(fn string, ckpt, logPath *C.WCHAR, rgrstmap *C.CSEDB_RSTMAPW, crstmap C.LONG, backupLogPath *C.WCHAR, genLow, genHigh C.ULONG) (registration, error) {
	r := registration{low: uint32(genLow), high: uint32(genHigh)}
	var err error
	if r.checkpoint, err = optString(fn, "pwszCheckPointFilePath", ckpt); err != nil {
		return r, err
	}
	if r.logs, err = optString(fn, "pwszLogPath", logPath); err != nil {
		return r, err
	}
	if r.backupLogs, err = optString(fn, "pwszBackupLogPath", backupLogPath); err != nil {
		return r, err
	}
	if crstmap < 0 || crstmap > maxRestoreMap {
		return r, fmt.Errorf("crstmap %d is not 0..%d: %w", int32(crstmap), maxRestoreMap, certadm.ErrInvalidArg)
	}
	if crstmap > 0 && rgrstmap == nil {
		return r, nullArg(fn, "rgrstmap")
	}
	if crstmap == 0 {
		return r, nil
	}
	for i, m := range unsafe.Slice(rgrstmap, int(crstmap)) {
		old, err := argString(fn, fmt.Sprintf("rgrstmap[%d].pwszDatabaseName", i), m.pwszDatabaseName)
		if err != nil {
			return r, err
		}
		repl, err := argString(fn, fmt.Sprintf("rgrstmap[%d].pwszNewDatabaseName", i), m.pwszNewDatabaseName)
		if err != nil {
			return r, err
		}
		r.restoreMap = append(r.restoreMap, certadm.RestoreMapEntry{DatabaseName: old, NewDatabaseName: repl})
	}
	return r, nil
}

//export CertSrvRestorePrepareW
func CertSrvRestorePrepareW(pwszServerName *C.WCHAR, dwRestoreFlags C.ULONG, phbc *C.HCSBC) (hr C.HRESULT) {
	const fn = "CertSrvRestorePrepareW"
	var err error
	defer finish(fn, &hr, &err)
	if phbc == nil {
		err = nullArg(fn, "phbc")
		return
	}
	setHandle(phbc, 0)
	name, err := argString(fn, "pwszServerName", pwszServerName)
	if err != nil {
		return
	}
	dir, err := datadir.New(name)
	if err != nil {
		err = fmt.Errorf("%w: %v", certadm.ErrInvalidArg, err)
		return
	}
	rc, err := certadm.RestorePrepare(dir.Root, certadm.RestoreFlags(dwRestoreFlags))
	if err != nil {
		return
	}
	setHandle(phbc, handles.add(&entry{kind: kindRestore, restore: &restoreSession{rc: rc, dir: dir}}))
	return
}

//export CertSrvRestoreRegisterW
func CertSrvRestoreRegisterW(hbc C.HCSBC, pwszCheckPointFilePath *C.WCHAR, pwszLogPath *C.WCHAR, rgrstmap *C.CSEDB_RSTMAPW, crstmap C.LONG, pwszBackupLogPath *C.WCHAR, genLow C.ULONG, genHigh C.ULONG) (hr C.HRESULT) {
	const fn = "CertSrvRestoreRegisterW"
	var err error
	defer finish(fn, &hr, &err)
	e, err := lockedEntry(hbc, kindRestore)
	if err != nil {
		return
	}
	defer e.mu.Unlock()
	r, err := convertRegistration(fn, pwszCheckPointFilePath, pwszLogPath, rgrstmap, crstmap, pwszBackupLogPath, genLow, genHigh)
	if err != nil {
		return
	}
	err = e.restore.rc.Register(r.checkpoint, r.logs, r.restoreMap, r.backupLogs, r.low, r.high)
	return
}

//export CertSrvRestoreRegisterThroughFile
func CertSrvRestoreRegisterThroughFile(hbc C.HCSBC, pwszCheckPointFilePath *C.WCHAR, pwszLogPath *C.WCHAR, rgrstmap *C.CSEDB_RSTMAPW, crstmap C.LONG, pwszBackupLogPath *C.WCHAR, genLow C.ULONG, genHigh C.ULONG) (hr C.HRESULT) {
	const fn = "CertSrvRestoreRegisterThroughFile"
	var err error
	defer finish(fn, &hr, &err)
	e, err := lockedEntry(hbc, kindRestore)
	if err != nil {
		return
	}
	defer e.mu.Unlock()
	r, err := convertRegistration(fn, pwszCheckPointFilePath, pwszLogPath, rgrstmap, crstmap, pwszBackupLogPath, genLow, genHigh)
	if err != nil {
		return
	}
	if r.backupLogs == "" {
		err = fmt.Errorf("no backup log directory to write %s into: %w", throughFileName, certadm.ErrInvalidArg)
		return
	}
	if err = e.restore.rc.Register(r.checkpoint, r.logs, r.restoreMap, r.backupLogs, r.low, r.high); err != nil {
		return
	}
	err = e.restore.rc.RegisterThroughFile(filepath.Join(r.backupLogs, throughFileName))
	return
}

// restoreFailure is the status CertSrvRestoreRegisterComplete records for
// a failed restore: the caller's HRESULT.
type restoreFailure uint32

func (f restoreFailure) Error() string {
	return fmt.Sprintf("the restore program reported HRESULT 0x%08X", uint32(f))
}

//export CertSrvRestoreRegisterComplete
func CertSrvRestoreRegisterComplete(hbc C.HCSBC, hrRestoreState C.HRESULT) (hr C.HRESULT) {
	const fn = "CertSrvRestoreRegisterComplete"
	var err error
	defer finish(fn, &hr, &err)
	e, err := lockedEntry(hbc, kindRestore)
	if err != nil {
		return
	}
	defer e.mu.Unlock()
	var status error
	if hrRestoreState < 0 { // FAILED(hrRestoreState)
		status = restoreFailure(uint32(int32(hrRestoreState)))
	}
	err = e.restore.rc.RegisterComplete(status)
	return
}

//export CertSrvRestoreEnd
func CertSrvRestoreEnd(hbc C.HCSBC) (hr C.HRESULT) {
	const fn = "CertSrvRestoreEnd"
	var err error
	defer finish(fn, &hr, &err)
	e, err := takeEntry(hbc, kindRestore)
	if err != nil {
		return
	}
	defer e.mu.Unlock()
	err = e.restore.rc.End()
	return
}

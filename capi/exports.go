package main

/*
#define CERTBCLI_NO_PROTOTYPES
#include "certbcli.h"
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/certsrv/certsrv/certadm"
)

// finish is deferred by every export: it turns a recovered panic into
// E_UNEXPECTED (a panic must not cross into C) and, when *err is not nil,
// stores its HRESULT in *hr and traces it if CERTBCLI_TRACE is set. With
// *err nil it leaves *hr as the export set it: S_OK (the zero value) or
// another success code.
func finish(fn string, hr *C.HRESULT, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", errPanic, r)
	}
	if *err == nil {
		return
	}
	v := hrOf(*err)
	trace(fmt.Sprintf("certbcli: %s: %v (HRESULT 0x%08X)", fn, *err, v))
	*hr = goHR(v)
}

// argString converts a required string argument.
func argString(fn, param string, p *C.WCHAR) (string, error) {
	if p == nil {
		return "", &ArgError{fn, param, errNullPointer}
	}
	s, err := wstring(p)
	if err != nil {
		return "", &ArgError{fn, param, err}
	}
	return s, nil
}

func nullArg(fn, param string) error { return &ArgError{fn, param, errNullPointer} }

// lockedEntry returns the entry of handle hbc, which must be of kind k,
// locked; the caller unlocks it.
func lockedEntry(hbc C.HCSBC, k handleKind) (*entry, error) {
	e, ok := handles.get(uintptr(hbc), k)
	return lockEntry(hbc, e, ok)
}

// takeEntry removes handle hbc, which must be of kind k, and returns its
// entry locked; the caller unlocks it.
func takeEntry(hbc C.HCSBC, k handleKind) (*entry, error) {
	e, ok := handles.remove(uintptr(hbc), k)
	return lockEntry(hbc, e, ok)
}

func lockEntry(hbc C.HCSBC, e *entry, ok bool) (*entry, error) {
	if !ok {
		return nil, fmt.Errorf("handle %#x: %w", uintptr(hbc), errBadHandle)
	}
	e.mu.Lock()
	return e, nil
}

// returnList stores files as a certbcli.h multi-string in *pp and its size
// in *pcb.
func returnList(files []certadm.File, pp **C.WCHAR, pcb *C.DWORD) error {
	units, err := encodeList(files)
	if err != nil {
		return fmt.Errorf("%w: %v", certadm.ErrInvalidData, err)
	}
	p, n, err := cList(units)
	if err != nil {
		return err
	}
	*pp, *pcb = p, n
	return nil
}

// listCall is the body of the four list exports: check the out-parameters,
// clear them, find the handle's entry and call list with it locked.
func listCall(fn string, hbc C.HCSBC, pp **C.WCHAR, pcb *C.DWORD, list func(context.Context, *entry) ([]certadm.File, error)) error {
	if pp == nil {
		return nullArg(fn, "list pointer")
	}
	*pp = nil
	if pcb == nil {
		return nullArg(fn, "pcbSize")
	}
	*pcb = 0
	e, err := entryForList(fn, hbc)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	ctx, cancel := callContext()
	defer cancel()
	files, err := list(ctx, e)
	if err != nil {
		return err
	}
	return returnList(files, pp, pcb)
}

// entryForList is lockedEntry of a backup handle, except that CertSrvRestoreGetDatabaseLocationsW
// also accepts a restore handle.
func entryForList(fn string, hbc C.HCSBC) (*entry, error) {
	if fn == "CertSrvRestoreGetDatabaseLocationsW" {
		if e, ok := handles.get(uintptr(hbc), kindRestore); ok {
			e.mu.Lock()
			return e, nil
		}
	}
	return lockedEntry(hbc, kindBackup)
}

//export CertSrvIsServerOnlineW
func CertSrvIsServerOnlineW(pwszServerName *C.WCHAR, pfServerOnline *C.BOOL) (hr C.HRESULT) {
	const fn = "CertSrvIsServerOnlineW"
	var err error
	defer finish(fn, &hr, &err)
	if pfServerOnline == nil {
		err = nullArg(fn, "pfServerOnline")
		return
	}
	*pfServerOnline = 0
	name, err := argString(fn, "pwszServerName", pwszServerName)
	if err != nil {
		return
	}
	t, err := resolveTarget(name)
	if err != nil {
		return
	}
	ctx, cancel := callContext()
	defer cancel()
	online, err := certadm.IsServerOnline(ctx, t.server, t.options()...)
	if err == nil && online {
		*pfServerOnline = 1
	}
	return
}

//export CertSrvBackupPrepareW
func CertSrvBackupPrepareW(pwszServerName *C.WCHAR, grbitJet C.ULONG, dwBackupFlags C.ULONG, phbc *C.HCSBC) (hr C.HRESULT) {
	const fn = "CertSrvBackupPrepareW"
	var err error
	defer finish(fn, &hr, &err)
	_ = grbitJet // an ESE option in Windows; certsrv has no use for it
	if phbc == nil {
		err = nullArg(fn, "phbc")
		return
	}
	setHandle(phbc, 0)
	name, err := argString(fn, "pwszServerName", pwszServerName)
	if err != nil {
		return
	}
	t, err := resolveTarget(name)
	if err != nil {
		return
	}
	ctx, cancel := callContext()
	defer cancel()
	b, err := certadm.BackupPrepare(ctx, t.server, certadm.BackupType(dwBackupFlags), t.options()...)
	if err != nil {
		return
	}
	setHandle(phbc, handles.add(&entry{kind: kindBackup, backup: b}))
	return
}

//export CertSrvRestoreGetDatabaseLocationsW
func CertSrvRestoreGetDatabaseLocationsW(hbc C.HCSBC, ppwszzDatabaseLocationList **C.WCHAR, pcbSize *C.DWORD) (hr C.HRESULT) {
	const fn = "CertSrvRestoreGetDatabaseLocationsW"
	var err error
	defer finish(fn, &hr, &err)
	err = listCall(fn, hbc, ppwszzDatabaseLocationList, pcbSize, func(ctx context.Context, e *entry) ([]certadm.File, error) {
		if e.kind == kindRestore {
			return e.restore.locations()
		}
		return e.backup.DatabaseLocations(ctx)
	})
	return
}

//export CertSrvBackupGetDatabaseNamesW
func CertSrvBackupGetDatabaseNamesW(hbc C.HCSBC, ppwszzAttachmentInformation **C.WCHAR, pcbSize *C.DWORD) (hr C.HRESULT) {
	const fn = "CertSrvBackupGetDatabaseNamesW"
	var err error
	defer finish(fn, &hr, &err)
	err = listCall(fn, hbc, ppwszzAttachmentInformation, pcbSize, func(ctx context.Context, e *entry) ([]certadm.File, error) {
		return e.backup.DatabaseNames(ctx)
	})
	return
}

//export CertSrvBackupGetBackupLogsW
func CertSrvBackupGetBackupLogsW(hbc C.HCSBC, ppwszzBackupLogFiles **C.WCHAR, pcbSize *C.DWORD) (hr C.HRESULT) {
	const fn = "CertSrvBackupGetBackupLogsW"
	var err error
	defer finish(fn, &hr, &err)
	err = listCall(fn, hbc, ppwszzBackupLogFiles, pcbSize, func(ctx context.Context, e *entry) ([]certadm.File, error) {
		return e.backup.BackupLogs(ctx)
	})
	return
}

//export CertSrvBackupGetDynamicFileListW
func CertSrvBackupGetDynamicFileListW(hbc C.HCSBC, ppwszzFileList **C.WCHAR, pcbSize *C.DWORD) (hr C.HRESULT) {
	const fn = "CertSrvBackupGetDynamicFileListW"
	var err error
	defer finish(fn, &hr, &err)
	err = listCall(fn, hbc, ppwszzFileList, pcbSize, func(ctx context.Context, e *entry) ([]certadm.File, error) {
		return e.backup.DynamicFiles(ctx)
	})
	return
}

//export CertSrvBackupOpenFileW
func CertSrvBackupOpenFileW(hbc C.HCSBC, pwszAttachmentName *C.WCHAR, cbReadHintSize C.DWORD, pliFileSize *C.LARGE_INTEGER) (hr C.HRESULT) {
	const fn = "CertSrvBackupOpenFileW"
	var err error
	defer finish(fn, &hr, &err)
	if pliFileSize == nil {
		err = nullArg(fn, "pliFileSize")
		return
	}
	size := (*int64)(unsafe.Pointer(pliFileSize))
	*size = 0
	name, err := argString(fn, "pwszAttachmentName", pwszAttachmentName)
	if err != nil {
		return
	}
	e, err := lockedEntry(hbc, kindBackup)
	if err != nil {
		return
	}
	defer e.mu.Unlock()
	// The file's context lives until CertSrvBackupClose; a watchdog bounds
	// the open call itself.
	fctx, cancel := context.WithCancel(context.Background())
	watchdog := time.AfterFunc(callTimeout, cancel)
	f, err := e.backup.OpenFile(fctx, name, int(cbReadHintSize))
	if fired := !watchdog.Stop(); fired {
		// The file's context is cancelled: even a file that opened is
		// unusable.
		if err == nil {
			_ = f.Close()
		}
		err = fmt.Errorf("open %s: no answer within %s: %w", name, callTimeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return
	}
	e.file = &openFile{f: f, cancel: cancel}
	*size = f.Size()
	return
}

//export CertSrvBackupRead
func CertSrvBackupRead(hbc C.HCSBC, pvBuffer unsafe.Pointer, cbBuffer C.DWORD, pcbRead *C.DWORD) (hr C.HRESULT) {
	const fn = "CertSrvBackupRead"
	var err error
	defer finish(fn, &hr, &err)
	if pcbRead == nil {
		err = nullArg(fn, "pcbRead")
		return
	}
	*pcbRead = 0
	if pvBuffer == nil {
		err = nullArg(fn, "pvBuffer")
		return
	}
	if cbBuffer == 0 {
		err = &ArgError{fn, "cbBuffer", errBufferTooSmall}
		return
	}
	e, err := lockedEntry(hbc, kindBackup)
	if err != nil {
		return
	}
	defer e.mu.Unlock()
	if e.file == nil {
		err = fmt.Errorf("%w", errNoFile)
		return
	}
	n, err := readFull(e.file, unsafe.Slice((*byte)(pvBuffer), int(cbBuffer)))
	if err == nil {
		*pcbRead = C.DWORD(n)
	}
	return
}

// readFull fills buf from the open file until it is full or the file ends,
// and returns the count; the end of the file is not an error. Whenever no
// data arrives for readTimeout the file's context is cancelled, which ends
// its stream, and readFull fails with errReadTimeout.
func readFull(of *openFile, buf []byte) (int, error) {
	var fired atomic.Bool
	watchdog := time.AfterFunc(readTimeout, func() {
		fired.Store(true)
		of.cancel()
	})
	defer watchdog.Stop()
	n := 0
	for n < len(buf) {
		m, err := of.f.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			if fired.Load() {
				return 0, fmt.Errorf("read %s: %w", of.f.Name(), errReadTimeout)
			}
			return 0, err
		}
		watchdog.Reset(readTimeout)
	}
	return n, nil
}

//export CertSrvBackupClose
func CertSrvBackupClose(hbc C.HCSBC) (hr C.HRESULT) {
	const fn = "CertSrvBackupClose"
	var err error
	defer finish(fn, &hr, &err)
	e, err := lockedEntry(hbc, kindBackup)
	if err != nil {
		return
	}
	defer e.mu.Unlock()
	if e.file == nil {
		err = fmt.Errorf("%w", errNoFile)
		return
	}
	of := e.file
	e.file = nil
	err = of.f.Close()
	of.cancel()
	return
}

//export CertSrvBackupTruncateLogs
func CertSrvBackupTruncateLogs(hbc C.HCSBC) (hr C.HRESULT) {
	const fn = "CertSrvBackupTruncateLogs"
	var err error
	defer finish(fn, &hr, &err)
	e, err := lockedEntry(hbc, kindBackup)
	if err != nil {
		return
	}
	defer e.mu.Unlock()
	ctx, cancel := callContext()
	defer cancel()
	res, err := e.backup.TruncateLogs(ctx)
	if err != nil {
		return
	}
	if res.Deleted == 0 {
		// S_FALSE: a success that says nothing was deleted.
		hr = goHR(sFalse)
		trace(fmt.Sprintf("certbcli: %s: no log file deleted: %s", fn, res.Reason))
	}
	return
}

//export CertSrvBackupEnd
func CertSrvBackupEnd(hbc C.HCSBC) (hr C.HRESULT) {
	const fn = "CertSrvBackupEnd"
	var err error
	defer finish(fn, &hr, &err)
	e, err := takeEntry(hbc, kindBackup)
	if err != nil {
		return
	}
	defer e.mu.Unlock()
	ctx, cancel := callContext()
	defer cancel()
	// End closes an open file first; its context is released after.
	err = e.backup.End(ctx)
	if e.file != nil {
		e.file.cancel()
		e.file = nil
	}
	return
}

//export CertSrvBackupFree
func CertSrvBackupFree(pv unsafe.Pointer) {
	defer func() { _ = recover() }()
	cFree(pv)
}

//export CertSrvServerControlW
func CertSrvServerControlW(pwszServerName *C.WCHAR, dwControlFlags C.DWORD, pcbOut *C.DWORD, ppbOut **C.BYTE) (hr C.HRESULT) {
	const fn = "CertSrvServerControlW"
	var err error
	defer finish(fn, &hr, &err)
	if pcbOut != nil {
		*pcbOut = 0
	}
	if ppbOut != nil {
		*ppbOut = nil
	}
	name, err := argString(fn, "pwszServerName", pwszServerName)
	if err != nil {
		return
	}
	t, err := resolveTarget(name)
	if err != nil {
		return
	}
	ctx, cancel := callContext()
	defer cancel()
	err = certadm.ServerControl(ctx, t.server, certadm.Control(dwControlFlags), t.options()...)
	return
}

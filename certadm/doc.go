// Package certadm is the Go client library for a certsrv certificate
// authority: the backup functions of the Windows Certificate Services
// header certbcli.h (Certadm.dll), one Go function or method per C
// function, and a general Client for the CA's administrative operations.
//
// # Connecting
//
// Every call talks gRPC over TLS 1.3 to the server's admin API with a
// client certificate. The content of backup files (BackupFile reads) comes
// over the same port, certificate and authorization as one HTTP/1.1
// response instead of a gRPC stream when the server offers it, which costs
// both ends less CPU; against a server that does not, the library uses the
// gRPC stream. Either way a BackupFile delivers the same bytes and the
// same errors. The server address and the credentials are found in this
// order:
//
//   - server address: the server argument; else the CERTADM_SERVER
//     environment variable; else the first line of the file "server" in the
//     credentials directory; else "127.0.0.1:8443".
//   - credentials: WithTLSConfig; else WithCredentials(dir); else the
//     CERTADM_CREDS environment variable; else ./certsrv-data/admin when it
//     exists (the credential `certsrv init` writes); else the call fails with
//     ErrNoCredentials, saying what it tried.
//
// A credentials directory holds client.crt, client.key and trust.crt (PEM),
// and optionally server. The server certificate must chain to trust.crt and
// name the host of the server address (the server's certificate carries
// 127.0.0.1 and localhost). So on the CA host, in the directory holding
// certsrv-data, no option is needed:
//
//	online, err := certadm.IsServerOnline(ctx, "")
//
// # The certbcli.h mapping
//
//	certbcli.h                            certadm
//	CertSrvIsServerOnline                 IsServerOnline(ctx, server, opts...) (bool, error)
//	CertSrvBackupPrepare                  BackupPrepare(ctx, server, BackupFull|BackupLogsOnly, opts...) (*BackupContext, error)
//	CertSrvRestoreGetDatabaseLocations    (*BackupContext).DatabaseLocations(ctx) ([]File, error)
//	CertSrvBackupGetDatabaseNames         (*BackupContext).DatabaseNames(ctx) ([]File, error)
//	CertSrvBackupOpenFile                 (*BackupContext).OpenFile(ctx, name, readHint) (*BackupFile, error)
//	CertSrvBackupRead                     (*BackupFile).Read(p) — BackupFile is an io.ReadCloser with Size()
//	CertSrvBackupClose                    (*BackupFile).Close()
//	CertSrvBackupGetBackupLogs            (*BackupContext).BackupLogs(ctx) ([]File, error)
//	CertSrvBackupTruncateLogs             (*BackupContext).TruncateLogs(ctx) (TruncateResult, error)
//	CertSrvBackupGetDynamicFileList       (*BackupContext).DynamicFiles(ctx) ([]File, error)
//	CertSrvBackupEnd                      (*BackupContext).End(ctx) error; Abort(ctx) error
//	CertSrvBackupFree                     nothing to free: see below
//	CertSrvServerControl                  ServerControl(ctx, server, ControlShutdown, opts...) error
//	CertSrvRestorePrepare                 RestorePrepare(dataDir, RestoreFull) (*RestoreContext, error)
//	CertSrvRestoreRegister                (*RestoreContext).Register(checkpointPath, logPath, restoreMap, backupLogPath, low, high) error
//	CertSrvRestoreRegisterThroughFile     (*RestoreContext).RegisterThroughFile(path) error
//	CertSrvRestoreRegisterComplete        (*RestoreContext).RegisterComplete(status error) error
//	CertSrvRestoreEnd                     (*RestoreContext).End() error
//
// Constants keep the certbcli.h values: BackupFull is CSBACKUP_TYPE_FULL (1),
// BackupLogsOnly CSBACKUP_TYPE_LOGS_ONLY (2), ControlShutdown
// CSCONTROL_SHUTDOWN (1); the file tags are FileDatabase 'D'
// (CSBFT_CERTSERVER_DATABASE, 0x44), FileLog '!' (CSBFT_LOG, 0x21),
// FileLogDirectory 0x82 (CSBFT_LOG_DIR) and FileCheckpointDirectory 0x83
// (CSBFT_CHECKPOINT_DIR). File.String gives the tagged name as the C lists
// hold it.
//
// CertSrvBackupFree: the C functions allocate the lists they return and the
// caller frees them with CertSrvBackupFree. In Go the lists are ordinary
// slices that the garbage collector reclaims, so there is nothing to free
// and no BackupFree function. What a Go caller must release is the
// connection: End or Abort a BackupContext (or Close it), Close every
// BackupFile, and Close a Client.
//
// # A backup
//
// The certbcli.h scenario in Go, with error handling shortened:
//
//	if ok, err := certadm.IsServerOnline(ctx, ""); err != nil || !ok { ... }
//	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
//	defer b.Abort(ctx) // does nothing after End
//	restoreMap, err := b.DatabaseLocations(ctx) // save with the set: WriteRestoreMap
//	dbs, err := b.DatabaseNames(ctx)
//	for _, f := range dbs { copy f via b.OpenFile(ctx, f.Name, 0), io.Copy, Close }
//	logs, err := b.BackupLogs(ctx)
//	for _, f := range logs { the same }
//	res, err := b.TruncateLogs(ctx) // optional; res.Deleted says how many
//	dyn, err := b.DynamicFiles(ctx) // fetch each f.URL over HTTP
//	err = b.End(ctx) // b.Recorded() reports whether the server recorded it
//
// # Errors
//
// Every function and method returns an *Error, carrying the operation, the
// condition's reason and HRESULT, and the server's message. Match it with
// errors.Is against the sentinels (ErrInvalidBackupSequence,
// ErrServerSuspended, ErrAccessDenied, ...) and read the certbcli.h value
// with HRESULT(err): for example E_ACCESSDENIED 0x80070005, E_INVALIDARG
// 0x80070057, hrInvalidBackupSequence 0xC8000209,
// CERTSRV_E_SERVER_SUSPENDED 0x80094006, and hrCouldNotConnect 0xC7FF0007
// for a server that cannot be reached.
//
// # Concurrency
//
// A Client is safe for concurrent use. A BackupContext and its BackupFile
// are for one goroutine at a time, like the C handle they stand for. The
// server runs one backup session at a time.
//
// Restore (CertSrvRestorePrepare and the functions after it) runs on the CA
// host with the CA stopped: it registers a restore in the data directory,
// and the CA performs hard recovery when it next starts (or at certsrv
// recover). See RestorePrepare. ReadRestoreMap reads the restore map a
// backup saved (WriteRestoreMap), RestoreMapEntryFor makes Register's map
// entry from it, and File.Generation gives the generation numbers of the
// backup's log files for Register's lowLog and highLog.
package certadm

package certadm

import (
	"context"
	"fmt"
	"sync"
	"time"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// BackupType selects what a backup session copies.
type BackupType int

// The backup types, with the values of certbcli.h.
const (
	// BackupFull is CSBACKUP_TYPE_FULL (1): the database snapshot and the
	// logs needed to make it consistent.
	BackupFull BackupType = 1
	// BackupLogsOnly is CSBACKUP_TYPE_LOGS_ONLY (2): the log generations
	// written since the last recorded backup (an incremental backup).
	BackupLogsOnly BackupType = 2
)

// String returns "full" or "logs-only".
func (t BackupType) String() string {
	switch t {
	case BackupFull:
		return "full"
	case BackupLogsOnly:
		return "logs-only"
	}
	return fmt.Sprintf("BackupType(%d)", int(t))
}

// closeTimeout bounds the calls made on behalf of a caller that gave no
// context: BackupFile.Close and BackupContext.Close.
const closeTimeout = 30 * time.Second

// BackupContext is a backup session on the server, the Go form of the
// certbcli.h backup context handle (HCSBC). The session belongs to the
// principal that prepared it; the server aborts it when it stays idle for
// its lease (see Lease), and only one session runs at a time.
//
// Call the methods in the order of the certbcli.h scenario: DatabaseLocations
// (optional), DatabaseNames and OpenFile for each, BackupLogs and OpenFile
// for each, TruncateLogs (optional), DynamicFiles (optional), then End — or
// Abort at any point. A BackupContext is for one goroutine at a time. After
// End or Abort every method but Abort, Close, Recorded, EndInfo and
// SessionID fails with ErrInvalidBackupSequence; Abort after End or Abort
// does nothing, and so does Abort or Close of a nil BackupContext (the one
// a failed BackupPrepare returns), so `defer b.Abort(ctx)` is a safe
// cleanup. The other methods of a nil or zero BackupContext fail with
// ErrInvalidArg.
type BackupContext struct {
	c     *Client
	owned bool // End, Abort and Close close c
	typ   BackupType
	id    string
	lease time.Duration

	mu    sync.Mutex
	open  *BackupFile
	ended bool
	end   EndInfo
}

// BackupPrepare connects to server and starts a backup session of type typ
// (CertSrvBackupPrepare). server and opts are as for Dial; the caller needs
// the Operator role. A logs-only backup fails with ErrFullBackupNotTaken
// when no full backup was recorded, ErrCircularLogging when circular
// logging is on and ErrLogFileNotFound when a needed generation is gone;
// a second session fails with ErrBackupInProgress. The BackupContext owns
// its connection: End, Abort and Close release it.
func BackupPrepare(ctx context.Context, server string, typ BackupType, opts ...Option) (*BackupContext, error) {
	if err := checkBackupType(typ); err != nil {
		return nil, err
	}
	c, err := Dial(ctx, server, opts...)
	if err != nil {
		return nil, err
	}
	b, err := c.BackupPrepare(ctx, typ)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	b.owned = true
	return b, nil
}

// BackupPrepare is the package-level BackupPrepare over an existing
// connection. The BackupContext shares c: ending it does not close c, and
// closing c abandons the session to its lease.
func (c *Client) BackupPrepare(ctx context.Context, typ BackupType) (*BackupContext, error) {
	if err := checkBackupType(typ); err != nil {
		return nil, err
	}
	r, err := c.backup.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType(typ)})
	if err != nil {
		return nil, fromRPC(ctx, "backup prepare", err)
	}
	return &BackupContext{c: c, typ: typ, id: r.GetSessionId(), lease: time.Duration(r.GetLeaseSeconds()) * time.Second}, nil
}

func checkBackupType(typ BackupType) error {
	if typ != BackupFull && typ != BackupLogsOnly {
		return newError(condInvalidArg, "backup prepare", "backup type %d is neither BackupFull (1) nor BackupLogsOnly (2)", int(typ))
	}
	return nil
}

// SessionID returns the server's id for the session.
func (b *BackupContext) SessionID() string { return b.id }

// Type returns the session's backup type.
func (b *BackupContext) Type() BackupType { return b.typ }

// Lease returns the idle time after which the server aborts the session;
// every call renews it. Zero means the server did not say.
func (b *BackupContext) Lease() time.Duration { return b.lease }

// Client returns the connection the session uses. Use it for calls that
// belong with the backup, such as BackupKey; do not Close it while the
// session runs.
func (b *BackupContext) Client() *Client { return b.c }

// active fails with ErrInvalidBackupSequence once the session has ended,
// and with ErrInvalidArg for a nil or zero BackupContext.
func (b *BackupContext) active(op string) error {
	if b == nil || b.c == nil {
		return newError(condInvalidArg, op, "no backup session: use the BackupContext BackupPrepare returned")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return newError(condSequence, op, "backup session %s has ended", b.id)
	}
	return nil
}

func (b *BackupContext) session() *certsrvv1.SessionRequest {
	return &certsrvv1.SessionRequest{SessionId: b.id}
}

// list runs one of the file-list RPCs.
func (b *BackupContext) list(ctx context.Context, op string, call func(context.Context, *certsrvv1.SessionRequest) (*certsrvv1.FileList, error)) ([]File, error) {
	if err := b.active(op); err != nil {
		return nil, err
	}
	l, err := call(ctx, b.session())
	if err != nil {
		return nil, fromRPC(ctx, op, err)
	}
	return filesFromWire(op, l)
}

// DatabaseLocations returns the restore map
// (CertSrvRestoreGetDatabaseLocations): the database file (FileDatabase),
// the log directory (FileLogDirectory) and the checkpoint directory
// (FileCheckpointDirectory), as absolute paths on the server. A backup
// program saves it with the backup set; a restore puts files back by it.
func (b *BackupContext) DatabaseLocations(ctx context.Context) ([]File, error) {
	return b.list(ctx, "get database locations", func(ctx context.Context, r *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
		return b.c.backup.GetDatabaseLocations(ctx, r)
	})
}

// DatabaseNames lists the database files to copy
// (CertSrvBackupGetDatabaseNames): for a full backup one FileDatabase entry,
// the snapshot the server took at prepare time; for a logs-only backup
// none. Open each with OpenFile and read it to its end.
func (b *BackupContext) DatabaseNames(ctx context.Context) ([]File, error) {
	return b.list(ctx, "get database names", func(ctx context.Context, r *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
		return b.c.backup.GetDatabaseNames(ctx, r)
	})
}

// BackupLogs rolls the server's current log generation and lists the log
// generations to copy (CertSrvBackupGetBackupLogs), each a closed FileLog
// file. Open each with OpenFile and read it to its end.
func (b *BackupContext) BackupLogs(ctx context.Context) ([]File, error) {
	return b.list(ctx, "get backup logs", func(ctx context.Context, r *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
		return b.c.backup.GetBackupLogs(ctx, r)
	})
}

// DynamicFiles lists the non-database files to save "by other means"
// (CertSrvBackupGetDynamicFileList): the CA certificates and CRLs the server
// publishes, each a FileDynamic entry with its HTTP URL. They cannot be
// opened with OpenFile; fetch them from File.URL.
func (b *BackupContext) DynamicFiles(ctx context.Context) ([]File, error) {
	return b.list(ctx, "get dynamic files", func(ctx context.Context, r *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
		return b.c.backup.GetDynamicFiles(ctx, r)
	})
}

// TruncateResult reports what TruncateLogs deleted.
type TruncateResult struct {
	// Deleted is the number of log generations deleted; 0 is a normal
	// answer (see Reason), not an error.
	Deleted int
	// FirstGeneration and LastGeneration are the range deleted; both 0 when
	// Deleted is 0.
	FirstGeneration, LastGeneration uint32
	// Reason says why nothing, or nothing more, was deleted (for example
	// that the remaining generations are at or after the checkpoint).
	Reason string
}

// TruncateLogs deletes the log generations this session has copied and the
// server no longer needs (CertSrvBackupTruncateLogs), and reports exactly
// what it deleted. The server refuses it with ErrInvalidBackupSequence
// unless every file the session listed was read to its end and closed
// (BackupFile.Close tells the server how much was read); call it only
// after storing those files safely, because the deleted generations then
// exist only in the backup. The server records the backup before it
// deletes anything, so the backup stays recorded even if the session is
// aborted afterwards: no generation is ever deleted that no recorded
// backup copied.
func (b *BackupContext) TruncateLogs(ctx context.Context) (TruncateResult, error) {
	const op = "truncate logs"
	if err := b.active(op); err != nil {
		return TruncateResult{}, err
	}
	r, err := b.c.backup.TruncateLogs(ctx, b.session())
	if err != nil {
		return TruncateResult{}, fromRPC(ctx, op, err)
	}
	return TruncateResult{
		Deleted:         int(r.GetDeleted()),
		FirstGeneration: r.GetFirstGeneration(),
		LastGeneration:  r.GetLastGeneration(),
		Reason:          r.GetReason(),
	}, nil
}

// EndInfo is the server's answer to End or Abort.
type EndInfo struct {
	// Recorded reports whether the server recorded the backup as complete
	// (in its log and checkpoint). It is false after Abort, unless
	// TruncateLogs had already recorded it.
	Recorded bool
	// FirstGeneration and LastGeneration are the log generations the
	// recorded backup covers.
	FirstGeneration, LastGeneration uint32
	// FirstLSN and LastLSN are the log positions the recorded backup
	// covers.
	FirstLSN, LastLSN uint64
}

// End ends the session normally (CertSrvBackupEnd). The server records
// the backup (its type, generations and LSNs) only if every listed file was
// read to its end; otherwise it records nothing and End returns its error
// (ErrInvalidBackupSequence). Recorded and EndInfo report the outcome. End
// closes an open BackupFile first. The session is over after End whatever
// it returns, and a BackupContext made by the package-level BackupPrepare
// releases its connection. A second End fails with
// ErrInvalidBackupSequence.
func (b *BackupContext) End(ctx context.Context) error {
	return b.finish(ctx, false)
}

// Abort ends the session without recording a backup (CertSrvBackupEnd
// after a failure). Files already copied stay valid on the medium but are
// not a recorded backup, so the server keeps the log generations they hold.
// After TruncateLogs the backup was recorded already and stays so (its
// logs are gone). Abort after End or Abort returns nil and does nothing.
func (b *BackupContext) Abort(ctx context.Context) error {
	if b == nil || b.c == nil {
		return nil // nothing was prepared: nothing to abort
	}
	b.mu.Lock()
	ended := b.ended
	b.mu.Unlock()
	if ended {
		return nil
	}
	return b.finish(ctx, true)
}

func (b *BackupContext) finish(ctx context.Context, abort bool) error {
	op := "backup end"
	if abort {
		op = "backup abort"
	}
	if b == nil || b.c == nil {
		return b.active(op)
	}
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return newError(condSequence, op, "backup session %s has ended", b.id)
	}
	b.ended = true
	open := b.open
	b.mu.Unlock()
	if open != nil {
		_ = open.Close()
	}
	r, err := b.c.backup.End(ctx, &certsrvv1.EndRequest{SessionId: b.id, Abort: abort})
	if err == nil {
		b.mu.Lock()
		b.end = EndInfo{
			Recorded:        r.GetRecorded(),
			FirstGeneration: r.GetFirstGeneration(),
			LastGeneration:  r.GetLastGeneration(),
			FirstLSN:        r.GetFirstLsn(),
			LastLSN:         r.GetLastLsn(),
		}
		b.mu.Unlock()
	}
	if b.owned {
		_ = b.c.Close()
	}
	return fromRPC(ctx, op, err)
}

// BackupFree: certbcli.h's CertSrvBackupFree releases the lists that
// DatabaseNames, BackupLogs, DynamicFiles and DatabaseLocations allocate in
// C. In Go those lists are slices owned by the caller and reclaimed by the
// garbage collector, so there is no BackupFree; release the session with
// End, Abort or Close instead.

// Recorded reports whether the server recorded this backup as complete,
// as End or Abort reported it. It is false before End, after an End that
// failed, and after Abort unless TruncateLogs had recorded the backup.
func (b *BackupContext) Recorded() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.end.Recorded
}

// EndInfo returns the server's answer to End or Abort; the zero EndInfo
// before either, or when it failed.
func (b *BackupContext) EndInfo() EndInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.end
}

// Close ends a session that is still running with a best-effort Abort
// (bounded by 30 seconds), then releases the connection if the
// BackupContext owns it. It returns nil when called again.
func (b *BackupContext) Close() error {
	if b == nil || b.c == nil {
		return nil
	}
	b.mu.Lock()
	ended := b.ended
	b.mu.Unlock()
	if !ended {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = b.Abort(ctx)
	}
	if b.owned {
		return b.c.Close()
	}
	return nil
}

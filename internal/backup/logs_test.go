package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// TestTruncateRefusedAfterPartialRead: a log read only partly blocks
// TruncateLogs (naming it) and End (recording nothing); no generation is
// deleted.
func TestTruncateRefusedAfterPartialRead(t *testing.T) {
	db := newDB(t, func(o *store.Options) { o.SegmentSize = 1 << 20 })
	write(t, db, 50)
	m, _ := newManager(t, db)
	ctx := context.Background()
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := m.DatabaseNames(ctx, op1, id)
	fetch(t, m, op1, id, names[0].Name)
	write(t, db, 300) // about 300 KiB after S, so the log spans several chunks
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	last := logs[len(logs)-1]
	if last.Size <= 2*MinChunk {
		t.Fatalf("last log has %d bytes; the test needs more than two chunks", last.Size)
	}
	for _, f := range logs[:len(logs)-1] {
		fetch(t, m, op1, id, f.Name)
	}
	if _, err := m.OpenFile(ctx, op1, id, last.Name); err != nil {
		t.Fatal(err)
	}
	stopped := errors.New("stop after one chunk")
	err = m.Read(ctx, op1, id, MinChunk, func(off int64, p []byte) error {
		if off > 0 {
			return stopped
		}
		return nil
	})
	if !errors.Is(err, stopped) {
		t.Fatalf("Read: %v", err)
	}
	if err := m.CloseFile(ctx, op1, id, MinChunk); err != nil {
		t.Fatal(err)
	}
	before := logFiles(t, db.LogDir())
	_, err = m.TruncateLogs(ctx, op1, id)
	e := wantCode(t, err, apierr.BackupSequence, "TruncateLogs after a partial read")
	if !strings.Contains(e.Msg, last.Name) {
		t.Fatalf("message %q does not name %s", e.Msg, last.Name)
	}
	if after := logFiles(t, db.LogDir()); len(after) != len(before) {
		t.Fatalf("refused truncation changed the log directory: %d files, then %d", len(before), len(after))
	}
	_, err = m.End(ctx, op1, id, false)
	wantCode(t, err, apierr.BackupSequence, "End after a partial read")
	if full, _ := db.LastBackups(); full != nil {
		t.Fatalf("recorded %+v", full)
	}
}

// TestTruncateDeletesExactlyWhatItReports: after a complete full backup,
// TruncateLogs deletes exactly the generations it reports, all of them
// copied or older than the snapshot, never the checkpoint generation.
func TestTruncateDeletesExactlyWhatItReports(t *testing.T) {
	db := newDB(t)
	write(t, db, 400)
	m, _ := newManager(t, db)
	ctx := context.Background()
	stop := writer(t, db)
	c := backupFiles(t, m, op1, Full)
	stop()
	sealed := uint32(0)
	gen, _ := wal.ParseFileName("ca", filepath.Base(c.logs[len(c.logs)-1].Name))
	sealed = gen
	before := logFiles(t, db.LogDir())
	res, err := m.TruncateLogs(ctx, op1, c.id)
	if err != nil {
		t.Fatal(err)
	}
	after := logFiles(t, db.LogDir())
	gone := map[string]bool{}
	for name := range before {
		if !after[name] {
			gone[name] = true
		}
	}
	if len(res.Deleted) == 0 || len(gone) != len(res.Deleted) {
		t.Fatalf("TruncateLogs reported %v (%q); %d files disappeared", res.Deleted, res.Reason, len(gone))
	}
	ck := db.CheckpointInfo()
	for _, g := range res.Deleted {
		if !gone[wal.FileName("ca", g)] {
			t.Fatalf("generation %d reported deleted but %v are gone", g, gone)
		}
		if g > sealed || g >= ck.Gen {
			t.Fatalf("generation %d deleted: after the backup's last (%d) or not below the checkpoint generation %d", g, sealed, ck.Gen)
		}
	}
	if !after[wal.FileName("ca", ck.Gen)] {
		t.Fatalf("checkpoint generation %d is gone", ck.Gen)
	}
	_, err = m.TruncateLogs(ctx, op1, c.id)
	wantCode(t, err, apierr.BackupSequence, "second TruncateLogs")
	r, err := m.End(ctx, op1, c.id, false)
	if err != nil || !r.Recorded {
		t.Fatalf("End after truncation: %+v, %v", r, err)
	}
	// The next incremental continues after the truncated backup.
	write(t, db, 100)
	id, err := m.Prepare(ctx, op1, LogsOnly)
	if err != nil {
		t.Fatalf("logs-only after a truncating full backup: %v", err)
	}
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := wal.ParseFileName("ca", filepath.Base(logs[0].Name)); g != sealed+1 {
		t.Fatalf("incremental starts at generation %d, want %d", g, sealed+1)
	}
}

// TestTruncateNothingSaysWhy: with circular logging the checkpoint has
// already deleted the copied generations, so TruncateLogs deletes nothing
// and says why.
func TestTruncateNothingSaysWhy(t *testing.T) {
	db := newDB(t, func(o *store.Options) { o.CircularLogging = true })
	write(t, db, 300)
	m, _ := newManager(t, db)
	c := backupFiles(t, m, op1, Full)
	before := logFiles(t, db.LogDir())
	res, err := m.TruncateLogs(context.Background(), op1, c.id)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != 0 || res.Reason == "" {
		t.Fatalf("TruncateLogs = %+v; want nothing deleted with a reason", res)
	}
	for name := range logFiles(t, db.LogDir()) {
		if !before[name] {
			t.Fatalf("new log file %s", name)
		}
	}
}

// TestLogsOnlyPreconditions: logs-only Prepare without a full backup, with
// circular logging, after a restore, and with a gap each fail with their
// own error.
func TestLogsOnlyPreconditions(t *testing.T) {
	ctx := context.Background()
	t.Run("no full backup", func(t *testing.T) {
		db := newDB(t)
		m, _ := newManager(t, db)
		_, err := m.Prepare(ctx, op1, LogsOnly)
		wantCode(t, err, apierr.FullBackupNotTaken, "logs-only without a full backup")
	})
	t.Run("circular logging", func(t *testing.T) {
		db := newDB(t, func(o *store.Options) { o.CircularLogging = true })
		write(t, db, 50)
		m, _ := newManager(t, db)
		c := backupFiles(t, m, op1, Full)
		if _, err := m.End(ctx, op1, c.id, false); err != nil {
			t.Fatal(err)
		}
		_, err := m.Prepare(ctx, op1, LogsOnly)
		wantCode(t, err, apierr.CircularLogging, "logs-only with circular logging")
	})
	t.Run("restored", func(t *testing.T) {
		db := newDB(t)
		write(t, db, 50)
		m, _ := newManager(t, db)
		c := backupFiles(t, m, op1, Full)
		if _, err := m.End(ctx, op1, c.id, false); err != nil {
			t.Fatal(err)
		}
		if err := db.SetNeedFullBackup(ctx, true); err != nil {
			t.Fatal(err)
		}
		_, err := m.Prepare(ctx, op1, LogsOnly)
		wantCode(t, err, apierr.IncrementalDisabled, "logs-only after a restore")
	})
	t.Run("gap", func(t *testing.T) {
		db := newDB(t)
		write(t, db, 50)
		m, _ := newManager(t, db)
		c := backupFiles(t, m, op1, Full)
		r, err := m.End(ctx, op1, c.id, false)
		if err != nil {
			t.Fatal(err)
		}
		write(t, db, 200)
		// A second full backup seals the current generation and is
		// aborted; then the engine deletes the generations after the
		// recorded backup by itself (a truncating backup records itself
		// first, so only a deletion outside a session leaves such a gap).
		c2 := backupFiles(t, m, op1, Full)
		if _, err := m.End(ctx, op1, c2.id, true); err != nil {
			t.Fatal(err)
		}
		sealed, _ := wal.ParseFileName("ca", filepath.Base(c2.logs[len(c2.logs)-1].Name))
		if res, err := db.TruncateLogs(ctx, sealed); err != nil || len(res.Deleted) == 0 {
			t.Fatalf("TruncateLogs = %+v, %v", res, err)
		}
		missing := filepath.Join(db.LogDir(), wal.FileName("ca", r.Record.LastGen+1))
		_, err = m.Prepare(ctx, op1, LogsOnly)
		e := wantCode(t, err, apierr.LogFileNotFound, "logs-only with a deleted generation")
		if !strings.Contains(e.Msg, missing) {
			t.Fatalf("message %q does not name %s", e.Msg, missing)
		}
	})
}

// flipByte inverts one byte of the file at path.
func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xFF
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptLogFailsBackup: a sealed generation damaged on disk before the
// backup fails it with LogFileCorrupt naming the file and offset; the
// session then allows only End, which records nothing.
func TestCorruptLogFailsBackup(t *testing.T) {
	db := newDB(t)
	write(t, db, 50)
	m, eng := newManager(t, db)
	ctx := context.Background()
	c := backupFiles(t, m, op1, Full)
	full, err := m.End(ctx, op1, c.id, false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, db, 250)
	bad := filepath.Join(db.LogDir(), wal.FileName("ca", full.Record.LastGen+2))
	const off = wal.HeaderSize + 200
	flipByte(t, bad, off)

	id, err := m.Prepare(ctx, op1, LogsOnly)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	var failure error
	for _, f := range logs {
		if f.Name != bad {
			fetch(t, m, op1, id, f.Name)
			continue
		}
		_, failure = m.OpenFile(ctx, op1, id, f.Name)
		break
	}
	e := wantCode(t, failure, apierr.LogFileCorrupt, "OpenFile of a corrupt log")
	if !strings.Contains(e.Msg, bad) {
		t.Fatalf("message %q does not name %s", e.Msg, bad)
	}
	var le *LogError
	var ce *wal.CorruptError
	if !errors.As(failure, &le) || le.Path != bad || le.Offset < wal.HeaderSize || !errors.As(failure, &ce) || !errors.Is(failure, wal.ErrCorrupt) {
		t.Fatalf("error %v does not carry the file, offset and wal.CorruptError", failure)
	}
	_, err = m.OpenFile(ctx, op1, id, logs[len(logs)-1].Name)
	wantCode(t, err, apierr.BackupSequence, "OpenFile after the failure")
	_, err = m.TruncateLogs(ctx, op1, id)
	wantCode(t, err, apierr.BackupSequence, "TruncateLogs after the failure")
	_, err = m.End(ctx, op1, id, false)
	wantCode(t, err, apierr.LogFileCorrupt, "End of a failed backup")
	if _, inc := db.LastBackups(); inc != nil {
		t.Fatalf("a failed backup recorded %+v", inc)
	}
	if n := eng.open(); n != 0 {
		t.Fatalf("%d snapshots pinned", n)
	}
	if _, err := m.Prepare(ctx, op1, Full); err != nil {
		t.Fatalf("Prepare after the failed session: %v", err)
	}
}

// TestShortenedLogFailsBackup: a generation cut back to its header verifies
// on its own, but not against what the log wrote.
func TestShortenedLogFailsBackup(t *testing.T) {
	db := newDB(t)
	write(t, db, 100)
	m, _ := newManager(t, db)
	ctx := context.Background()
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	write(t, db, 100)
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	last := logs[len(logs)-1].Name
	if err := os.Truncate(last, wal.HeaderSize); err != nil {
		t.Fatal(err)
	}
	_, err = m.OpenFile(ctx, op1, id, last)
	e := wantCode(t, err, apierr.LogFileCorrupt, "OpenFile of a shortened log")
	if !strings.Contains(e.Msg, last) {
		t.Fatalf("message %q does not name %s", e.Msg, last)
	}
}

// TestLogChangedWhileServed: bytes that change between the read and the
// verification are never served.
func TestLogChangedWhileServed(t *testing.T) {
	db := newDB(t)
	write(t, db, 100)
	m, _ := newManager(t, db)
	ctx := context.Background()
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	write(t, db, 100)
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	target := logs[0].Name
	verifyGeneration = func(path string, prev *wal.GenInfo) (wal.GenInfo, error) {
		info, err := wal.VerifyGeneration(path, prev)
		if path == target {
			flipByte(t, path, wal.HeaderSize+10)
		}
		return info, err
	}
	defer func() { verifyGeneration = wal.VerifyGeneration }()
	_, err = m.OpenFile(ctx, op1, id, target)
	wantCode(t, err, apierr.LogFileCorrupt, "OpenFile of a log changed while verified")
	if !errors.Is(err, ErrChangedWhileServed) {
		t.Fatalf("error %v does not match ErrChangedWhileServed", err)
	}
}

// TestFullBackupWithCircularLogging: with circular logging on, checkpoints
// taken while a full backup runs (before and after BackupLogs, with new
// records and rolls in between) never delete a generation the backup
// needs: every listed log is served and verifies, and once the session ends
// the next checkpoint deletes them again.
func TestFullBackupWithCircularLogging(t *testing.T) {
	ctx := context.Background()
	db := newDB(t, func(o *store.Options) { o.CircularLogging = true })
	write(t, db, 200)
	m, _ := newManager(t, db)
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		write(t, db, 150)
		if _, err := db.RollLog(); err != nil {
			t.Fatal(err)
		}
		if err := db.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	names, err := m.DatabaseNames(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	fetch(t, m, op1, id, names[0].Name)
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) < 3 {
		t.Fatalf("%d logs listed, want the generations written during the backup", len(logs))
	}
	write(t, db, 100)
	if err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range logs {
		fetch(t, m, op1, id, f.Name) // fails the test if a listed log was deleted
	}
	if _, err := m.End(ctx, op1, id, false); err != nil {
		t.Fatalf("End: %v", err)
	}
	write(t, db, 10)
	if _, err := db.RollLog(); err != nil {
		t.Fatal(err)
	}
	if err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	left := logFiles(t, db.LogDir())
	for _, f := range logs {
		if left[filepath.Base(f.Name)] {
			t.Fatalf("%s still present after the session ended and a checkpoint ran with circular logging", f.Name)
		}
	}
}

// A store call that fails for a full disk is ERROR_DISK_FULL to the
// backup client; any other engine failure stays E_UNEXPECTED.
func TestEngineFailureKeepsDiskFull(t *testing.T) {
	full := storeError(fmt.Errorf("snapshot: %w", store.ErrStalled))
	if got := engineError(full, "snapshot database: %w", full); apierr.Of(got) != apierr.DiskFull || !errors.Is(got, store.ErrStalled) {
		t.Errorf("disk full: %v (%v)", got, apierr.Of(got))
	}
	other := storeError(errors.New("I/O error"))
	if got := engineError(other, "snapshot database: %w", other); apierr.Of(got) != apierr.Unexpected {
		t.Errorf("other failure: %v (%v)", got, apierr.Of(got))
	}
}

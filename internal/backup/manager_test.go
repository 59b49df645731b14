package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// TestFullBackupServesSnapshotAndLogs runs a full backup while a writer
// keeps committing: the database served is a valid SQLite file whose
// applied_lsn is S, the logs start with the generation holding S+1, every
// log is served byte for byte as on disk and verifies, and End records the
// generation and LSN ranges.
func TestFullBackupServesSnapshotAndLogs(t *testing.T) {
	db := newDB(t)
	write(t, db, 200)
	m, eng := newManager(t, db)
	ctx := context.Background()
	stop := writer(t, db)
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	c := copied{id: id, data: map[string][]byte{}}
	names, err := m.DatabaseNames(ctx, op1, id)
	if err != nil || len(names) != 1 || names[0].Tag != TagDatabase {
		t.Fatalf("DatabaseNames = %v, %v", names, err)
	}
	c.db = fetch(t, m, op1, id, names[0].Name)
	integrity, applied, requests := sqliteMeta(t, c.db)
	for db.LastLSN() <= applied+1 {
		time.Sleep(time.Millisecond) // let the writer get past S
	}
	if c.logs, err = m.BackupLogs(ctx, op1, id); err != nil {
		t.Fatal(err)
	}
	for _, f := range c.logs {
		c.data[f.Name] = fetch(t, m, op1, id, f.Name)
	}
	stop()
	if integrity != "ok" {
		t.Fatalf("snapshot integrity_check: %s", integrity)
	}
	if requests < 200 {
		t.Fatalf("snapshot holds %d requests, at least 200 were written before it", requests)
	}
	gens := map[uint32]wal.GenInfo{}
	for _, g := range db.Generations() {
		gens[g.Gen] = g
	}
	var prev *wal.GenInfo
	var listed []wal.GenInfo
	for i, f := range c.logs {
		if f.Tag != TagLog || !filepath.IsAbs(f.Name) {
			t.Fatalf("log %d listed as tag %#x name %q", i, f.Tag, f.Name)
		}
		disk, err := os.ReadFile(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		if string(disk) != string(c.data[f.Name]) || int64(len(disk)) != f.Size {
			t.Fatalf("%s: served %d bytes, listed %d, file has %d (or different bytes)", f.Name, len(c.data[f.Name]), f.Size, len(disk))
		}
		info, err := wal.VerifyGeneration(f.Name, prev)
		if err != nil {
			t.Fatalf("served log does not verify: %v", err)
		}
		listed = append(listed, info)
		prev = &info
	}
	first := listed[0]
	if first.BaseLSN > applied+1 || first.LastLSN < applied+1 {
		t.Fatalf("first listed generation %d holds LSNs %d..%d, not S+1 = %d", first.Gen, first.BaseLSN, first.LastLSN, applied+1)
	}
	if _, ok := gens[first.Gen-1]; ok && gens[first.Gen-1].LastLSN > applied {
		t.Fatalf("generation %d before the first listed holds LSN %d after S = %d", first.Gen-1, gens[first.Gen-1].LastLSN, applied)
	}
	res, err := m.End(ctx, op1, c.id, false)
	if err != nil {
		t.Fatalf("End: %v", err)
	}
	last := listed[len(listed)-1]
	want := Record{Type: Full, FirstGen: first.Gen, LastGen: last.Gen, FirstLSN: applied, LastLSN: last.LastLSN}
	got := res.Record
	got.Time = time.Time{}
	if !res.Recorded || got != want {
		t.Fatalf("End recorded %v %+v, want %+v", res.Recorded, got, want)
	}
	full, inc := db.LastBackups()
	if full == nil || inc != nil || full.FirstGen != want.FirstGen || full.LastGen != want.LastGen ||
		full.FirstLSN != want.FirstLSN || full.LastLSN != want.LastLSN || full.Type != store.BackupFull {
		t.Fatalf("store's last backups: full %+v, incremental %+v; want full %+v", full, inc, want)
	}
	if ck := db.CheckpointInfo(); ck.LastFull == nil || ck.LastFull.LastGen != want.LastGen {
		t.Fatalf("checkpoint's last full backup %+v, want generations through %d", ck.LastFull, want.LastGen)
	}
	if n := eng.open(); n != 0 {
		t.Fatalf("%d snapshots still pinned after End", n)
	}
}

// TestFullBackupWithoutLaterRecordsListsSealedGeneration: with no record
// after the snapshot, the logs are exactly the generation BackupLogs sealed.
func TestFullBackupWithoutLaterRecordsListsSealedGeneration(t *testing.T) {
	db := newDB(t)
	write(t, db, 150)
	m, _ := newManager(t, db)
	cur := db.Generations()[len(db.Generations())-1].Gen
	c := backupFiles(t, m, op1, Full)
	if len(c.logs) != 1 || c.logs[0].Name != filepath.Join(db.LogDir(), wal.FileName("ca", cur)) {
		t.Fatalf("listed %+v, want only generation %d", c.logs, cur)
	}
	logEnd := db.LastLSN()
	res, err := m.End(context.Background(), op1, c.id, false)
	if err != nil {
		t.Fatal(err)
	}
	_, applied, _ := sqliteMeta(t, c.db)
	if r := res.Record; r.FirstGen != cur || r.LastGen != cur || r.FirstLSN != applied || r.LastLSN != applied || applied != logEnd {
		t.Fatalf("recorded %+v; want generation %d and LSN %d..%d (log at %d)", r, cur, applied, applied, logEnd)
	}
}

// TestIncrementalListsGenerationsAfterLastBackup: a logs-only backup lists
// exactly the generations after the last recorded backup's last one, and
// the next one continues from there.
func TestIncrementalListsGenerationsAfterLastBackup(t *testing.T) {
	db := newDB(t)
	write(t, db, 100)
	m, _ := newManager(t, db)
	ctx := context.Background()
	c := backupFiles(t, m, op1, Full)
	full, err := m.End(ctx, op1, c.id, false)
	if err != nil {
		t.Fatal(err)
	}
	prevLast := full.Record
	for round := range 2 {
		write(t, db, 180)
		before := db.Generations()
		cur := before[len(before)-1].Gen
		id, err := m.Prepare(ctx, op1, LogsOnly)
		if err != nil {
			t.Fatalf("round %d: Prepare(logs-only): %v", round, err)
		}
		names, err := m.DatabaseNames(ctx, op1, id)
		if err != nil || len(names) != 0 {
			t.Fatalf("round %d: logs-only DatabaseNames = %v, %v; want none", round, names, err)
		}
		logs, err := m.BackupLogs(ctx, op1, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) != int(cur-prevLast.LastGen) {
			t.Fatalf("round %d: listed %d generations, want %d..%d", round, len(logs), prevLast.LastGen+1, cur)
		}
		for i, f := range logs {
			want := filepath.Join(db.LogDir(), wal.FileName("ca", prevLast.LastGen+1+uint32(i)))
			if f.Name != want {
				t.Fatalf("round %d: log %d is %s, want %s", round, i, f.Name, want)
			}
			fetch(t, m, op1, id, f.Name)
		}
		logEnd := db.LastLSN() // End appends the backup record after it
		res, err := m.End(ctx, op1, id, false)
		if err != nil {
			t.Fatalf("round %d: End: %v", round, err)
		}
		r := res.Record
		if r.Type != LogsOnly || r.FirstGen != prevLast.LastGen+1 || r.LastGen != cur ||
			r.FirstLSN != prevLast.LastLSN+1 || r.LastLSN != logEnd {
			t.Fatalf("round %d: recorded %+v; want generations %d..%d, LSNs %d..%d", round, r, prevLast.LastGen+1, cur, prevLast.LastLSN+1, logEnd)
		}
		if _, inc := db.LastBackups(); inc == nil || inc.LastGen != cur {
			t.Fatalf("round %d: store's last incremental %+v", round, inc)
		}
		prevLast = r
	}
	// Nothing written since but the last backup's own record: the next
	// logs-only backup lists the one generation holding it.
	id, err := m.Prepare(ctx, op1, LogsOnly)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil || len(logs) != 1 {
		t.Fatalf("empty incremental listed %v, %v", logs, err)
	}
	fetch(t, m, op1, id, logs[0].Name)
	res, err := m.End(ctx, op1, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Record; r.FirstLSN != prevLast.LastLSN+1 || r.LastLSN != prevLast.LastLSN+1 || r.FirstGen != prevLast.LastGen+1 || r.LastGen != r.FirstGen {
		t.Fatalf("empty incremental recorded %+v after %+v", r, prevLast)
	}
}

// TestOpenFileRefusesWhatWasNotListed covers every name OpenFile must
// refuse, each with its own code and message.
func TestOpenFileRefusesWhatWasNotListed(t *testing.T) {
	db := newDB(t)
	write(t, db, 200)
	pub := filepath.Join(t.TempDir(), "publish")
	crl := DynamicFile{Name: "Backup Test CA.crl", Path: filepath.Join(pub, "Backup Test CA.crl"),
		URL: "http://127.0.0.1:8080/CertEnroll/Backup%20Test%20CA.crl", Size: 300}
	m, _ := newManager(t, db, func(o *Options) {
		o.DynamicFiles = func() []DynamicFile { return []DynamicFile{crl} }
	})
	ctx := context.Background()
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	dbPath, _ := filepath.Abs(db.DBPath())
	_, err = m.OpenFile(ctx, op1, id, dbPath)
	wantCode(t, err, apierr.NotFound, "database before GetDatabaseNames")
	if _, err := m.DatabaseNames(ctx, op1, id); err != nil {
		t.Fatal(err)
	}
	oldGen := filepath.Join(db.LogDir(), wal.FileName("ca", 1))
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range logs {
		if l.Name == oldGen {
			t.Fatal("generation 1 was listed; the test needs it unlisted")
		}
	}
	cases := []struct {
		name string
		code apierr.Code
		msg  string
	}{
		{"/etc/passwd", apierr.NotFound, "not listed"},
		{"../../etc/passwd", apierr.InvalidArg, "not an absolute path"},
		{"db/Backup Test CA.db", apierr.InvalidArg, "not an absolute path"},
		{filepath.Dir(dbPath) + "/../db/Backup Test CA.db", apierr.InvalidArg, "not a clean path"},
		{logs[0].Name + "/..", apierr.InvalidArg, "not a clean path"},
		{filepath.Dir(dbPath) + "//Backup Test CA.db", apierr.InvalidArg, "not a clean path"},
		{"", apierr.InvalidArg, "empty"},
		{dbPath + "\x00", apierr.InvalidArg, "NUL"},
		{oldGen, apierr.NotFound, "not listed"},
		{db.LogDir(), apierr.NotFound, "not listed"},
		{filepath.Join(db.SysDir(), "ca.chk"), apierr.NotFound, "not listed"},
		{crl.Name, apierr.InvalidArg, crl.URL},
		{crl.Path, apierr.InvalidArg, crl.URL},
		{strings.ToUpper(logs[0].Name), apierr.NotFound, "not listed"},
	}
	for _, c := range cases {
		_, err := m.OpenFile(ctx, op1, id, c.name)
		e := wantCode(t, err, c.code, "OpenFile("+c.name+")")
		if !strings.Contains(e.Msg, c.msg) {
			t.Errorf("OpenFile(%q): message %q does not say %q", c.name, e.Msg, c.msg)
		}
	}
	// None of the refusals opened anything: a listed name still opens.
	if _, err := m.OpenFile(ctx, op1, id, logs[0].Name); err != nil {
		t.Fatalf("OpenFile of a listed log after refusals: %v", err)
	}
}

// TestOpenFileRefusesNamesListedByAnotherSession: names a previous session
// listed are not openable in the next one.
func TestOpenFileRefusesNamesListedByAnotherSession(t *testing.T) {
	db := newDB(t)
	write(t, db, 100)
	m, _ := newManager(t, db)
	ctx := context.Background()
	first := backupFiles(t, m, op1, Full)
	if _, err := m.End(ctx, op1, first.id, false); err != nil {
		t.Fatal(err)
	}
	write(t, db, 100)
	id, err := m.Prepare(ctx, op1, LogsOnly)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.BackupLogs(ctx, op1, id); err != nil {
		t.Fatal(err)
	}
	for name := range first.data {
		_, err := m.OpenFile(ctx, op1, id, name)
		wantCode(t, err, apierr.NotFound, "OpenFile of a name the previous session listed: "+name)
	}
}

// TestOpenFileRefusesSymlinks: a listed log or database path replaced by a
// symbolic link is refused, never followed.
func TestOpenFileRefusesSymlinks(t *testing.T) {
	db := newDB(t)
	write(t, db, 200)
	m, _ := newManager(t, db)
	ctx := context.Background()
	id, names := prepareFull(t, m, op1)
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{logs[0].Name, names[0].Name} {
		moved := name + ".moved"
		if err := os.Rename(name, moved); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(moved, name); err != nil {
			t.Fatal(err)
		}
		_, err := m.OpenFile(ctx, op1, id, name)
		e := wantCode(t, err, apierr.AccessDenied, "OpenFile of a listed path that is now a symlink")
		if !strings.Contains(e.Msg, "symbolic link") {
			t.Errorf("message %q does not mention the link", e.Msg)
		}
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(moved, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.OpenFile(ctx, op1, id, logs[0].Name); err != nil {
		t.Fatalf("OpenFile after the link was removed: %v", err)
	}
}

// TestCallsOutOfOrder: every call in the wrong state gets the invalid
// backup sequence error (or its specific code), and changes nothing.
func TestCallsOutOfOrder(t *testing.T) {
	db := newDB(t)
	write(t, db, 100)
	m, eng := newManager(t, db)
	ctx := context.Background()

	_, err := m.Prepare(ctx, op1, Type(0))
	wantCode(t, err, apierr.InvalidArg, "Prepare of type 0")
	_, err = m.Prepare(ctx, op1, Type(3))
	wantCode(t, err, apierr.InvalidArg, "Prepare of type 3")
	_, err = m.Prepare(ctx, "", Full)
	wantCode(t, err, apierr.AccessDenied, "Prepare without a principal")
	_, err = m.DatabaseNames(ctx, op1, "")
	wantCode(t, err, apierr.BackupSequence, "DatabaseNames without a session")

	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("session id %q is not 32 lower-case hex digits", id)
	}
	_, err = m.Prepare(ctx, op1, Full)
	wantCode(t, err, apierr.BackupInProgress, "second Prepare by the same principal")
	_, err = m.Prepare(ctx, op2, LogsOnly)
	wantCode(t, err, apierr.BackupInProgress, "second Prepare by another principal")

	_, err = m.DatabaseNames(ctx, op1, strings.Repeat("0", 32))
	wantCode(t, err, apierr.BackupSequence, "unknown session id")
	_, err = m.DatabaseNames(ctx, op2, id)
	wantCode(t, err, apierr.AccessDenied, "another principal's session")
	_, err = m.End(ctx, op2, id, true)
	wantCode(t, err, apierr.AccessDenied, "another principal aborting the session")

	_, err = read(t, m, op1, id, 0)
	wantCode(t, err, apierr.BackupSequence, "Read before OpenFile")
	wantCode(t, m.CloseFile(ctx, op1, id, 0), apierr.BackupSequence, "CloseFile without an open file")
	_, err = m.TruncateLogs(ctx, op1, id)
	wantCode(t, err, apierr.BackupSequence, "TruncateLogs before anything was read")

	names, err := m.DatabaseNames(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	fetch(t, m, op1, id, names[0].Name)
	_, err = m.TruncateLogs(ctx, op1, id)
	e := wantCode(t, err, apierr.BackupSequence, "TruncateLogs before BackupLogs")
	if !strings.Contains(e.Msg, "GetBackupLogs") {
		t.Errorf("message %q does not say the logs were not listed", e.Msg)
	}
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.BackupLogs(ctx, op1, id)
	wantCode(t, err, apierr.BackupSequence, "second BackupLogs")

	if _, err := m.OpenFile(ctx, op1, id, logs[0].Name); err != nil {
		t.Fatal(err)
	}
	_, err = m.OpenFile(ctx, op1, id, names[0].Name)
	wantCode(t, err, apierr.AlreadyOpen, "second OpenFile before CloseFile")
	wantCode(t, m.CloseFile(ctx, op1, id, -1), apierr.InvalidArg, "CloseFile with a negative count")
	if err := m.CloseFile(ctx, op1, id, 0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, m.CloseFile(ctx, op1, id, 0), apierr.BackupSequence, "second CloseFile")

	if _, err := m.End(ctx, op1, id, true); err != nil {
		t.Fatalf("End(abort): %v", err)
	}
	_, err = m.DatabaseNames(ctx, op1, id)
	wantCode(t, err, apierr.BackupSequence, "call after End")
	_, err = m.End(ctx, op1, id, false)
	wantCode(t, err, apierr.BackupSequence, "second End")
	if full, _ := db.LastBackups(); full != nil {
		t.Fatalf("an aborted session recorded %+v", full)
	}
	if n := eng.open(); n != 0 {
		t.Fatalf("%d snapshots pinned after End(abort)", n)
	}
	if _, err := m.Prepare(ctx, op2, Full); err != nil {
		t.Fatalf("Prepare after the session ended: %v", err)
	}
}

// TestLeaseExpiryAbortsSession: an idle session is aborted when its lease
// runs out: nothing recorded, snapshot released, the next Prepare works.
func TestLeaseExpiryAbortsSession(t *testing.T) {
	db := newDB(t)
	write(t, db, 50)
	clock := newFakeClock()
	m, eng := newManager(t, db, func(o *Options) { o.Lease = time.Minute; o.Now = clock.Now })
	ctx := context.Background()
	c := backupFiles(t, m, op1, Full)
	clock.Advance(50 * time.Second)
	m.expire()
	if _, err := m.DatabaseLocations(ctx, op1, c.id); err != nil {
		t.Fatalf("session ended before its lease: %v", err)
	}
	clock.Advance(50 * time.Second) // 50 s since the last call
	m.expire()
	if _, err := m.DatabaseLocations(ctx, op1, c.id); err != nil {
		t.Fatalf("a call did not renew the lease: %v", err)
	}
	clock.Advance(61 * time.Second)
	m.expire()
	_, err := m.End(ctx, op1, c.id, false)
	wantCode(t, err, apierr.BackupSequence, "End after the lease expired")
	if full, _ := db.LastBackups(); full != nil {
		t.Fatalf("an expired session recorded %+v", full)
	}
	if n := eng.open(); n != 0 {
		t.Fatalf("%d snapshots pinned after the lease expired", n)
	}
	if _, err := m.Prepare(ctx, op2, Full); err != nil {
		t.Fatalf("Prepare after expiry: %v", err)
	}
}

// TestLeaseExpiresDuringStalledRead: a stream that stops making progress
// does not keep the session: the janitor (real time, short lease) ends it,
// and the old snapshot is released when the stalled read returns, after
// which the next Prepare works (until then it is told to retry).
func TestLeaseExpiresDuringStalledRead(t *testing.T) {
	db := newDB(t)
	write(t, db, 300)
	m, eng := newManager(t, db, func(o *Options) { o.Lease = 100 * time.Millisecond })
	ctx := context.Background()
	id, names := prepareFull(t, m, op1)
	if _, err := m.OpenFile(ctx, op1, id, names[0].Name); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		readDone <- m.Read(ctx, op1, id, MinChunk, func(off int64, p []byte) error {
			if off == 0 {
				return nil
			}
			<-release // the client stopped reading
			return nil
		})
	}()
	// The store pins one snapshot at a time: until the stalled read
	// returns, a new FULL session is refused as "backup in progress", even
	// after the stalled session's lease has expired.
	time.Sleep(3 * m.Lease())
	for i := 0; i < 3; i++ {
		_, err := m.Prepare(ctx, op2, Full)
		wantCode(t, err, apierr.BackupInProgress, "Prepare while the stalled read holds the snapshot")
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	err := <-readDone
	wantCode(t, err, apierr.BackupSequence, "the stalled read after its session ended")
	if n := eng.open(); n != 0 {
		t.Fatalf("%d snapshots pinned after the stalled read returned, want 0", n)
	}
	id2, err := m.Prepare(ctx, op2, Full)
	if err != nil {
		t.Fatalf("Prepare after the stalled read returned: %v", err)
	}
	if n := eng.open(); n != 1 {
		t.Fatalf("%d snapshots pinned, want 1 (the new session's)", n)
	}
	if _, err := m.End(ctx, op2, id2, true); err != nil {
		t.Fatal(err)
	}
}

// TestEndIncompleteRecordsNothing: End(normal) with a listed file unread
// records nothing, names the file, and frees the session.
func TestEndIncompleteRecordsNothing(t *testing.T) {
	db := newDB(t)
	write(t, db, 200)
	m, eng := newManager(t, db)
	ctx := context.Background()
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := m.DatabaseNames(ctx, op1, id)
	fetch(t, m, op1, id, names[0].Name)
	write(t, db, 100)
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil || len(logs) < 2 {
		t.Fatalf("BackupLogs: %v, %v (want at least 2)", logs, err)
	}
	for _, f := range logs[:len(logs)-1] {
		fetch(t, m, op1, id, f.Name)
	}
	before := logFiles(t, db.LogDir())
	_, err = m.End(ctx, op1, id, false)
	e := wantCode(t, err, apierr.BackupSequence, "End with an unread log")
	if !strings.Contains(e.Msg, logs[len(logs)-1].Name) || !strings.Contains(e.Msg, "nothing recorded") {
		t.Fatalf("message %q does not name %s or say nothing was recorded", e.Msg, logs[len(logs)-1].Name)
	}
	if full, inc := db.LastBackups(); full != nil || inc != nil {
		t.Fatalf("incomplete backup recorded: %+v %+v", full, inc)
	}
	if after := logFiles(t, db.LogDir()); len(after) < len(before) {
		t.Fatalf("log files went from %d to %d", len(before), len(after))
	}
	if n := eng.open(); n != 0 {
		t.Fatalf("%d snapshots pinned", n)
	}
	// A logs-only backup is still impossible: nothing was recorded.
	_, err = m.Prepare(ctx, op1, LogsOnly)
	wantCode(t, err, apierr.FullBackupNotTaken, "logs-only after an incomplete full backup")
}

// TestAbortRecordsNothing: End(abort) of a session that read everything
// records nothing.
func TestAbortRecordsNothing(t *testing.T) {
	db := newDB(t)
	write(t, db, 100)
	m, eng := newManager(t, db)
	c := backupFiles(t, m, op1, Full)
	res, err := m.End(context.Background(), op1, c.id, true)
	if err != nil || res.Recorded {
		t.Fatalf("End(abort) = %+v, %v", res, err)
	}
	if full, _ := db.LastBackups(); full != nil {
		t.Fatalf("aborted backup recorded %+v", full)
	}
	if n := eng.open(); n != 0 {
		t.Fatalf("%d snapshots pinned", n)
	}
}

// TestLocationsAndDynamicFiles: the restore map and the dynamic file list.
func TestLocationsAndDynamicFiles(t *testing.T) {
	db := newDB(t)
	crt := DynamicFile{Name: "Backup Test CA.crt", Path: "/srv/publish/Backup Test CA.crt", URL: "http://127.0.0.1:8080/CertEnroll/Backup%20Test%20CA.crt", Size: 512}
	m, _ := newManager(t, db, func(o *Options) {
		o.DynamicFiles = func() []DynamicFile { return []DynamicFile{crt} }
	})
	ctx := context.Background()
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	locs, err := m.DatabaseLocations(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	want := []File{{Tag: TagDatabase, Name: abs(db.DBPath())}, {Tag: TagLogDir, Name: abs(db.LogDir())}, {Tag: TagCheckpointDir, Name: abs(db.SysDir())}}
	if len(locs) != len(want) {
		t.Fatalf("restore map %+v, want %+v", locs, want)
	}
	for i := range want {
		if locs[i] != want[i] {
			t.Fatalf("restore map entry %d is %+v, want %+v", i, locs[i], want[i])
		}
	}
	dyn, err := m.DynamicFiles(ctx, op1, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(dyn) != 1 || dyn[0] != (File{Tag: TagDynamic, Name: crt.Name, Size: crt.Size, URL: crt.URL}) {
		t.Fatalf("dynamic files %+v", dyn)
	}
}

// TestReadChunkSizes: chunk sizes are clamped, chunks arrive in order with
// their offsets, and a read resumes where a broken stream stopped.
func TestReadChunkSizes(t *testing.T) {
	db := newDB(t)
	write(t, db, 400)
	m, _ := newManager(t, db)
	ctx := context.Background()
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := m.DatabaseNames(ctx, op1, id)
	size := names[0].Size
	if size <= 2*MinChunk {
		t.Fatalf("database snapshot is only %d bytes", size)
	}
	for _, c := range []struct{ ask, want int }{{1, MinChunk}, {0, DefaultChunk}, {1 << 30, MaxChunk}, {100_000, 100_000}} {
		if _, err := m.OpenFile(ctx, op1, id, names[0].Name); err != nil {
			t.Fatal(err)
		}
		var offs, sizes []int64
		err := m.Read(ctx, op1, id, c.ask, func(off int64, p []byte) error {
			offs, sizes = append(offs, off), append(sizes, int64(len(p)))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var next int64
		for i := range offs {
			if offs[i] != next {
				t.Fatalf("chunk %d at offset %d, want %d", i, offs[i], next)
			}
			if i < len(offs)-1 && sizes[i] != int64(c.want) {
				t.Fatalf("asked %d: chunk %d has %d bytes, want %d", c.ask, i, sizes[i], c.want)
			}
			next += sizes[i]
		}
		if next != size {
			t.Fatalf("streamed %d bytes of %d", next, size)
		}
		if err := m.CloseFile(ctx, op1, id, size); err != nil {
			t.Fatal(err)
		}
	}
	// A stream broken after one chunk resumes at the next offset.
	if _, err := m.OpenFile(ctx, op1, id, names[0].Name); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("client went away")
	err = m.Read(ctx, op1, id, MinChunk, func(off int64, p []byte) error {
		if off > 0 {
			return broken
		}
		return nil
	})
	if !errors.Is(err, broken) {
		t.Fatalf("Read returned %v, want the send error", err)
	}
	first := int64(-1)
	if err := m.Read(ctx, op1, id, MinChunk, func(off int64, p []byte) error {
		if first < 0 {
			first = off
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if first != MinChunk {
		t.Fatalf("resumed read started at %d, want %d", first, MinChunk)
	}
}

// TestServiceClosed: Close aborts the session, releases the snapshot and
// refuses later calls.
func TestServiceClosed(t *testing.T) {
	db := newDB(t)
	m, eng := newManager(t, db)
	ctx := context.Background()
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if n := eng.open(); n != 0 {
		t.Fatalf("%d snapshots pinned after Close", n)
	}
	_, err = m.DatabaseNames(ctx, op1, id)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v, want ErrClosed", err)
	}
	_, err = m.Prepare(ctx, op1, Full)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Prepare after Close: %v, want ErrClosed", err)
	}
}

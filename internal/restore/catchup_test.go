package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// lostDatabase prepares the "database file lost" disaster on a source CA:
// a full backup, more work after it, the CA stopped, the database file (and
// its SQLite companions) deleted. It returns the set, the serials issued
// after the backup and the source's last dump.
func lostDatabase(t *testing.T) (src *source, set string, after []string, last *store.Dump) {
	return lostDatabaseAfter(t, 40)
}

// lostDatabaseAfter is lostDatabase with n issuances after the backup.
func lostDatabaseAfter(t *testing.T, n int) (src *source, set string, after []string, last *store.Dump) {
	t.Helper()
	src = newSource(t)
	set = filepath.Join(t.TempDir(), "set")
	src.workload(10)
	src.fullBackup(set, backupOptions{})
	after = src.workload(n)
	last = src.dump()
	dbPath := src.ca.Store().DBPath()
	src.stop()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return src, set, after, last
}

// TestCatchUpAfterLosingTheDatabase restores over the CA's own directory
// after its database file was lost: catch-up replays the live log, so every
// certificate issued after the backup is back and the database equals the
// one lost.
func TestCatchUpAfterLosingTheDatabase(t *testing.T) {
	ctx := context.Background()
	src, set, after, last := lostDatabase(t)
	dir := src.dir
	liveBefore, err := wal.ScanDir(ctx, dir.LogDir(), "", wal.Signature{})
	must(t, err, "scan live log")

	if _, err := Restore(ctx, Options{SetDir: set, Dir: dir}); !errors.Is(err, ErrTargetNotEmpty) {
		t.Fatalf("restore over a CA without --force: %v, want ErrTargetNotEmpty", err)
	}
	rep, err := Restore(ctx, Options{SetDir: set, Dir: dir, Force: true, Logger: testLogger(t)})
	must(t, err, "restore --force")
	if rep.NewHost || rep.KeyRestored || rep.Record.NewCredentials {
		t.Fatalf("restore over the CA's own directory: new host %v, key restored %v, new credentials %v",
			rep.NewHost, rep.KeyRestored, rep.Record.NewCredentials)
	}
	_, err = Recover(ctx, dir, RecoverOptions{Logger: testLogger(t), afterSave: stopAt(StateReplayed)})
	if !errors.Is(err, errStopped) {
		t.Fatalf("recover: %v", err)
	}
	if got := dumpOf(t, dir.DBPath(src.name)); !reflect.DeepEqual(got, last) {
		t.Fatalf("after catch-up the database (LSN %d, %d requests) differs from the lost one (LSN %d, %d requests)",
			got.Meta.AppliedLSN, len(got.Requests), last.Meta.AppliedLSN, len(last.Requests))
	}
	res, err := Recover(ctx, dir, RecoverOptions{Logger: testLogger(t)})
	must(t, err, "recover")
	if res.LiveRecords == 0 || res.CatchUpSkipped != "" || res.LastLSN != last.Meta.AppliedLSN {
		t.Fatalf("result %+v", res)
	}
	// Nothing of the live log was set aside: it continued the backup.
	liveAfter, err := wal.ScanDir(ctx, dir.LogDir(), "", wal.Signature{})
	must(t, err, "scan live log")
	if liveAfter[0].Gen != liveBefore[0].Gen {
		t.Fatalf("the live log starts at generation %d after recovery, %d before", liveAfter[0].Gen, liveBefore[0].Gen)
	}
	for _, g := range liveBefore {
		if _, err := os.Stat(g.Path); err != nil {
			t.Fatalf("live generation %d is gone: %v", g.Gen, err)
		}
	}
	c := openRestored(t, dir)
	for _, serial := range after {
		if _, err := c.CertificateBySerial(ctx, serial); err != nil {
			t.Fatalf("certificate %s issued after the backup is missing: %v", serial, err)
		}
	}
	if !c.Store().NeedFullBackup() {
		t.Fatal("a full backup is not required after the restore")
	}
}

// TestCatchUpAfterTruncation is the lost-database case when the backup
// truncated the live log: the live log starts at the generation after the
// backup's last, and its header must chain to it.
func TestCatchUpAfterTruncation(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	set := filepath.Join(t.TempDir(), "set")
	src.workload(10)
	m := src.fullBackup(set, backupOptions{})
	high := m.LastBackup().LastGen
	res, err := src.ca.Store().TruncateLogs(ctx, high)
	must(t, err, "truncate")
	if res.Count() == 0 {
		t.Fatalf("nothing truncated: %s", res.Reason)
	}
	after := src.workload(30)
	last := src.dump()
	dbPath := src.ca.Store().DBPath()
	src.stop()
	must(t, os.Remove(dbPath), "remove database")
	live, err := wal.ScanDir(ctx, src.dir.LogDir(), "", wal.Signature{})
	must(t, err, "scan")
	if live[0].Gen != high+1 {
		t.Fatalf("the live log starts at generation %d, want %d", live[0].Gen, high+1)
	}
	rep, err := Restore(ctx, Options{SetDir: set, Dir: src.dir, Force: true, RecoverNow: true, Logger: testLogger(t)})
	must(t, err, "restore")
	if rep.Recovery.CatchUpSkipped != "" || rep.Recovery.LastLSN != last.Meta.AppliedLSN {
		t.Fatalf("recovery %+v", rep.Recovery)
	}
	c := openRestored(t, src.dir)
	for _, serial := range after {
		if _, err := c.CertificateBySerial(ctx, serial); err != nil {
			t.Fatalf("certificate %s missing: %v", serial, err)
		}
	}
}

// TestNoCatchUpStopsAtTheBackup restores over the CA's own directory with
// --no-catchup: the database ends at the backup, the live generations
// after it are set aside (not deleted), and the CA continues from there.
func TestNoCatchUpStopsAtTheBackup(t *testing.T) {
	ctx := context.Background()
	src, set, after, _ := lostDatabase(t)
	dir := src.dir
	liveBefore, err := wal.ScanDir(ctx, dir.LogDir(), "", wal.Signature{})
	must(t, err, "scan live log")
	rep, err := Restore(ctx, Options{SetDir: set, Dir: dir, Force: true, NoCatchUp: true, RecoverNow: true, Logger: testLogger(t)})
	must(t, err, "restore")
	res := rep.Recovery
	if res == nil || res.LiveRecords != 0 || res.SetAside == "" {
		t.Fatalf("recovery result %+v", res)
	}
	for _, g := range liveBefore {
		if g.Gen <= rep.Record.HighGen {
			continue
		}
		if _, err := os.Stat(filepath.Join(res.SetAside, "log", filepath.Base(g.Path))); err != nil {
			t.Fatalf("live generation %d after the backup was not set aside: %v", g.Gen, err)
		}
	}
	c := openRestored(t, dir)
	for _, serial := range after {
		if _, err := c.CertificateBySerial(ctx, serial); err == nil {
			t.Fatalf("certificate %s issued after the backup is present despite --no-catchup", serial)
		}
	}
	r, err := c.Submit(ctx, "tester", csrFor(t, src.key, "continued"), "tls-server")
	must(t, err, "issue")
	if r.Certificate == nil || r.SubmittedLSN != res.LastLSN+2 { // +1 is the need-full-backup record
		t.Fatalf("first request after the restore has LSN %d, recovery ended at %d", r.SubmittedLSN, res.LastLSN)
	}
}

// TestPointInTime restores to a time between two issuances, once from the
// backup's logs into a new directory and once through catch-up over the
// CA's own directory: the earlier certificate is present, the later is not,
// and the CA continues after the cut.
func TestPointInTime(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	set := filepath.Join(t.TempDir(), "set")
	src.workload(5)
	src.fullBackup(set, backupOptions{withKey: true})
	src.workload(30) // fill a few generations
	early := src.issue()
	time.Sleep(20 * time.Millisecond)
	until := time.Now()
	time.Sleep(20 * time.Millisecond)
	late := src.issue()
	src.workload(30)

	check := func(t *testing.T, c interface {
		CertificateBySerial(context.Context, string) (*store.Certificate, error)
	}) {
		t.Helper()
		if _, err := c.CertificateBySerial(ctx, early); err != nil {
			t.Fatalf("the certificate issued before --until is missing: %v", err)
		}
		if _, err := c.CertificateBySerial(ctx, late); err == nil {
			t.Fatal("the certificate issued after --until is present")
		}
	}

	t.Run("BackupLogs", func(t *testing.T) {
		setCopy := filepath.Join(t.TempDir(), "set")
		copyTree(t, setCopy, set)
		// The logs after the cut must be in the set: take an incremental
		// into this copy only.
		s2 := &source{t: t, dir: src.dir, ca: src.ca, lock: src.lock, key: src.key}
		s2.incrementalBackup(setCopy)
		target := newTarget(t)
		rep, err := Restore(ctx, Options{SetDir: setCopy, Dir: target, Until: Until{Time: until}, Password: testPassword,
			RecoverNow: true, Logger: testLogger(t)})
		must(t, err, "restore --until")
		if rep.Recovery.StopReason == "" || rep.Recovery.LastLSN >= s2.ca.Store().LastLSN() {
			t.Fatalf("recovery %+v did not stop at --until", rep.Recovery)
		}
		c := openRestored(t, target)
		check(t, c)
		_, err = c.Submit(ctx, "tester", csrFor(t, src.key, "after-pit"), "tls-server")
		must(t, err, "issue after point-in-time restore")
	})

	t.Run("CatchUp", func(t *testing.T) {
		lsn := src.ca.Store().LastLSN()
		dbPath := src.ca.Store().DBPath()
		src.stop()
		must(t, os.Remove(dbPath), "remove database")
		rep, err := Restore(ctx, Options{SetDir: set, Dir: src.dir, Force: true, Until: Until{Time: until},
			RecoverNow: true, Logger: testLogger(t)})
		must(t, err, "restore --force --until")
		res := rep.Recovery
		if res.LiveRecords == 0 || res.LastLSN >= lsn || res.SetAside == "" {
			t.Fatalf("recovery %+v; the live log ended at LSN %d", res, lsn)
		}
		plan := res.Record.Recovery.Plan
		if plan.StopFrom != stopFromLive {
			t.Fatalf("plan %+v: the stop generation should be cut from the live log", plan)
		}
		// The original generation is kept whole in the set-aside directory.
		orig := filepath.Join(res.SetAside, "log", wal.FileName("ca", plan.StopGen))
		info, err := wal.VerifyGeneration(orig, nil)
		must(t, err, "set-aside original")
		if info.LastLSN <= res.LastLSN {
			t.Fatalf("the set-aside generation %d ends at LSN %d, not after the cut at %d", plan.StopGen, info.LastLSN, res.LastLSN)
		}
		c := openRestored(t, src.dir)
		check(t, c)
		r, err := c.Submit(ctx, "tester", csrFor(t, src.key, "after-pit"), "tls-server")
		must(t, err, "issue after point-in-time restore")
		if r.SubmittedLSN <= res.LastLSN {
			t.Fatalf("new request LSN %d not after the cut %d", r.SubmittedLSN, res.LastLSN)
		}
	})
}

// TestUntilBeforeSnapshot refuses a point in time the snapshot already
// passed, naming the earliest possible one, before changing anything.
func TestUntilBeforeSnapshot(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	set := filepath.Join(t.TempDir(), "set")
	start := time.Now()
	src.workload(10)
	m := src.fullBackup(set, backupOptions{withKey: true})
	s := m.Backups[0].SnapshotLSN
	for name, u := range map[string]Until{
		"lsn":  {LSN: s - 1},
		"time": {Time: start.Add(-time.Minute)},
	} {
		t.Run(name, func(t *testing.T) {
			target := newTarget(t)
			_, err := Restore(ctx, Options{SetDir: set, Dir: target, Until: u, Password: testPassword})
			var ue *UntilError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUntilBeforeSnapshot) {
				t.Fatalf("restore --until %s: %v, want *UntilError", u, err)
			}
			if ue.EarliestLSN != s || ue.EarliestTime.IsZero() || ue.EarliestTime.Before(start) {
				t.Fatalf("earliest point %d / %v; the snapshot is at %d, work started at %v", ue.EarliestLSN, ue.EarliestTime, s, start)
			}
			if what := leftover(t, target); what != "" {
				t.Fatalf("the refused restore left %s in the target", what)
			}
			// The earliest point itself is accepted.
			_, err = Restore(ctx, Options{SetDir: set, Dir: target, Until: Until{Time: ue.EarliestTime}, Password: testPassword, RecoverNow: true})
			must(t, err, "restore at the earliest point")
		})
	}
}

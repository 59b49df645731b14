package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/store"
)

// TestBackupConsistencyUnderLoad is issue 4's acceptance test. While
// clients issue certificates over gRPC, an officer revokes some of them
// (and releases some holds) and CRLs are published, `certadm backup` takes
// a full backup, the load goes on, and `certadm backup --incremental`
// appends a logs-only backup. The set is restored with the engine's replay
// (its snapshot plus every log generation in it, up to the incremental's
// last LSN X) and its logical dump must equal the source database's at X:
// the database as Init left it, copied before the server first opened it,
// replayed through the live CA's own log directory (kept whole with
// --keep-logs) to X. That reconstruction is itself checked against the
// live database file: replayed to the live log's end, it dumps equal to
// the database the server closed.
func TestBackupConsistencyUnderLoad(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := initCA(t, filepath.Join(root, "data"), func(c *datadir.Config) {
		c.LogSegmentSize = 64 << 10 // the smallest: many generations in each backup
		c.CheckpointInterval = datadir.Duration(time.Second)
	})
	// The database as Init left it (closed), before any load: the start of
	// the source's reconstruction.
	genesis := filepath.Join(root, "genesis")
	dbName := caName + ".db"
	copyDatabase(t, genesis, dir.DBDir(), dbName)

	s := startCA(t, dir)
	csrs := makeCSRs(t, 128, 2, "load")
	load := startLoad(ctx, t, s, 8, csrs)
	t.Cleanup(func() {
		select {
		case <-load.stop:
		default:
			load.stopLoad()
		}
	})
	if err := load.waitCounts(30*time.Second, 800, 40, 4); err != nil {
		t.Fatalf("load before the full backup: %v", err)
	}

	set := filepath.Join(root, "set")
	out, err := s.certadm(ctx, "backup", set, "--keep-logs")
	if err != nil {
		t.Fatalf("full backup: %v", err)
	}
	t.Logf("full: %s", strings.TrimSpace(out))
	c0, r0, n0 := load.counts()
	if err := load.waitCounts(30*time.Second, c0+800, r0+40, n0+4); err != nil {
		t.Fatalf("load between the backups: %v", err)
	}
	incrStart := time.Now()
	out, err = s.certadm(ctx, "backup", set, "--incremental", "--keep-logs")
	if err != nil {
		t.Fatalf("incremental backup: %v", err)
	}
	t.Logf("incremental: %s", strings.TrimSpace(out))
	// More load after the incremental, so the source's log goes past X.
	c1, _, _ := load.counts()
	if err := load.waitCounts(30*time.Second, c1+50, 0, 0); err != nil {
		t.Fatalf("load after the incremental: %v", err)
	}
	if err := load.stopLoad(); err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("server: %v", err)
	}
	certs, revs, crls := load.counts()
	t.Logf("load: %d certificates (%.0f/s, p50 %s, p99 %s), %d revocations and releases, %d CRLs",
		certs, load.issued.Rate(), load.issued.P50(), load.issued.P99(), revs, crls)

	// The set is complete and verifies.
	bs, err := backupset.Open(set)
	if err != nil {
		t.Fatalf("open set: %v", err)
	}
	rep, err := bs.Verify(ctx)
	if err != nil {
		t.Fatalf("verify set: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("set does not verify: %v", rep.Problems)
	}
	m := bs.Manifest()
	if len(m.Backups) != 2 || m.Backups[0].Type != backupset.BackupFull || m.Backups[1].Type != backupset.BackupLogsOnly {
		t.Fatalf("set holds backups %+v, want full then logs-only", m.Backups)
	}
	full, incr := m.Backups[0], m.Backups[1]
	x := incr.LastLSN
	t.Logf("full: snapshot LSN %d, generations %d..%d, LSNs %d..%d; incremental: generations %d..%d, LSNs %d..%d",
		full.SnapshotLSN, full.FirstGen, full.LastGen, full.FirstLSN, full.LastLSN, incr.FirstGen, incr.LastGen, incr.FirstLSN, incr.LastLSN)
	if incr.LastGen <= incr.FirstGen {
		t.Errorf("the incremental backup should span several generations: %d..%d", incr.FirstGen, incr.LastGen)
	}

	// Restore with the engine's replay: the snapshot, then every log of
	// the set, to X.
	restored := filepath.Join(root, "restored", dbName)
	dbPath, err := bs.Path(bs.Database().Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(restored), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := copyAndSync(restored, dbPath); err != nil {
		t.Fatal(err)
	}
	res, err := store.Replay(ctx, store.ReplayOptions{DBPath: restored, LogDirs: []string{filepath.Join(set, backupset.DatabaseDir)}, UntilLSN: x})
	if err != nil {
		t.Fatalf("replay the set: %v", err)
	}
	if res.AppliedLSN != x || res.FirstLSN != full.SnapshotLSN+1 {
		t.Fatalf("replay of the set applied LSNs %d..%d (applied LSN %d), want %d..%d", res.FirstLSN, res.LastLSN, res.AppliedLSN, full.SnapshotLSN+1, x)
	}
	got, err := store.DumpFile(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}

	// The source at X: the genesis copy replayed through the live log.
	source := filepath.Join(root, "source-at-x")
	copyDatabase(t, source, genesis, dbName)
	sres, err := store.Replay(ctx, store.ReplayOptions{DBPath: filepath.Join(source, dbName), LogDirs: []string{dir.LogDir()}, UntilLSN: x})
	if err != nil {
		t.Fatalf("replay the source log: %v", err)
	}
	if sres.AppliedLSN != x || !sres.Stopped {
		t.Fatalf("source replay reached LSN %d (stopped at the bound: %v), want %d with later records left", sres.AppliedLSN, sres.Stopped, x)
	}
	want, err := store.DumpFile(ctx, filepath.Join(source, dbName))
	if err != nil {
		t.Fatal(err)
	}
	compareDumps(t, "restored set vs source at X", want, got)

	// The reconstruction method is faithful: replayed to the end of the
	// live log, the genesis copy equals the database the server closed.
	end := filepath.Join(root, "source-at-end")
	copyDatabase(t, end, genesis, dbName)
	if _, err := store.Replay(ctx, store.ReplayOptions{DBPath: filepath.Join(end, dbName), LogDirs: []string{dir.LogDir()}}); err != nil {
		t.Fatalf("replay the whole source log: %v", err)
	}
	replayedEnd, err := store.DumpFile(ctx, filepath.Join(end, dbName))
	if err != nil {
		t.Fatal(err)
	}
	live, err := store.DumpFile(ctx, dir.DBPath(caName))
	if err != nil {
		t.Fatal(err)
	}
	if live.Meta.AppliedLSN <= x {
		t.Errorf("live database ends at LSN %d, not past X = %d", live.Meta.AppliedLSN, x)
	}
	compareDumps(t, "replayed source log vs live database", live, replayedEnd)

	checkContent(t, got, full, incr)
	checkAcknowledged(t, got, load, incrStart)
}

// copyDatabase copies the database file name and its SQLite -wal file,
// when there is one, from the directory src into the directory dst.
// Neither may be open.
func copyDatabase(t *testing.T, dst, src, name string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{name, name + "-wal"} {
		if _, err := os.Stat(filepath.Join(src, n)); os.IsNotExist(err) && n != name {
			continue
		}
		if _, err := copyAndSync(filepath.Join(dst, n), filepath.Join(src, n)); err != nil {
			t.Fatalf("copy %s: %v", n, err)
		}
	}
}

// compareDumps fails the test unless got equals want, naming the first
// difference of each table.
func compareDumps(t *testing.T, what string, want, got *store.Dump) {
	t.Helper()
	if reflect.DeepEqual(want, got) {
		return
	}
	if !reflect.DeepEqual(want.Meta, got.Meta) {
		t.Errorf("%s: meta %+v, want %+v", what, got.Meta, want.Meta)
	}
	firstDiff(t, what, "requests", want.Requests, got.Requests)
	firstDiff(t, what, "revocation events", want.RevocationEvents, got.RevocationEvents)
	firstDiff(t, what, "CRLs", want.CRLs, got.CRLs)
	firstDiff(t, what, "principals", want.Principals, got.Principals)
	firstDiff(t, what, "backups", want.Backups, got.Backups)
	t.Errorf("%s: dumps differ", what)
}

func firstDiff[T any](t *testing.T, what, table string, want, got []T) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%s: %d %s, want %d", what, len(got), table, len(want))
	}
	for i := range min(len(want), len(got)) {
		if !reflect.DeepEqual(want[i], got[i]) {
			t.Errorf("%s: %s[%d] = %+v, want %+v", what, table, i, got[i], want[i])
			return
		}
	}
}

// checkContent insists that the restored database is not trivially equal:
// hundreds of certificates, revocations and CRLs recorded both before the
// full backup's snapshot and only in the incremental's logs, and the full
// backup's own record.
func checkContent(t *testing.T, d *store.Dump, full, incr backupset.Backup) {
	t.Helper()
	var certs, certsBefore, certsDuring, certsIncr int
	for _, r := range d.Requests {
		if r.Certificate == nil {
			continue
		}
		certs++
		switch {
		case r.ResolvedLSN <= full.SnapshotLSN:
			certsBefore++
		case r.ResolvedLSN <= full.LastLSN:
			certsDuring++
		default:
			certsIncr++
		}
	}
	var revBefore, revIncr int
	for _, e := range d.RevocationEvents {
		switch {
		case e.LSN <= full.SnapshotLSN:
			revBefore++
		case e.LSN > full.LastLSN:
			revIncr++
		}
	}
	var crlBefore, crlIncr, deltas int
	for _, c := range d.CRLs {
		if c.Delta {
			deltas++
		}
		switch {
		case c.LSN <= full.SnapshotLSN:
			crlBefore++
		case c.LSN > full.LastLSN:
			crlIncr++
		}
	}
	t.Logf("restored: %d certificates (%d in the snapshot, %d issued during the full backup, %d only in the incremental), %d revocation events (%d, %d), %d CRLs (%d, %d; %d deltas)",
		certs, certsBefore, certsDuring, certsIncr, len(d.RevocationEvents), revBefore, revIncr, len(d.CRLs), crlBefore, crlIncr, deltas)
	if certs < 1600 || certsBefore < 500 || certsIncr < 500 {
		t.Errorf("restored certificates: %d in all, %d in the snapshot, %d only in the incremental; want at least 1600, 500, 500", certs, certsBefore, certsIncr)
	}
	// The load went on while the full backup copied the snapshot: the
	// full backup's logs hold records after its snapshot.
	if full.LastLSN <= full.SnapshotLSN || certsDuring == 0 {
		t.Errorf("full backup: snapshot LSN %d, logs to LSN %d, %d certificates issued in between; want records after the snapshot",
			full.SnapshotLSN, full.LastLSN, certsDuring)
	}
	if revBefore < 10 || revIncr < 10 {
		t.Errorf("revocation events: %d in the snapshot, %d only in the incremental; want at least 10 each", revBefore, revIncr)
	}
	if crlBefore < 2 || crlIncr < 2 || deltas == 0 {
		t.Errorf("CRLs: %d in the snapshot, %d only in the incremental, %d deltas; want at least 2, 2, 1", crlBefore, crlIncr, deltas)
	}
	found := false
	for _, b := range d.Backups {
		if b.Type == store.BackupFull && b.FirstGen == full.FirstGen && b.LastGen == full.LastGen {
			found = true
		}
	}
	if !found {
		t.Errorf("the restored database does not record the full backup of generations %d..%d: %+v", full.FirstGen, full.LastGen, d.Backups)
	}
}

// checkAcknowledged checks that everything the server acknowledged before
// the incremental backup started is in the restored database: every
// certificate (same DER), every CRL, and the revocation state of every
// certificate whose last change was acknowledged by then.
func checkAcknowledged(t *testing.T, d *store.Dump, l *caLoad, before time.Time) {
	t.Helper()
	bySerial := map[string]*store.Certificate{}
	for _, r := range d.Requests {
		if r.Certificate != nil {
			bySerial[r.Certificate.Serial] = r.Certificate
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var checked int
	for _, a := range l.certs {
		if !a.At.Before(before) {
			continue
		}
		checked++
		c, ok := bySerial[a.Serial]
		if !ok {
			t.Errorf("certificate %s, issued before the incremental backup, is not in the restored database", a.Serial)
			continue
		}
		if !bytes.Equal(c.DER, a.DER) {
			t.Errorf("certificate %s: restored DER differs from the one issued", a.Serial)
		}
	}
	last := map[string]revAck{}
	later := map[string]bool{}
	for _, r := range l.revs {
		if r.At.Before(before) {
			last[r.Serial] = r
		} else {
			later[r.Serial] = true
		}
	}
	for serial, r := range last {
		if later[serial] {
			continue // a later change may or may not precede X
		}
		c, ok := bySerial[serial]
		switch {
		case !ok:
			t.Errorf("revoked certificate %s is not in the restored database", serial)
		case r.Release && c.Revoked:
			t.Errorf("certificate %s was released from hold before the incremental backup but is restored revoked", serial)
		case !r.Release && (!c.Revoked || c.RevocationReason != r.Reason):
			t.Errorf("certificate %s: restored revoked=%v reason %d, want revoked with reason %d", serial, c.Revoked, c.RevocationReason, r.Reason)
		}
	}
	crls := map[string]bool{}
	for _, c := range d.CRLs {
		crls[strconv.FormatUint(c.Number, 10)+fmt.Sprint(c.Delta)] = true
	}
	for _, c := range l.crls {
		if c.At.Before(before) && !crls[c.Number+fmt.Sprint(c.Delta)] {
			t.Errorf("CRL %s (delta %v), published before the incremental backup, is not in the restored database", c.Number, c.Delta)
		}
	}
	if checked < 1600 || len(last) < 60 {
		t.Errorf("only %d certificates and %d revocation states were acknowledged before the incremental backup", checked, len(last))
	}
}

package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// workload applies n rounds of every kind of write to d.
func workload(t testing.TB, d *DB, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("w%d-%d", i, time.Now().UnixNano())
		_, c, err := d.Enroll(ctx, testRequest(name), testCert(name))
		mustf(t, err, "enroll")
		p, err := d.SubmitRequest(ctx, testRequest(name+"p"))
		mustf(t, err, "submit")
		switch i % 3 {
		case 0:
			_, err = d.IssueRequest(ctx, p.ID, testCert(name+"p"))
			mustf(t, err, "issue")
		case 1:
			_, _, err := d.DenyRequest(ctx, p.ID, "no")
			mustf(t, err, "deny")
		}
		switch i % 4 {
		case 0:
			mustf(t, errOnly(d.Revoke(ctx, c.Serial, 1, time.Time{})), "revoke")
		case 1:
			mustf(t, errOnly(d.Revoke(ctx, c.Serial, ReasonCertificateHold, time.Time{})), "hold")
		case 2:
			mustf(t, errOnly(d.Revoke(ctx, c.Serial, ReasonCertificateHold, time.Time{})), "hold")
			mustf(t, errOnly(d.Unrevoke(ctx, c.Serial)), "unrevoke")
		}
		if i%5 == 0 {
			last, err := d.LastCRL(ctx, false)
			num := uint64(1)
			if err == nil {
				num = last.Number + 10
			}
			_, err = d.RecordCRL(ctx, CRL{Number: num, ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour), DER: fakeDER(100)})
			mustf(t, err, "crl")
			mustf(t, d.GrantRoles(ctx, name, []string{"Reader", "Enrollee"}, "FP"+name), "grant")
		}
	}
}

func mustDump(t testing.TB, d *DB) *Dump {
	t.Helper()
	dump, err := d.Dump(context.Background())
	mustf(t, err, "dump")
	return dump
}

func TestCloseLeavesNothingToReplay(t *testing.T) {
	opts := testOptions(t)
	d := createDB(t, opts)
	workload(t, d, 10)
	want := mustDump(t, d)
	mustf(t, d.Close(), "close")
	d2 := openDB(t, opts)
	if r := d2.Recovery(); r.Records != 0 {
		t.Fatalf("reopen after Close replayed %d records (%+v)", r.Records, r)
	}
	if got := mustDump(t, d2); !reflect.DeepEqual(got, want) {
		t.Fatal("dump after reopen differs")
	}
	if ck := d2.CheckpointInfo(); ck.LSN != want.Meta.AppliedLSN {
		t.Fatalf("checkpoint LSN %d, applied %d", ck.LSN, want.Meta.AppliedLSN)
	}
}

// TestSoftRecoveryReplaysMissingRecords puts back an older database file
// under newer logs: Open must replay exactly the difference.
func TestSoftRecoveryReplaysMissingRecords(t *testing.T) {
	opts := testOptions(t)
	opts.SegmentSize = 16 << 10 // several generations
	d := createDB(t, opts)
	workload(t, d, 5)
	mustf(t, d.Close(), "close")
	old := filepath.Join(t.TempDir(), "old.db")
	copyFile(t, old, opts.DBPath)
	oldLSN := uint64(queryInt(t, old, "SELECT applied_lsn FROM meta"))

	d = openDB(t, opts)
	workload(t, d, 20)
	want := mustDump(t, d)
	mustf(t, d.Close(), "close")
	if len(d.Generations()) < 3 {
		t.Fatalf("only %d generations; the test wants several", len(d.Generations()))
	}

	copyFile(t, opts.DBPath, old)
	d = openDB(t, opts)
	r := d.Recovery()
	if r.Records != int(want.Meta.AppliedLSN-oldLSN) || r.FirstLSN != oldLSN+1 || r.LastLSN != want.Meta.AppliedLSN {
		t.Fatalf("recovery %+v; want LSNs %d-%d", r, oldLSN+1, want.Meta.AppliedLSN)
	}
	if got := mustDump(t, d); !reflect.DeepEqual(got, want) {
		t.Fatal("dump after soft recovery differs from the live one")
	}
	// The engine keeps working after recovery: IDs continue.
	p, err := d.SubmitRequest(context.Background(), testRequest("after"))
	mustf(t, err, "submit after recovery")
	if p.ID != want.Requests[len(want.Requests)-1].ID+1 {
		t.Fatalf("next request ID %d after %d", p.ID, want.Requests[len(want.Requests)-1].ID)
	}
}

// TestReplayIdempotent replays the same log twice into a copy of the empty
// database: identical dumps, and the second pass applies nothing.
func TestReplayIdempotent(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.SegmentSize = 16 << 10
	d := createDB(t, opts)
	mustf(t, d.Close(), "close")
	empty := filepath.Join(t.TempDir(), "empty.db")
	copyFile(t, empty, opts.DBPath)
	d = openDB(t, opts)
	workload(t, d, 15)
	want := mustDump(t, d)
	mustf(t, d.Close(), "close")

	res, err := Replay(ctx, ReplayOptions{DBPath: empty, LogDirs: []string{opts.LogDir}})
	mustf(t, err, "first replay")
	if res.Records != int(want.Meta.AppliedLSN) || res.AppliedLSN != want.Meta.AppliedLSN || res.Stopped {
		t.Fatalf("first replay %+v, want %d records", res, want.Meta.AppliedLSN)
	}
	first, err := DumpFile(ctx, empty)
	mustf(t, err, "dump")
	if !reflect.DeepEqual(first, want) {
		t.Fatal("replayed dump differs from the live one")
	}
	res, err = Replay(ctx, ReplayOptions{DBPath: empty, LogDirs: []string{opts.LogDir}, FromLSN: 1})
	mustf(t, err, "second replay")
	if res.Records != 0 || res.Skipped != int(want.Meta.AppliedLSN) {
		t.Fatalf("second replay %+v: want 0 applied, %d skipped", res, want.Meta.AppliedLSN)
	}
	second, err := DumpFile(ctx, empty)
	mustf(t, err, "dump")
	if !reflect.DeepEqual(second, first) {
		t.Fatal("a second replay changed the database")
	}
	if got := integrityCheck(t, empty); got != "ok" {
		t.Fatalf("integrity_check: %s", got)
	}
}

func TestReplayUntil(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	d := createDB(t, opts)
	mustf(t, d.Close(), "close")
	empty := filepath.Join(t.TempDir(), "empty.db")
	copyFile(t, empty, opts.DBPath)
	d = openDB(t, opts)
	for i := 0; i < 40; i++ {
		_, err := d.appendNoop(ctx, fakeDER(1000))
		mustf(t, err, "noop")
	}
	// Find the append time of record 25.
	var t25 time.Time
	mustf(t, d.log.ReadFrom(ctx, 25, func(r wal.Record) error {
		if r.LSN == 25 {
			t25 = r.Time
		}
		return nil
	}), "read")
	mustf(t, d.Close(), "close")

	t.Run("UntilLSN", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "x.db")
		copyFile(t, db, empty)
		res, err := Replay(ctx, ReplayOptions{DBPath: db, LogDirs: []string{opts.LogDir}, UntilLSN: 17})
		mustf(t, err, "replay")
		if res.LastLSN != 17 || res.Records != 17 || !res.Stopped || queryInt(t, db, "SELECT applied_lsn FROM meta") != 17 {
			t.Fatalf("replay until 17: %+v", res)
		}
		// Resume to the end.
		res, err = Replay(ctx, ReplayOptions{DBPath: db, LogDirs: []string{opts.LogDir}})
		mustf(t, err, "resume")
		if res.FirstLSN != 18 || res.LastLSN != 40 || res.Stopped {
			t.Fatalf("resumed replay: %+v", res)
		}
	})
	t.Run("UntilTime", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "x.db")
		copyFile(t, db, empty)
		res, err := Replay(ctx, ReplayOptions{DBPath: db, LogDirs: []string{opts.LogDir}, UntilTime: t25})
		mustf(t, err, "replay")
		if res.LastLSN < 25 || res.LastTime.After(t25) || !res.Stopped {
			t.Fatalf("replay until %v: %+v", t25, res)
		}
		// The record after the last applied one is later than the bound.
		var next time.Time
		mustf(t, wal.ReadDir(ctx, opts.LogDir, "", wal.Signature{}, res.LastLSN+1, func(r wal.Record) error {
			if r.LSN == res.LastLSN+1 {
				next = r.Time
			}
			return nil
		}), "read")
		if !next.After(t25) {
			t.Fatalf("replay stopped at LSN %d but record %d (%v) is not after %v", res.LastLSN, res.LastLSN+1, next, t25)
		}
	})
	t.Run("TwoDirectories", func(t *testing.T) {
		// A "backup" directory with the early generations and the live one
		// with all of them: overlaps must match; the union replays.
		db := filepath.Join(t.TempDir(), "x.db")
		copyFile(t, db, empty)
		bak := t.TempDir()
		live := t.TempDir()
		gens, err := wal.ScanDir(ctx, opts.LogDir, "", wal.Signature{})
		mustf(t, err, "scan")
		for i, g := range gens {
			if i <= 2 {
				copyFile(t, filepath.Join(bak, filepath.Base(g.Path)), g.Path)
			}
			if i >= 1 {
				copyFile(t, filepath.Join(live, filepath.Base(g.Path)), g.Path)
			}
		}
		res, err := Replay(ctx, ReplayOptions{DBPath: db, LogDirs: []string{bak, live}})
		mustf(t, err, "replay")
		if res.LastLSN != 40 || res.Records != 40 {
			t.Fatalf("replay over two directories: %+v", res)
		}
		// A differing copy of a shared generation is refused.
		db2 := filepath.Join(t.TempDir(), "y.db")
		copyFile(t, db2, empty)
		p := filepath.Join(live, filepath.Base(gens[2].Path))
		b, _ := os.ReadFile(p)
		b[len(b)-1] ^= 0xFF
		os.WriteFile(p, b, 0o600)
		if _, err := Replay(ctx, ReplayOptions{DBPath: db2, LogDirs: []string{bak, live}}); !errors.Is(err, wal.ErrCorrupt) {
			t.Fatalf("replay over a damaged generation: %v", err)
		}
	})
	t.Run("Conflict", func(t *testing.T) {
		// Two valid generations 1 of the same log set with different
		// records: refused with ErrLogConflict.
		db := filepath.Join(t.TempDir(), "x.db")
		copyFile(t, db, empty)
		a, b := t.TempDir(), t.TempDir()
		gens, _ := wal.ScanDir(ctx, opts.LogDir, "", wal.Signature{})
		copyFile(t, filepath.Join(a, filepath.Base(gens[0].Path)), gens[0].Path)
		other, err := wal.Create(wal.Options{Dir: b, Signature: gens[0].Signature})
		mustf(t, err, "create other log")
		for i := 0; i < 3; i++ {
			_, err := other.Append(ctx, RecordNoop, encodeOp(&noopOp{Data: []byte("other")}))
			mustf(t, err, "append")
		}
		mustf(t, other.Close(), "close")
		if _, err := Replay(ctx, ReplayOptions{DBPath: db, LogDirs: []string{a, b}}); !errors.Is(err, ErrLogConflict) {
			t.Fatalf("conflicting copies of generation 1: %v", err)
		}
	})
	t.Run("GapBetweenDirectories", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "x.db")
		copyFile(t, db, empty)
		a, b := t.TempDir(), t.TempDir()
		gens, _ := wal.ScanDir(ctx, opts.LogDir, "", wal.Signature{})
		copyFile(t, filepath.Join(a, filepath.Base(gens[0].Path)), gens[0].Path)
		copyFile(t, filepath.Join(b, filepath.Base(gens[2].Path)), gens[2].Path)
		_, err := Replay(ctx, ReplayOptions{DBPath: db, LogDirs: []string{a, b}})
		var me *MissingLogError
		if !errors.As(err, &me) || me.Gen != gens[1].Gen {
			t.Fatalf("gap: %v, want generation %d missing", err, gens[1].Gen)
		}
	})
}

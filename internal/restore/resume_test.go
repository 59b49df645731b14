package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// stopAtNth stops recovery the nth time (from 1) it saves state s.
func stopAtNth(s State, n int) func(State) error {
	seen := 0
	return func(got State) error {
		if got == s {
			seen++
			if seen == n {
				return fmt.Errorf("stopped at %s #%d: %w", s, n, errStopped)
			}
		}
		return nil
	}
}

// checkRecovered opens the recovered directory and compares its content
// with the dump of the database that was lost: everything equal, plus the
// need-full-backup record.
func checkRecovered(t *testing.T, src *source, want *store.Dump) {
	t.Helper()
	c := openRestored(t, src.dir)
	got, err := c.Store().Dump(context.Background())
	must(t, err, "dump")
	if !reflect.DeepEqual(got.Requests, want.Requests) || !reflect.DeepEqual(got.RevocationEvents, want.RevocationEvents) ||
		!reflect.DeepEqual(got.CRLs, want.CRLs) || !reflect.DeepEqual(got.Principals, want.Principals) ||
		!reflect.DeepEqual(got.Backups, want.Backups) {
		t.Fatalf("recovered content differs: %d/%d requests, %d/%d CRLs", len(got.Requests), len(want.Requests), len(got.CRLs), len(want.CRLs))
	}
	if got.Meta.AppliedLSN != want.Meta.AppliedLSN+1 || !got.Meta.NeedFullBackup {
		t.Fatalf("recovered meta %+v; want applied LSN %d and a full backup required", got.Meta, want.Meta.AppliedLSN+1)
	}
}

// TestRecoverResumes interrupts hard recovery (with catch-up) after each
// state it records, then runs it again: the result is always the lost
// database, and nothing is replayed twice.
func TestRecoverResumes(t *testing.T) {
	ctx := context.Background()
	for _, stop := range []struct {
		state State
		nth   int
	}{
		{StateRecovering, 1}, // verified, before any replay
		{StateRecovering, 2}, // backup logs replayed, live log not yet
		{StateReplayed, 1},
		{StateInstalled, 1},
	} {
		t.Run(fmt.Sprintf("%s-%d", stop.state, stop.nth), func(t *testing.T) {
			src, set, _, last := lostDatabase(t)
			_, err := Restore(ctx, Options{SetDir: set, Dir: src.dir, Force: true})
			must(t, err, "restore")
			_, err = Recover(ctx, src.dir, RecoverOptions{Logger: testLogger(t), afterSave: stopAtNth(stop.state, stop.nth)})
			if !errors.Is(err, errStopped) {
				t.Fatalf("interrupted recovery: %v", err)
			}
			rec, err := Pending(src.dir)
			if err != nil || rec.State != stop.state {
				t.Fatalf("record after the interruption: %+v, %v", rec, err)
			}
			res, err := Recover(ctx, src.dir, RecoverOptions{Logger: testLogger(t)})
			must(t, err, "resumed recovery")
			if !res.Resumed || res.LastLSN != last.Meta.AppliedLSN || res.Record.Recovery.Attempts < 1 {
				t.Fatalf("result %+v", res)
			}
			if got := res.BackupRecords + res.LiveRecords; got != int(last.Meta.AppliedLSN-res.SnapshotLSN) {
				t.Fatalf("%d records replayed in all, %d between the snapshot and the end", got, last.Meta.AppliedLSN-res.SnapshotLSN)
			}
			checkRecovered(t, src, last)
		})
	}
}

// TestInstallIsRepeatable runs the log-directory step of a point-in-time
// catch-up recovery twice (as after a crash in its middle): the second run
// finds the files already set aside and writes the same log.
func TestInstallIsRepeatable(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	set := filepath.Join(t.TempDir(), "set")
	src.fullBackup(set, backupOptions{})
	src.workload(20)
	early := src.issue()
	time.Sleep(10 * time.Millisecond)
	until := time.Now()
	time.Sleep(10 * time.Millisecond)
	late := src.issue()
	src.workload(20)
	dbPath := src.ca.Store().DBPath()
	src.stop()
	must(t, os.Remove(dbPath), "remove database")
	_, err := Restore(ctx, Options{SetDir: set, Dir: src.dir, Force: true, Until: Until{Time: until}})
	must(t, err, "restore")
	_, err = Recover(ctx, src.dir, RecoverOptions{afterSave: stopAt(StateInstalled)})
	if !errors.Is(err, errStopped) {
		t.Fatalf("recovery: %v", err)
	}
	first := treeDigest(t, src.dir.LogDir())
	rec, err := readRecordFile(RecordPath(src.dir))
	must(t, err, "read record")
	rec.State = StateReplayed
	must(t, writeRecordFile(RecordPath(src.dir), rec), "rewind the record")
	_, err = Recover(ctx, src.dir, RecoverOptions{afterSave: stopAt(StateInstalled)})
	if !errors.Is(err, errStopped) {
		t.Fatalf("repeated recovery: %v", err)
	}
	sameTree(t, first, treeDigest(t, src.dir.LogDir()))
	_, err = Recover(ctx, src.dir, RecoverOptions{})
	must(t, err, "finish")
	c := openRestored(t, src.dir)
	if _, err := c.CertificateBySerial(ctx, early); err != nil {
		t.Fatalf("certificate before --until missing: %v", err)
	}
	if _, err := c.CertificateBySerial(ctx, late); err == nil {
		t.Fatal("certificate after --until present")
	}
}

// TestCatchUpSkipped checks the live logs recovery cannot use: another log
// set's, ones after a gap, ones that diverged from the backup. Recovery
// stops at the end of the backup's logs, says why, and sets the unusable
// generations aside instead of deleting them.
func TestCatchUpSkipped(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		prepare func(t *testing.T) (src *source, set string, after []string)
		reason  string
	}{
		{"another log set", func(t *testing.T) (*source, string, []string) {
			src, set, after, _ := lostDatabaseAfter(t, 40)
			other := newSource(t)
			other.workload(5)
			other.stop()
			replaceLogs(t, src.dir.LogDir(), other.dir.LogDir())
			return src, set, after
		}, "another log set"},
		{"gap after the backup", func(t *testing.T) (*source, string, []string) {
			src, set, after, _ := lostDatabaseAfter(t, 150)
			s, err := backupset.Open(set)
			must(t, err, "open set")
			high := s.Manifest().LastBackup().LastGen
			for g := uint32(1); g <= high+1; g++ {
				os.Remove(filepath.Join(src.dir.LogDir(), wal.FileName("ca", g)))
			}
			return src, set, after
		}, "missing"},
		{"diverged", func(t *testing.T) (*source, string, []string) {
			// A point-in-time restore to inside the backup's logs, then
			// more work: after the cut the live log holds another history
			// than the backup.
			src := newSource(t)
			set := filepath.Join(t.TempDir(), "set")
			src.workload(5)
			src.fullBackup(set, backupOptions{})
			src.workload(20)
			m := src.incrementalBackup(set)
			dbPath := src.ca.Store().DBPath()
			src.stop()
			must(t, os.Remove(dbPath), "remove database")
			cut := (m.Backups[0].SnapshotLSN + m.LastBackup().LastLSN) / 2
			_, err := Restore(ctx, Options{SetDir: set, Dir: src.dir, Force: true, Until: Until{LSN: cut}, RecoverNow: true})
			must(t, err, "point-in-time restore")
			again := &source{t: t, dir: src.dir, key: src.key, name: src.name, n: 1000}
			again.lock, err = src.dir.Acquire()
			must(t, err, "lock")
			again.ca = openRestored(t, src.dir)
			after := again.workload(60)
			again.stop()
			must(t, os.Remove(dbPath), "remove database")
			return again, set, after
		}, "diverged"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, set, after := tc.prepare(t)
			damaged := treeDigest(t, src.dir.LogDir())
			rep, err := Restore(ctx, Options{SetDir: set, Dir: src.dir, Force: true, RecoverNow: true, Logger: testLogger(t)})
			must(t, err, "restore")
			res := rep.Recovery
			if res.LiveRecords != 0 || !strings.Contains(res.CatchUpSkipped, tc.reason) {
				t.Fatalf("catch-up: %d live records, skipped because %q; want a reason with %q", res.LiveRecords, res.CatchUpSkipped, tc.reason)
			}
			// Every live generation that is not in the log directory any
			// more is in the set-aside directory, unchanged.
			now := treeDigest(t, src.dir.LogDir())
			aside := treeDigest(t, filepath.Join(res.SetAside, "log"))
			for name, sum := range damaged {
				if now[name] != sum && aside[name] != sum {
					t.Fatalf("live file %s was neither kept nor set aside", name)
				}
			}
			c := openRestored(t, src.dir)
			if _, err := c.CertificateBySerial(ctx, after[len(after)-1]); err == nil {
				t.Fatal("a certificate issued after the backup is present without catch-up")
			}
			_, err = c.Submit(ctx, "tester", csrFor(t, src.key, "next"), "tls-server")
			must(t, err, "issue after recovery")
		})
	}
}

// replaceLogs replaces the generations in dir by those of src.
func replaceLogs(t *testing.T, dir, src string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err, "list")
	for _, e := range ents {
		must(t, os.Remove(filepath.Join(dir, e.Name())), "remove")
	}
	copyTree(t, dir, src)
}

package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/certsrv/certsrv/internal/wal"
)

// TestRecoverRefusesBadInputs damages what a completed restore left for
// hard recovery, one way at a time: recovery refuses before changing
// anything, and the record stays "complete".
func TestRecoverRefusesBadInputs(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	other := newSource(t)
	set := filepath.Join(t.TempDir(), "set")
	older := filepath.Join(t.TempDir(), "older")
	src.workload(1)
	src.fullBackup(older, backupOptions{})
	src.workload(3)
	_, err := src.ca.Store().RollLog() // the set's logs start after the older snapshot's
	must(t, err, "roll")
	src.workload(1)
	src.fullBackup(set, backupOptions{withKey: true})
	src.workload(20)
	src.incrementalBackup(set)
	for i := 0; i < 4; i++ { // generations 1..5, one of them numbered like the set's first
		other.workload(1)
		_, err := other.ca.Store().RollLog()
		must(t, err, "roll")
	}
	src.stop()
	other.stop()

	cases := []struct {
		name   string
		damage func(t *testing.T, dir string, rec *Record)
		want   error
	}{
		{"extra generation", func(t *testing.T, dir string, rec *Record) {
			copyFile(t, filepath.Join(rec.BackupLogDir, wal.FileName("ca", rec.HighGen+1)), filepath.Join(rec.BackupLogDir, wal.FileName("ca", rec.HighGen)))
		}, ErrBackupLogs},
		{"missing generation", func(t *testing.T, dir string, rec *Record) {
			must(t, os.Remove(filepath.Join(rec.BackupLogDir, wal.FileName("ca", rec.HighGen))), "remove")
		}, ErrBackupLogs},
		{"truncated generation", func(t *testing.T, dir string, rec *Record) {
			p := filepath.Join(rec.BackupLogDir, wal.FileName("ca", rec.HighGen))
			fi, err := os.Stat(p)
			must(t, err, "stat")
			must(t, os.Truncate(p, fi.Size()-3), "truncate")
		}, wal.ErrCorrupt},
		{"generation of another log set", func(t *testing.T, dir string, rec *Record) {
			copyFile(t, filepath.Join(rec.BackupLogDir, wal.FileName("ca", rec.LowGen)), filepath.Join(other.dir.LogDir(), wal.FileName("ca", rec.LowGen)))
		}, wal.ErrSignature},
		{"write-ahead log beside the database", func(t *testing.T, dir string, rec *Record) {
			must(t, os.WriteFile(rec.DatabasePath()+"-wal", []byte("stale"), 0o600), "write")
		}, ErrDatabase},
		{"another snapshot position", func(t *testing.T, dir string, rec *Record) {
			rec.SnapshotLSN++
			must(t, writeRecordFile(filepath.Join(dir, "restore", RecordFile), rec), "rewrite record")
		}, ErrDatabase},
		{"logs that do not reach back to the snapshot", func(t *testing.T, dir string, rec *Record) {
			// An older snapshot of the same database: the logs start
			// after it.
			copyFile(t, rec.DatabasePath(), filepath.Join(older, "DataBase", src.name+".db"))
			rec.SnapshotLSN = 0
			must(t, writeRecordFile(filepath.Join(dir, "restore", RecordFile), rec), "rewrite record")
		}, ErrBackupLogs},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := newTarget(t)
			_, err := Restore(ctx, Options{SetDir: set, Dir: target, Password: testPassword})
			must(t, err, "restore")
			rec, err := Pending(target)
			must(t, err, "pending")
			if rec.HighGen <= rec.LowGen {
				t.Fatalf("the set should hold several generations, has %d..%d", rec.LowGen, rec.HighGen)
			}
			tc.damage(t, target.Root, rec)
			before := treeDigest(t, target.Root)
			_, err = Recover(ctx, target, RecoverOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("recover: %v, want %v", err, tc.want)
			}
			t.Logf("refused: %v", err)
			sameTree(t, before, treeDigest(t, target.Root))
			after, err := Pending(target)
			if err != nil || after.State != StateComplete {
				t.Fatalf("record after the refusal: %+v, %v", after, err)
			}
		})
	}
}

func copyFile(t *testing.T, dst, src string) {
	t.Helper()
	b, err := os.ReadFile(src)
	must(t, err, "read "+src)
	must(t, os.WriteFile(dst, b, 0o600), "write "+dst)
}

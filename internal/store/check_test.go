package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// cloneLayout copies a closed database's files into a new directory.
func cloneLayout(t *testing.T, src Options) Options {
	t.Helper()
	dst := testLayout(t.TempDir())
	copyDir(t, filepath.Dir(dst.DBPath), filepath.Dir(src.DBPath))
	copyDir(t, dst.LogDir, src.LogDir)
	copyDir(t, dst.SysDir, src.SysDir)
	return dst
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	mustf(t, err, "open")
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	mustf(t, err, "read")
	b[0] ^= 0x5A
	_, err = f.WriteAt(b, off)
	mustf(t, err, "write")
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	base, _ := closedDB(t, 8<<10, 15)
	other, _ := closedDB(t, 0, 1)
	gens, err := wal.ScanDir(ctx, base.LogDir, "", wal.Signature{})
	mustf(t, err, "scan")
	if len(gens) < 4 {
		t.Fatalf("only %d generations", len(gens))
	}

	t.Run("Healthy", func(t *testing.T) {
		r, err := Check(ctx, cloneLayout(t, base))
		mustf(t, err, "check")
		if !r.OK() || r.Meta == nil || r.Checkpoint == nil || len(r.Logs) != len(gens) {
			t.Fatalf("healthy database reported:\n%s", r)
		}
		if s := r.String(); !strings.Contains(s, "result: OK") || !strings.Contains(s, "integrity_check: ok") {
			t.Fatalf("report:\n%s", s)
		}
	})

	cases := []struct {
		name      string
		damage    func(o Options)
		component string
		want      error
	}{
		{"DatabasePage", func(o Options) {
			// Change a byte inside the last cell of the serial index's
			// root page: the index no longer matches the table.
			root := queryInt(t, o.DBPath, `SELECT rootpage FROM sqlite_schema WHERE name = 'sqlite_autoindex_requests_1'`)
			size := queryInt(t, o.DBPath, `PRAGMA page_size`)
			flipByte(t, o.DBPath, root*size-8)
		}, "database", ErrIntegrity},
		{"DatabaseMissing", func(o Options) { os.Remove(o.DBPath) }, "database", ErrNoDatabase},
		{"CheckpointMissing", func(o Options) { os.Remove(o.CheckpointPath()) }, "checkpoint", ErrCheckpointMissing},
		{"CheckpointCorrupt", func(o Options) { flipByte(t, o.CheckpointPath(), 47) }, "checkpoint", ErrCheckpointCorrupt},
		{"CheckpointOfAnotherDatabase", func(o Options) { copyFile(t, o.CheckpointPath(), other.CheckpointPath()) }, "checkpoint", ErrCheckpointMismatch},
		{"LogRecordCorrupt", func(o Options) {
			flipByte(t, filepath.Join(o.LogDir, filepath.Base(gens[1].Path)), wal.HeaderSize+100)
		}, "log generation 2", wal.ErrCorrupt},
		{"LogGenerationMissing", func(o Options) {
			os.Remove(filepath.Join(o.LogDir, filepath.Base(gens[2].Path)))
		}, "log generation 3", ErrMissingLog},
		{"LogsOfAnotherLogSet", func(o Options) {
			for _, g := range gens {
				os.Remove(filepath.Join(o.LogDir, filepath.Base(g.Path)))
			}
			copyDir(t, o.LogDir, other.LogDir)
		}, "log generation 1", ErrSignatureMismatch},
		{"LogsBehindDatabase", func(o Options) {
			// Only generation 1 is left: the log ends before the
			// database's applied_lsn.
			for _, g := range gens[1:] {
				os.Remove(filepath.Join(o.LogDir, filepath.Base(g.Path)))
			}
		}, "logs", ErrLogBehind},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := cloneLayout(t, base)
			c.damage(o)
			r, err := Check(ctx, o)
			mustf(t, err, "check")
			found := false
			for _, p := range r.Problems {
				if p.Component == c.component && errors.Is(p.Err, c.want) {
					found = true
				}
			}
			if !found || r.OK() {
				t.Fatalf("want a %q problem matching %v; report:\n%s", c.component, c.want, r)
			}
			t.Logf("report:\n%s", r)
			if !strings.Contains(r.String(), "problem(s)") {
				t.Fatalf("report does not list problems:\n%s", r)
			}
		})
	}

	t.Run("TornTailIsNotAProblem", func(t *testing.T) {
		o := cloneLayout(t, base)
		newest := filepath.Join(o.LogDir, filepath.Base(gens[len(gens)-1].Path))
		f, err := os.OpenFile(newest, os.O_WRONLY|os.O_APPEND, 0)
		mustf(t, err, "open")
		f.Write([]byte{40, 0, 0, 0, 1, 2}) // a partial record header
		f.Close()
		r, err := Check(ctx, o)
		mustf(t, err, "check")
		if !r.OK() || !strings.Contains(r.String(), "torn tail") {
			t.Fatalf("torn tail report:\n%s", r)
		}
	})
}

// TestCheckReportBackups checks how the report shows the checkpoint's last
// backups: an incremental older than the last full is marked as such.
func TestCheckReportBackups(t *testing.T) {
	ts := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	full := &BackupRecord{Type: BackupFull, FirstGen: 3, LastGen: 3, FirstLSN: 12, LastLSN: 12, Time: ts}
	before := &BackupRecord{Type: BackupLogsOnly, FirstGen: 2, LastGen: 2, FirstLSN: 7, LastLSN: 10, Time: ts.Add(-time.Hour)}
	after := &BackupRecord{Type: BackupLogsOnly, FirstGen: 4, LastGen: 4, FirstLSN: 13, LastLSN: 15, Time: ts.Add(time.Hour)}
	for _, tc := range []struct {
		incr   *BackupRecord
		marked bool
	}{{before, true}, {after, false}} {
		r := &CheckReport{Checkpoint: &Checkpoint{LastFull: full, LastIncremental: tc.incr}}
		s := r.String()
		if !strings.Contains(s, "last full backup: generations 3-3, LSNs 12-12") ||
			!strings.Contains(s, fmt.Sprintf("last incremental backup: generations %d-%d", tc.incr.FirstGen, tc.incr.LastGen)) ||
			strings.Contains(s, "(before the last full backup)") != tc.marked {
			t.Errorf("incremental %d-%d, marked %v:\n%s", tc.incr.FirstLSN, tc.incr.LastLSN, tc.marked, s)
		}
	}
}

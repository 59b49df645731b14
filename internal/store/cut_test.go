package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/certsrv/certsrv/internal/wal"
)

// pitrBase is a closed database for point-in-time tests: a snapshot copy
// taken at LSN snapLSN, then more writes; at midLSN a full backup covering
// LSNs up to midLSN was recorded and the live dump taken; the log goes on
// to lastLSN in several generations.
type pitrBase struct {
	opts              Options
	snapPath          string
	snapLSN           uint64
	midLSN, lastLSN   uint64
	midDump, lastDump *Dump
	gens              []wal.GenInfo
}

func makePITRBase(t *testing.T) *pitrBase {
	t.Helper()
	ctx := context.Background()
	b := &pitrBase{opts: testOptions(t)}
	b.opts.SegmentSize = 4 << 10
	d := createDB(t, b.opts)
	workload(t, d, 3)
	s, err := d.Snapshot(ctx)
	mustf(t, err, "snapshot")
	b.snapLSN = s.LSN()
	b.snapPath = copySnapshot(t, s, t.TempDir())
	mustf(t, s.Close(), "close snapshot")
	workload(t, d, 6)
	b.midLSN = d.LastLSN()
	b.midDump = mustDump(t, d)
	mustf(t, d.RecordBackup(ctx, BackupRecord{Type: BackupFull, FirstGen: 1, LastGen: d.log.Current(), FirstLSN: b.snapLSN + 1, LastLSN: b.midLSN}), "record backup")
	workload(t, d, 6)
	b.lastLSN = d.LastLSN()
	b.lastDump = mustDump(t, d)
	mustf(t, d.Close(), "close")
	b.gens, err = wal.ScanDir(ctx, b.opts.LogDir, "", wal.Signature{})
	mustf(t, err, "scan")
	if len(b.gens) < 6 {
		t.Fatalf("only %d generations", len(b.gens))
	}
	return b
}

// restored returns a copy of the base whose database file is the snapshot
// replayed up to lsn.
func (b *pitrBase) restored(t *testing.T, lsn uint64) Options {
	t.Helper()
	o := cloneLayout(t, b.opts)
	o.SegmentSize = b.opts.SegmentSize
	for _, sfx := range []string{"-wal", "-shm"} {
		os.Remove(o.DBPath + sfx)
	}
	copyFile(t, o.DBPath, b.snapPath)
	res, err := Replay(context.Background(), ReplayOptions{DBPath: o.DBPath, LogDirs: []string{o.LogDir}, UntilLSN: lsn})
	mustf(t, err, "replay until %d", lsn)
	if res.AppliedLSN != lsn {
		t.Fatalf("replay until %d ended at %d", lsn, res.AppliedLSN)
	}
	return o
}

// TestCutLogAfterPointInTime restores the snapshot, replays it to a point
// in time, cuts the live log there and opens the database: nothing more is
// replayed, the data is that of the point in time, new writes continue the
// log, a reopen works, Check is clean, and the generations moved away are
// the originals.
func TestCutLogAfterPointInTime(t *testing.T) {
	ctx := context.Background()
	b := makePITRBase(t)
	var mid, end wal.GenInfo // a generation after the snapshot with several records
	for i, g := range b.gens[:len(b.gens)-1] {
		if g.FirstLSN > b.snapLSN+1 && g.LastLSN > g.FirstLSN+1 && mid.Gen == 0 {
			mid, end = g, b.gens[i]
		}
	}
	if mid.Gen == 0 {
		t.Fatalf("no generation after the snapshot (LSN %d) with records", b.snapLSN)
	}
	last := b.gens[len(b.gens)-1]
	cases := []struct {
		name    string
		lsn     uint64
		cutGen  uint32
		want    *Dump // nil: the replayed file's own dump
		noop    bool
		keepsCk bool // the old checkpoint does not point past the cut
	}{
		{"MiddleOfGeneration", (mid.FirstLSN + mid.LastLSN) / 2, mid.Gen, nil, false, false},
		{"GenerationEnd", end.LastLSN, end.Gen + 1, nil, false, false},
		{"LiveState", b.midLSN, 0, b.midDump, false, false},
		{"LastLSN", b.lastLSN, last.Gen, b.lastDump, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := b.restored(t, tc.lsn)
			want := tc.want
			if want == nil {
				var err error
				want, err = DumpFile(ctx, o.DBPath)
				mustf(t, err, "dump the replayed file")
			}
			keep := filepath.Join(t.TempDir(), "after-cut")
			cut, err := CutLogAfter(ctx, o, tc.lsn, keep)
			mustf(t, err, "cut after %d", tc.lsn)
			if tc.cutGen != 0 && cut.Gen != tc.cutGen {
				t.Fatalf("cut generation %d, want %d", cut.Gen, tc.cutGen)
			}
			if tc.noop != (len(cut.Moved) == 0 && cut.Cut == 0) {
				t.Fatalf("cut %+v: no-op %v expected", cut.CutResult, tc.noop)
			}
			// The checkpoint pointed at lastLSN: rewritten unless the cut is there.
			ck, err := readCheckpoint(o.CheckpointPath())
			mustf(t, err, "read checkpoint")
			if tc.keepsCk {
				if cut.Checkpoint != nil || ck.LSN != b.lastLSN || ck.LastFull == nil {
					t.Fatalf("checkpoint rewritten for a no-op cut: %+v", ck)
				}
			} else {
				if cut.Checkpoint == nil || ck.LSN != tc.lsn || ck.Gen != cut.Gen || ck.Written != cut.Checkpoint.Written {
					t.Fatalf("checkpoint after the cut: %+v (cut generation %d)", ck, cut.Gen)
				}
				if hasBackup := ck.LastFull != nil; hasBackup != (tc.lsn >= b.midLSN) {
					t.Fatalf("checkpoint's last full backup %+v after a cut at %d (backup covers up to %d)", ck.LastFull, tc.lsn, b.midLSN)
				}
			}
			// Every moved generation is the original, byte for byte.
			for _, g := range cut.Moved {
				name := wal.FileName("ca", g)
				orig, err := os.ReadFile(filepath.Join(b.opts.LogDir, name))
				mustf(t, err, "original %s", name)
				kept, err := os.ReadFile(filepath.Join(keep, name))
				mustf(t, err, "kept %s", name)
				if !bytes.Equal(orig, kept) {
					t.Fatalf("kept %s differs from the original", name)
				}
			}
			if len(cut.Moved) > 0 && cut.Moved[len(cut.Moved)-1] != last.Gen {
				t.Fatalf("moved %v, the log ended in generation %d", cut.Moved, last.Gen)
			}

			d := openDB(t, o)
			if r := d.Recovery(); r.Records != 0 || d.LastLSN() != tc.lsn {
				t.Fatalf("open after the cut replayed %+v; log ends at %d, want %d", r, d.LastLSN(), tc.lsn)
			}
			if got := mustDump(t, d); !reflect.DeepEqual(got, want) {
				t.Fatal("the database after the cut is not the point-in-time state")
			}
			workload(t, d, 4)
			after := mustDump(t, d)
			mustf(t, d.Close(), "close")
			d = openDB(t, o)
			if got := mustDump(t, d); !reflect.DeepEqual(got, after) || d.Recovery().Records != 0 {
				t.Fatal("reopen after new writes differs")
			}
			mustf(t, d.Close(), "close")
			r, err := Check(ctx, o)
			mustf(t, err, "check")
			if !r.OK() {
				t.Fatalf("check after the cut:\n%s", r)
			}
			if r.Logs[0].Gen != 1 || r.Logs[len(r.Logs)-1].Gen <= cut.Gen {
				t.Fatalf("log after the cut and new writes: generations %d..%d", r.Logs[0].Gen, r.Logs[len(r.Logs)-1].Gen)
			}
		})
	}
}

// TestCutLogAfterRefuses: a cut point outside the log, a database past the
// cut point and a checkpoint of another database are refused, and nothing
// changes.
func TestCutLogAfterRefuses(t *testing.T) {
	ctx := context.Background()
	b := makePITRBase(t)
	unchanged := func(t *testing.T, o Options, keep string) {
		t.Helper()
		for _, g := range b.gens {
			got, err := os.ReadFile(filepath.Join(o.LogDir, filepath.Base(g.Path)))
			want, _ := os.ReadFile(g.Path)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("generation %d changed: %v", g.Gen, err)
			}
		}
		if _, err := os.Stat(keep); !os.IsNotExist(err) {
			t.Fatalf("keep directory made: %v", err)
		}
	}
	t.Run("BelowTheLog", func(t *testing.T) {
		o := b.restored(t, b.snapLSN)
		// The generations up to the one holding S+2 are gone.
		var gone []wal.GenInfo
		for _, g := range b.gens {
			if g.BaseLSN <= b.snapLSN+2 {
				gone = append(gone, g)
				mustf(t, os.Remove(filepath.Join(o.LogDir, filepath.Base(g.Path))), "remove")
			}
		}
		keep := filepath.Join(t.TempDir(), "keep")
		_, err := CutLogAfter(ctx, o, b.snapLSN, keep)
		var re *wal.RangeError
		if !errors.As(err, &re) || !errors.Is(err, wal.ErrOutOfRange) || !errors.Is(err, wal.ErrMissingGeneration) {
			t.Fatalf("cut below the oldest generation: %v", err)
		}
		if _, err := os.Stat(keep); !os.IsNotExist(err) {
			t.Fatalf("keep directory made: %v", err)
		}
	})
	t.Run("PastTheEnd", func(t *testing.T) {
		o := b.restored(t, b.snapLSN)
		keep := filepath.Join(t.TempDir(), "keep")
		_, err := CutLogAfter(ctx, o, b.lastLSN+1, keep)
		if !errors.Is(err, wal.ErrOutOfRange) || errors.Is(err, wal.ErrMissingGeneration) {
			t.Fatalf("cut past the end: %v", err)
		}
		unchanged(t, o, keep)
	})
	t.Run("DatabaseAhead", func(t *testing.T) {
		o := cloneLayout(t, b.opts) // the live database, at lastLSN
		keep := filepath.Join(t.TempDir(), "keep")
		if _, err := CutLogAfter(ctx, o, b.midLSN, keep); !errors.Is(err, ErrLogBehind) {
			t.Fatalf("cut before the database's applied LSN: %v", err)
		}
		unchanged(t, o, keep)
	})
	t.Run("ForeignCheckpoint", func(t *testing.T) {
		o := b.restored(t, b.midLSN)
		other, _ := closedDB(t, 0, 1)
		copyFile(t, o.CheckpointPath(), other.CheckpointPath())
		keep := filepath.Join(t.TempDir(), "keep")
		if _, err := CutLogAfter(ctx, o, b.midLSN, keep); !errors.Is(err, ErrCheckpointMismatch) {
			t.Fatalf("cut with another database's checkpoint: %v", err)
		}
		unchanged(t, o, keep)
	})
	t.Run("NoDatabase", func(t *testing.T) {
		o := cloneLayout(t, b.opts)
		mustf(t, os.Remove(o.DBPath), "remove database")
		if _, err := CutLogAfter(ctx, o, b.midLSN, t.TempDir()); !errors.Is(err, ErrNoDatabase) {
			t.Fatalf("cut without a database: %v", err)
		}
	})
	t.Run("MissingCheckpointStaysMissing", func(t *testing.T) {
		o := b.restored(t, b.midLSN)
		mustf(t, os.Remove(o.CheckpointPath()), "remove checkpoint")
		cut, err := CutLogAfter(ctx, o, b.midLSN, filepath.Join(t.TempDir(), "keep"))
		if err != nil || cut.Checkpoint != nil || len(cut.Moved) == 0 {
			t.Fatalf("cut without a checkpoint: %+v, %v", cut, err)
		}
		if _, err := os.Stat(o.CheckpointPath()); !os.IsNotExist(err) {
			t.Fatalf("a checkpoint appeared: %v", err)
		}
		d := openDB(t, o)
		if d.LastLSN() != b.midLSN || d.CheckpointInfo().LSN != b.midLSN {
			t.Fatalf("open: log ends at %d, checkpoint %d", d.LastLSN(), d.CheckpointInfo().LSN)
		}
	})
}

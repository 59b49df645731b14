package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// TestHoldLogsLimitsTruncateLogs: TruncateLogs never deletes a held
// generation or a later one and says so; holds stack; release is
// idempotent and releases only its own hold.
func TestHoldLogsLimitsTruncateLogs(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	d := createDB(t, opts)
	workload(t, d, 25)
	_, err := d.RollLog()
	mustf(t, err, "roll")
	gens := d.Generations()
	if len(gens) < 6 {
		t.Fatalf("only %d generations", len(gens))
	}
	held := gens[2].Gen
	release := d.HoldLogs(held)

	res, err := d.TruncateLogs(ctx, 1000)
	mustf(t, err, "truncate")
	if !reflect.DeepEqual(res.Deleted, []uint32{gens[0].Gen, gens[1].Gen}) {
		t.Fatalf("deleted %v with generation %d held", res.Deleted, held)
	}
	if want := fmt.Sprintf("kept generation %d and later: generation %d is held by a backup in progress", held, held); !strings.Contains(res.Reason, want) {
		t.Fatalf("reason %q does not contain %q", res.Reason, want)
	}
	res, err = d.TruncateLogs(ctx, 1000)
	mustf(t, err, "truncate again")
	if want := fmt.Sprintf("nothing: generation %d is held by a backup in progress", held); res.Count() != 0 || res.Reason != want {
		t.Fatalf("second truncate: %+v, want reason %q", res, want)
	}
	// A generation already gone is reported as such, hold or not.
	res, err = d.TruncateLogs(ctx, gens[0].Gen)
	mustf(t, err, "truncate below")
	if res.Count() != 0 || !strings.Contains(res.Reason, "already gone") {
		t.Fatalf("truncate of deleted generations: %+v", res)
	}

	// A second hold one generation later; releasing the first (twice)
	// leaves the second in force.
	release2 := d.HoldLogs(held + 1)
	release()
	release()
	res, err = d.TruncateLogs(ctx, 1000)
	mustf(t, err, "truncate with the second hold")
	if !reflect.DeepEqual(res.Deleted, []uint32{held}) || !strings.Contains(res.Reason, fmt.Sprintf("generation %d is held", held+1)) {
		t.Fatalf("with generation %d held: %+v", held+1, res)
	}
	// A hold of generation 0 holds everything.
	release0 := d.HoldLogs(0)
	release2()
	res, err = d.TruncateLogs(ctx, 1000)
	mustf(t, err, "truncate with everything held")
	if res.Count() != 0 || res.Reason != "nothing: generation 0 is held by a backup in progress" {
		t.Fatalf("with everything held: %+v", res)
	}
	release0()
	// No hold left: the checkpoint is the only limit.
	res, err = d.TruncateLogs(ctx, 1000)
	mustf(t, err, "truncate without holds")
	ck := d.CheckpointInfo()
	if res.Count() == 0 || res.Deleted[len(res.Deleted)-1] != ck.Gen-1 || !strings.Contains(res.Reason, "holds the checkpoint") {
		t.Fatalf("without holds: %+v, checkpoint generation %d", res, ck.Gen)
	}
	for _, g := range gens {
		if _, err := os.Stat(g.Path); (err == nil) != (g.Gen >= ck.Gen) {
			t.Errorf("generation %d present=%v, checkpoint generation %d", g.Gen, err == nil, ck.Gen)
		}
	}
}

// TestCircularLoggingKeepsSnapshotLogs: with circular logging, checkpoints
// (explicit and periodic) and rolls while a snapshot is open delete nothing
// from the generation holding S+1 on, so the log a full backup lists stays
// readable; after Close the next checkpoint deletes them.
func TestCircularLoggingKeepsSnapshotLogs(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	opts.CircularLogging = true
	opts.CheckpointGenerations = 1 // the background goroutine checkpoints after every roll
	d := createDB(t, opts)
	workload(t, d, 6)
	s, err := d.Snapshot(ctx)
	mustf(t, err, "snapshot")
	defer s.Close()
	g0 := s.LogGen()
	var holder wal.GenInfo
	for _, g := range d.Generations() {
		if g.BaseLSN <= s.LSN()+1 {
			holder = g
		}
	}
	if g0 != holder.Gen {
		t.Fatalf("snapshot at LSN %d holds from generation %d; record %d is in generation %d", s.LSN(), g0, s.LSN()+1, holder.Gen)
	}
	workload(t, d, 12)
	_, err = d.RollLog()
	mustf(t, err, "roll")
	mustf(t, d.Checkpoint(ctx), "checkpoint")
	// Wait for a periodic checkpoint after the roll as well.
	ckGen := d.CheckpointInfo().Gen
	for deadline := time.Now().Add(5 * time.Second); d.CheckpointInfo().Gen == ckGen && time.Now().Before(deadline); {
		_, err := d.RollLog()
		mustf(t, err, "roll")
		sleepMS(300)
	}
	ck := d.CheckpointInfo()
	if ck.Gen <= ckGen || ck.Gen < g0+3 {
		t.Fatalf("checkpoint generation %d (was %d), snapshot holds from %d: no checkpoint passed it", ck.Gen, ckGen, g0)
	}
	gens := d.Generations()
	if gens[0].Gen != g0 {
		t.Fatalf("oldest generation %d with generation %d held (checkpoint generation %d)", gens[0].Gen, g0, ck.Gen)
	}
	for g := g0; g < ck.Gen; g++ {
		if _, err := os.Stat(genPath(opts, g)); err != nil {
			t.Fatalf("held generation %d: %v", g, err)
		}
	}
	// Everything a full backup with this snapshot needs is readable.
	n := uint64(0)
	mustf(t, d.log.ReadFrom(ctx, s.LSN()+1, func(r wal.Record) error { n++; return nil }), "read from S+1")
	if want := d.LastLSN() - s.LSN(); n != want {
		t.Fatalf("read %d records after S, want %d", n, want)
	}
	res, err := d.TruncateLogs(ctx, 1000)
	mustf(t, err, "truncate")
	if want := fmt.Sprintf("nothing: generation %d is held by a backup in progress", g0); res.Count() != 0 || res.Reason != want {
		t.Fatalf("truncate while a snapshot is open: %+v", res)
	}

	mustf(t, s.Close(), "close snapshot")
	mustf(t, d.Checkpoint(ctx), "checkpoint after close")
	ck = d.CheckpointInfo()
	if gens := d.Generations(); gens[0].Gen != ck.Gen {
		t.Fatalf("after the snapshot closed: oldest %d, checkpoint generation %d", gens[0].Gen, ck.Gen)
	}
	for g := g0; g < ck.Gen; g++ {
		if _, err := os.Stat(genPath(opts, g)); !os.IsNotExist(err) {
			t.Fatalf("generation %d still present after the hold ended: %v", g, err)
		}
	}
}

// TestSnapshotHoldUnderLoad takes snapshots while writers roll the log and
// the background goroutine checkpoints with circular logging after every
// roll; each snapshot's records from S+1 must stay readable until it is
// closed.
func TestSnapshotHoldUnderLoad(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	opts.CircularLogging = true
	opts.CheckpointGenerations = 1
	d := createDB(t, opts)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := d.Enroll(ctx, testRequest("load"), testCert("load")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for i := 0; i < 6; i++ {
		sleepMS(50)
		s, err := d.Snapshot(ctx)
		mustf(t, err, "snapshot %d", i)
		// Let the writers roll past it and the checkpoints follow.
		start := d.log.Current()
		for deadline := time.Now().Add(5 * time.Second); d.CheckpointInfo().Gen < start+2 && time.Now().Before(deadline); {
			sleepMS(20)
		}
		if ck := d.CheckpointInfo(); ck.Gen < start+2 {
			t.Fatalf("snapshot %d: checkpoint generation %d did not pass %d", i, ck.Gen, start+2)
		}
		var last uint64
		err = d.log.ReadFrom(ctx, s.LSN()+1, func(r wal.Record) error { last = r.LSN; return nil })
		if err != nil || last <= s.LSN() {
			t.Fatalf("snapshot %d (S=%d, generation %d): records after S: last %d, %v", i, s.LSN(), s.LogGen(), last, err)
		}
		mustf(t, s.Close(), "close snapshot %d", i)
	}
	select {
	case err := <-errs:
		t.Fatalf("writer: %v", err)
	default:
	}
}

func genPath(o Options, g uint32) string {
	return filepath.Join(o.LogDir, wal.FileName(o.Layout.base(), g))
}

// TestSnapshotReleaseLogs: a full backup that has copied its logs ends the
// snapshot's hold with ReleaseLogs; TruncateLogs then deletes the copied
// generations while the snapshot stays open and readable.
func TestSnapshotReleaseLogs(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	d := createDB(t, opts)
	workload(t, d, 4)
	s, err := d.Snapshot(ctx)
	mustf(t, err, "snapshot")
	defer s.Close()
	workload(t, d, 12)
	sealed, err := d.RollLog()
	mustf(t, err, "roll")
	res, err := d.TruncateLogs(ctx, sealed)
	mustf(t, err, "truncate while held")
	for _, g := range res.Deleted {
		if g >= s.LogGen() {
			t.Fatalf("deleted generation %d, held from %d", g, s.LogGen())
		}
	}
	if !strings.Contains(res.Reason, fmt.Sprintf("generation %d is held by a backup in progress", s.LogGen())) {
		t.Fatalf("truncate while held: %+v", res)
	}
	s.ReleaseLogs()
	s.ReleaseLogs()
	res, err = d.TruncateLogs(ctx, sealed)
	mustf(t, err, "truncate after ReleaseLogs")
	ck := d.CheckpointInfo()
	if res.Count() == 0 || res.Deleted[0] > s.LogGen() || res.Deleted[len(res.Deleted)-1] != min(sealed, ck.Gen-1) {
		t.Fatalf("truncate after ReleaseLogs: %+v (held from %d, sealed %d, checkpoint generation %d)", res, s.LogGen(), sealed, ck.Gen)
	}
	// The pin is untouched: the snapshot still reads whole and consistent.
	path := copySnapshot(t, s, t.TempDir())
	if got := integrityCheck(t, path); got != "ok" {
		t.Fatalf("snapshot after ReleaseLogs: integrity_check %q", got)
	}
	dump, err := DumpFile(ctx, path)
	mustf(t, err, "dump snapshot")
	if dump.Meta.AppliedLSN != s.LSN() {
		t.Fatalf("snapshot copy at LSN %d, want %d", dump.Meta.AppliedLSN, s.LSN())
	}
	mustf(t, s.Close(), "close")
	s.ReleaseLogs() // after Close: nothing to do
}

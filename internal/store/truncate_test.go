package store

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/wal"
)

func genNumbers(gs []wal.GenInfo) []uint32 {
	var out []uint32
	for _, g := range gs {
		out = append(out, g.Gen)
	}
	return out
}

func TestTruncateLogsSafety(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	d := createDB(t, opts)
	workload(t, d, 10)
	sealed, err := d.RollLog()
	mustf(t, err, "roll")
	gens := d.Generations()
	if len(gens) < 4 || gens[len(gens)-1].Gen != sealed+1 || !gens[len(gens)-2].Sealed {
		t.Fatalf("generations after roll: %v (sealed %d)", genNumbers(gens), sealed)
	}

	// Ask for far more than allowed: only generations below the
	// checkpoint generation go, and the result lists exactly them.
	res, err := d.TruncateLogs(ctx, 1000)
	mustf(t, err, "truncate")
	ck := d.CheckpointInfo()
	if ck.LSN != d.LastLSN() {
		t.Fatalf("truncate did not checkpoint first: checkpoint LSN %d, log %d", ck.LSN, d.LastLSN())
	}
	var want []uint32
	for _, g := range gens {
		if g.Gen < ck.Gen {
			want = append(want, g.Gen)
		}
	}
	if !reflect.DeepEqual(res.Deleted, want) || res.Count() != len(want) || len(want) == 0 {
		t.Fatalf("deleted %v, want %v (checkpoint generation %d)", res.Deleted, want, ck.Gen)
	}
	if !strings.Contains(res.Reason, "holds the checkpoint") {
		t.Errorf("reason %q does not say why later generations were kept", res.Reason)
	}
	for _, g := range gens {
		_, statErr := os.Stat(g.Path)
		if gone := os.IsNotExist(statErr); gone != (g.Gen < ck.Gen) {
			t.Errorf("generation %d: deleted=%v, checkpoint generation %d", g.Gen, gone, ck.Gen)
		}
	}
	if left := d.Generations(); left[0].Gen != ck.Gen {
		t.Fatalf("oldest generation left %d, checkpoint generation %d", left[0].Gen, ck.Gen)
	}

	// Nothing more can go: the answer says why.
	res, err = d.TruncateLogs(ctx, 1000)
	mustf(t, err, "truncate again")
	if res.Count() != 0 || !strings.HasPrefix(res.Reason, "nothing: generation") || !strings.Contains(res.Reason, "holds the checkpoint") {
		t.Fatalf("second truncate: %+v", res)
	}
	res, err = d.TruncateLogs(ctx, 1)
	mustf(t, err, "truncate below")
	if res.Count() != 0 || !strings.Contains(res.Reason, "already gone") {
		t.Fatalf("truncate through an already deleted generation: %+v", res)
	}

	// The database still opens and replays nothing after truncation.
	want2 := mustDump(t, d)
	mustf(t, d.Close(), "close")
	d2 := openDB(t, opts)
	if got := mustDump(t, d2); !reflect.DeepEqual(got, want2) {
		t.Fatal("dump differs after truncation and reopen")
	}
}

func TestTruncateLogsRespectsThroughGen(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	d := createDB(t, opts)
	workload(t, d, 10)
	if _, err := d.RollLog(); err != nil {
		t.Fatal(err)
	}
	gens := d.Generations()
	through := gens[1].Gen // a backup copied only the first two
	res, err := d.TruncateLogs(ctx, through)
	mustf(t, err, "truncate")
	if !reflect.DeepEqual(res.Deleted, []uint32{gens[0].Gen, gens[1].Gen}) {
		t.Fatalf("deleted %v, want the first two of %v", res.Deleted, genNumbers(gens))
	}
	if left := d.Generations(); left[0].Gen != gens[2].Gen {
		t.Fatalf("oldest left %d", left[0].Gen)
	}
}

func TestCircularLogging(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	opts.CircularLogging = true
	d := createDB(t, opts)
	if !d.CircularLogging() {
		t.Fatal("CircularLogging() false")
	}
	workload(t, d, 10)
	before := d.Generations()
	if len(before) < 3 {
		t.Fatalf("only %d generations", len(before))
	}
	mustf(t, d.Checkpoint(ctx), "checkpoint")
	ck := d.CheckpointInfo()
	after := d.Generations()
	if after[0].Gen != ck.Gen {
		t.Fatalf("after a checkpoint with circular logging: generations %v, checkpoint generation %d", genNumbers(after), ck.Gen)
	}
	for _, g := range before {
		if _, err := os.Stat(g.Path); (err == nil) != (g.Gen >= ck.Gen) {
			t.Errorf("generation %d present=%v, checkpoint generation %d", g.Gen, err == nil, ck.Gen)
		}
	}
	// Without circular logging a checkpoint deletes nothing.
	opts2 := testOptions(t)
	opts2.SegmentSize = 8 << 10
	d2 := createDB(t, opts2)
	workload(t, d2, 10)
	n := len(d2.Generations())
	mustf(t, d2.Checkpoint(ctx), "checkpoint")
	if len(d2.Generations()) != n {
		t.Fatal("a checkpoint deleted generations without circular logging")
	}
}

func TestPeriodicCheckpoint(t *testing.T) {
	opts := testOptions(t)
	opts.CheckpointInterval = 300 * 1e6 // 300ms
	d := createDB(t, opts)
	workload(t, d, 3)
	lsn := d.LastLSN()
	deadline := 100
	for d.CheckpointInfo().LSN < lsn && deadline > 0 {
		deadline--
		sleepMS(50)
	}
	if got := d.CheckpointInfo().LSN; got != lsn {
		t.Fatalf("periodic checkpoint LSN %d, want %d", got, lsn)
	}
}

func TestCheckpointAfterGenerations(t *testing.T) {
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	opts.CheckpointGenerations = 2
	d := createDB(t, opts)
	workload(t, d, 10) // several generations
	deadline := 100
	for d.CheckpointInfo().Gen+2 <= d.log.Current() && deadline > 0 {
		deadline--
		sleepMS(50)
	}
	if ck := d.CheckpointInfo(); ck.Gen+2 <= d.log.Current() {
		t.Fatalf("checkpoint generation %d, current %d: no checkpoint after rolling", ck.Gen, d.log.Current())
	}
}

//go:build linux

package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/mounttest"
)

// TestDiskFullStallsAndResumes fills the file system of the database file
// (a real tmpfs) while four writers enroll. Every write acknowledged is
// durable and ends up in the database; once the database is full, writes
// are refused with ErrStalled and nothing of them is recorded; the
// database is not failed and reads keep working. When space is freed, the
// held records are applied and writes are accepted again without
// reopening; reopening afterwards finds the same contents.
func TestDiskFullStallsAndResumes(t *testing.T) {
	opts := testOptions(t)
	opts.MinFreeSpace = -1 // the database file itself fills up
	dbDir := filepath.Dir(opts.Layout.DBPath)
	mounttest.Tmpfs(t, dbDir, 6<<20, false)
	// Most of the space goes to a file the operator will delete.
	filler := filepath.Join(dbDir, "filler")
	if err := os.WriteFile(filler, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := createDB(t, opts)

	var (
		mu    sync.Mutex
		acked []int64
	)
	var wg sync.WaitGroup
	stalledErrs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50000 {
				r, _, err := d.Enroll(ctx, testRequest(fmt.Sprintf("w%d-%d", w, i)), testCert(fmt.Sprintf("w%d-%d", w, i)))
				if err != nil {
					stalledErrs <- err
					return
				}
				mu.Lock()
				acked = append(acked, r.ID)
				mu.Unlock()
			}
			stalledErrs <- errors.New("the disk never filled")
		}()
	}
	wg.Wait()
	close(stalledErrs)
	for err := range stalledErrs {
		if !errors.Is(err, ErrStalled) || errors.Is(err, ErrFailed) {
			t.Fatalf("writer stopped with %v, want ErrStalled", err)
		}
	}
	if d.Stalled() == nil || d.failure() != nil {
		t.Fatalf("after the disk filled: stalled %v, failed %v", d.Stalled(), d.failure())
	}
	if _, err := d.Counts(ctx); err != nil {
		t.Fatalf("a read while stalled: %v", err)
	}
	if _, _, err := d.Enroll(ctx, testRequest("refused"), testCert("refused")); !errors.Is(err, ErrStalled) {
		t.Fatalf("a write while stalled: %v", err)
	}
	t.Logf("%d writes acknowledged before the stall", len(acked))

	// The operator frees space: writes are accepted again, no reopen.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, enrollOnceWritable(t, d, 30*time.Second).ID)
	if d.Stalled() != nil {
		t.Fatalf("still stalled after a write succeeded: %v", d.Stalled())
	}
	// Every acknowledged write is there, and nothing else.
	for _, id := range acked {
		if r, err := d.Request(ctx, id); err != nil || r.Status != StatusIssued {
			t.Fatalf("acknowledged request %d: %+v, %v", id, r, err)
		}
	}
	n, err := d.Counts(ctx)
	if err != nil || n.Requests != int64(len(acked)) {
		t.Fatalf("counts %+v, %v; want %d requests, the acknowledged ones", n, err, len(acked))
	}
	before, after := dumpAcrossReopen(t, d, opts)
	if !deepEqual(before.Requests, after.Requests) || before.Meta.AppliedLSN != after.Meta.AppliedLSN {
		t.Fatalf("reopened database differs: applied LSN %d, then %d", before.Meta.AppliedLSN, after.Meta.AppliedLSN)
	}
}

// TestFreeSpaceReserve: the log and the database share a file system that
// fills up. Writes are refused (ErrStalled) once its free space falls
// below the reserve, before either the log or the database runs out, so
// the database neither fails nor holds records; they are accepted again
// when space is freed.
func TestFreeSpaceReserve(t *testing.T) {
	dir := t.TempDir()
	mounttest.Tmpfs(t, dir, 24<<20, false)
	opts := testLayout(dir)
	opts.Logger = testLogger(t)
	opts.MinFreeSpace = 8 << 20
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 12<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := createDB(t, opts)
	acked, err := enrollUntilRefused(t, d, 200000)
	if !errors.Is(err, ErrStalled) || errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "below the reserve of 8.0 MiB") {
		t.Fatalf("writes stopped with %v, want ErrStalled naming the reserve", err)
	}
	if d.failure() != nil {
		t.Fatalf("the database failed: %v", d.failure())
	}
	if n, err := d.Counts(ctx); err != nil || n.Requests != int64(len(acked)) {
		t.Fatalf("counts %+v, %v; want the %d acknowledged requests", n, err, len(acked))
	}
	// What the reserve is for still gets written: a CRL, the full-backup
	// requirement.
	if _, err := d.RecordCRL(ctx, CRL{Number: 1, ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour), DER: fakeDER(2000)}); err != nil {
		t.Errorf("a CRL below the reserve: %v", err)
	}
	if err := d.SetNeedFullBackup(ctx, true); err != nil {
		t.Errorf("the full-backup requirement below the reserve: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Refused writes took no request ID.
	if r := enrollOnceWritable(t, d, 10*time.Second); r.ID != acked[len(acked)-1]+1 {
		t.Errorf("request ID after the refusals %d, want %d", r.ID, acked[len(acked)-1]+1)
	}
	if d.Stalled() != nil {
		t.Fatalf("still refusing writes: %v", d.Stalled())
	}
}

// Check reports the free space against the reserve, and says when the CA
// would refuse changes.
func TestCheckReportsFreeSpace(t *testing.T) {
	dir := t.TempDir()
	mounttest.Tmpfs(t, dir, 20<<20, false)
	opts := testLayout(dir)
	opts.MinFreeSpace = 4 << 20
	d := createDB(t, opts)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Space) != 1 || rep.Space[0].Low() || rep.Space[0].Reserve != 4<<20 || !strings.Contains(rep.String(), "(reserve 4.0 MiB)") {
		t.Fatalf("space with room to spare: %+v\n%s", rep.Space, rep)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, int64(st.Bavail)*int64(st.Bsize)-(1<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = Check(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Space) != 1 || !rep.Space[0].Low() || !rep.OK() || !strings.Contains(rep.String(), "BELOW the reserve of 4.0 MiB") {
		t.Fatalf("space below the reserve: %+v, ok %v\n%s", rep.Space, rep.OK(), rep)
	}
}

// TestLogDiskFull: the log's own file system fills up (no reserve kept).
// The log drops what it had not made durable, the write is refused with
// ErrStalled, the database does not fail, and writes succeed again once
// there is space; reopening finds every acknowledged write.
func TestLogDiskFull(t *testing.T) {
	opts := testOptions(t)
	opts.MinFreeSpace = -1
	mounttest.Tmpfs(t, opts.LogDir, 2<<20, false)
	filler := filepath.Join(opts.LogDir, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := createDB(t, opts)
	acked, err := enrollUntilRefused(t, d, 100000)
	if !errors.Is(err, ErrStalled) || errors.Is(err, ErrFailed) || d.failure() != nil {
		t.Fatalf("writes stopped with %v (failed: %v), want ErrStalled", err, d.failure())
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r, _, err := d.Enroll(ctx, testRequest("after"), testCert("after"))
	if err != nil {
		t.Fatalf("a write after space was freed: %v", err)
	}
	acked = append(acked, r.ID)
	before, after := dumpAcrossReopen(t, d, opts)
	if len(after.Requests) != len(acked) || !deepEqual(before.Requests, after.Requests) {
		t.Fatalf("reopened: %d requests (%d before), want the %d acknowledged", len(after.Requests), len(before.Requests), len(acked))
	}
}

// enrollUntilRefused enrolls one request after another, at most n, until
// one fails; it returns the IDs acknowledged and the error that stopped
// it (nil if none did).
func enrollUntilRefused(t *testing.T, d *DB, n int) ([]int64, error) {
	t.Helper()
	var acked []int64
	for i := range n {
		r, _, err := d.Enroll(context.Background(), testRequest(fmt.Sprint("r", i)), testCert(fmt.Sprint("r", i)))
		if err != nil {
			return acked, err
		}
		acked = append(acked, r.ID)
	}
	return acked, nil
}

// enrollOnceWritable enrolls a request, retrying while the database
// refuses writes with ErrStalled, for at most wait; any other error, or
// wait passing, fails the test.
func enrollOnceWritable(t *testing.T, d *DB, wait time.Duration) Request {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		r, _, err := d.Enroll(context.Background(), testRequest("after"), testCert("after"))
		if err == nil {
			return r
		}
		if !errors.Is(err, ErrStalled) || time.Now().After(deadline) {
			t.Fatalf("after space was freed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dumpAcrossReopen dumps d, closes it, reopens the database of opts and
// dumps it again.
func dumpAcrossReopen(t *testing.T, d *DB, opts Options) (before, after *Dump) {
	t.Helper()
	before, err := d.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	after, err = openDB(t, opts).Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return before, after
}

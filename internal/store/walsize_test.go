package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestSQLiteWALStaysBounded: under a steady load of writers and readers
// the SQLite WAL is never free of readers when a writer could start it
// over; the background backfill restarts it once it passes
// walRestartFrames, so it stays near that length instead of growing with
// every commit.
func TestSQLiteWALStaysBounded(t *testing.T) {
	defer func(n int64, every time.Duration) { walRestartFrames, walRestartEvery = n, every }(walRestartFrames, walRestartEvery)
	walRestartFrames, walRestartEvery = 64, 0
	d := createDB(t, testOptions(t))
	ctx := context.Background()
	if _, _, err := d.Enroll(ctx, testRequest("first"), testCert("first")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := 0; r < 4; r++ {
		readers.Add(1)
		time.Sleep(5 * time.Millisecond) // staggered
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A read transaction that lasts a while, as a busy CA's
				// many readers together do: some reader always holds
				// a snapshot of the WAL.
				tx, err := d.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				var n int64
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM requests`).Scan(&n); err != nil {
					t.Errorf("read: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
				tx.Rollback()
			}
		}()
	}
	var maxFrames, appended, prev int64
	// At least 2 s, and on until enough frames were appended to prove
	// something (a slow run, under the race detector say), for at most 20 s.
	start := time.Now()
	writes := 0
	for i := 0; time.Since(start) < 2*time.Second || (appended < 4000 && time.Since(start) < 20*time.Second); i++ {
		name := fmt.Sprintf("wal-%d", i)
		if _, _, err := d.Enroll(ctx, testRequest(name), testCert(name)); err != nil {
			t.Fatal(err)
		}
		writes++
		if i%100 == 0 {
			d.sqlCkptMu.Lock()
			_, frames, _, err := d.sqliteCheckpoint(ctx, "PASSIVE")
			d.sqlCkptMu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			maxFrames = max(maxFrames, frames)
			if frames >= prev {
				appended += frames - prev
			} else {
				appended += frames // restarted since
			}
			prev = frames
		}
	}
	close(stop)
	readers.Wait()
	t.Logf("%d writes appended at least %d frames; the WAL held at most %d", writes, appended, maxFrames)
	if appended < 2000 {
		t.Fatalf("only %d frames appended in %s: the test proves nothing", appended, time.Since(start).Round(time.Millisecond))
	}
	if maxFrames > appended/2 {
		t.Fatalf("the WAL grew to %d frames of the %d appended: it is not restarted", maxFrames, appended)
	}
}

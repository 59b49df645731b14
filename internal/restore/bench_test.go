package restore

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/store"
)

// envInt reads a positive integer from the environment, or def.
func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// BenchmarkHardRecovery measures Recover on a restored set whose logs hold
// CERTSRV_RESTORE_BENCH_RECORDS request records (default 100,000) after
// the snapshot: verification, replay, the log directory and the final
// checkpoint. It reports records/s.
func BenchmarkHardRecovery(b *testing.B) {
	ctx := context.Background()
	n := envInt(b, "CERTSRV_RESTORE_BENCH_RECORDS", 100_000)
	src := newSourceSegments(b, 4<<20)
	set := filepath.Join(b.TempDir(), "set")
	src.fullBackup(set, backupOptions{withKey: true})
	fillRecords(b, src.ca.Store(), n)
	src.incrementalBackup(set)
	src.stop()
	dir := newTarget(b)
	if _, err := Restore(ctx, Options{SetDir: set, Dir: dir, Password: testPassword}); err != nil {
		b.Fatal(err)
	}
	// The record names absolute paths: every iteration recovers the same
	// directory, put back from a copy.
	saved := filepath.Join(b.TempDir(), "saved")
	copyTree(b, saved, dir.Root)
	var elapsed time.Duration
	var records int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.RemoveAll(dir.Root); err != nil {
			b.Fatal(err)
		}
		copyTree(b, dir.Root, saved)
		b.StartTimer()
		start := time.Now()
		res, err := Recover(ctx, dir, RecoverOptions{})
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		records += res.BackupRecords
	}
	b.ReportMetric(float64(records)/elapsed.Seconds(), "records/s")
}

// BenchmarkRestoreVsCopy restores a set whose database snapshot is
// CERTSRV_RESTORE_BENCH_MB MiB (default 64; 1024 for the 1 GiB figure)
// followed by 20,000 records in the logs, with `certsrv restore
// --recover-now` semantics (verify, copy, register, recover), and compares
// it with cp of the same set plus a sync, plus the replay: the reported
// ratio is restore time / (cp time + recovery time).
func BenchmarkRestoreVsCopy(b *testing.B) {
	ctx := context.Background()
	mb := envInt(b, "CERTSRV_RESTORE_BENCH_MB", 64)
	src := newSourceSegments(b, 4<<20)
	fillBytes(b, src.ca.Store(), int64(mb)<<20)
	set := filepath.Join(b.TempDir(), "set")
	src.fullBackup(set, backupOptions{withKey: true})
	fillRecords(b, src.ca.Store(), 20_000)
	src.incrementalBackup(set)
	src.stop()
	var restoreTime, cpTime, recoverTime time.Duration
	b.ResetTimer()
	// Each measured step starts with no dirty pages left by the one
	// before, so write-back of one does not bill the other.
	syncAll := func() {
		if out, err := exec.Command("sync").CombinedOutput(); err != nil {
			b.Fatalf("sync: %v %s", err, out)
		}
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cpDst := filepath.Join(b.TempDir(), "cp")
		syncAll()
		start := time.Now()
		if out, err := exec.Command("cp", "-r", set, cpDst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		if out, err := exec.Command("sync", "-f", cpDst).CombinedOutput(); err != nil {
			b.Fatalf("sync: %v %s", err, out)
		}
		cpTime += time.Since(start)
		os.RemoveAll(cpDst)
		dir, err := datadir.New(filepath.Join(b.TempDir(), "t"))
		if err != nil {
			b.Fatal(err)
		}
		syncAll()
		b.StartTimer()
		start = time.Now()
		rep, err := Restore(ctx, Options{SetDir: set, Dir: dir, Password: testPassword, RecoverNow: true})
		if err != nil {
			b.Fatal(err)
		}
		restoreTime += time.Since(start)
		recoverTime += rep.Recovery.Duration
		b.StopTimer()
		os.RemoveAll(dir.Root)
		b.StartTimer()
	}
	b.ReportMetric(float64(mb), "MiB")
	b.ReportMetric(cpTime.Seconds()/float64(b.N), "cp-s/op")
	b.ReportMetric(recoverTime.Seconds()/float64(b.N), "recover-s/op")
	b.ReportMetric(restoreTime.Seconds()/(cpTime+recoverTime).Seconds(), "ratio")
}

// fillBytes grows the database by about size bytes with requests carrying
// 256 KiB of noise each.
func fillBytes(b *testing.B, db *store.DB, size int64) {
	const chunk = 256 << 10
	const workers = 8
	count := int((size + chunk - 1) / chunk)
	payload := make([]byte, chunk)
	rand.Read(payload)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < count; i += workers {
				_, err := db.SubmitRequest(context.Background(), store.NewRequest{CSR: payload, Subject: fmt.Sprintf("CN=big%d", i),
					Profile: "tls-server", Requester: "filler"})
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("fill: %v", firstErr)
	}
}

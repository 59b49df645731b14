package main

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backuptest"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/testserver"
)

// BenchmarkBackupFull measures `certadm backup` of a large database over
// loopback TLS against `cp` of the same database file followed by an
// fsync. The database is grown to CERTSRV_BACKUP_BENCH_MB MiB (default 256;
// 1024 for the 1 GiB figure) with large CRL records; bytes/s count the
// database file only. cpu-s/GiB is the CPU time (user and system) spent
// per GiB of database: by the cp processes for cp, and by this process,
// which runs both the server and the client, for the backup (including
// the removal of each set between iterations, outside the timer); on a
// machine that is busy with other work it is the steadier figure of the
// two.
func BenchmarkBackupFull(b *testing.B) {
	mb := int64(256)
	if s := os.Getenv("CERTSRV_BACKUP_BENCH_MB"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			b.Fatalf("CERTSRV_BACKUP_BENCH_MB=%q: want a positive integer", s)
		}
		mb = v
	}
	srv := testserver.Start(b, backuptest.Service(b))
	ctx := context.Background()
	db := srv.CA.Store()
	// Grow the database with 4 MiB CRL records of random bytes, numbered
	// above any real CRL.
	blob := make([]byte, 4<<20)
	for n := uint64(1 << 40); ; n++ {
		fi, err := os.Stat(db.DBPath())
		if err != nil {
			b.Fatal(err)
		}
		if fi.Size() >= mb<<20 {
			break
		}
		rand.Read(blob)
		now := time.Now()
		if _, err := db.RecordCRL(ctx, store.CRL{Number: n, ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: blob}); err != nil {
			b.Fatal(err)
		}
		if n%32 == 0 {
			if err := db.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := db.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(db.DBPath())
	if err != nil {
		b.Fatal(err)
	}
	size := fi.Size()
	b.Logf("database %d MiB", size>>20)

	b.Run("cp", func(b *testing.B) {
		b.SetBytes(size)
		defer reportCPU(b, syscall.RUSAGE_CHILDREN, size)()
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(b.TempDir(), "copy.db")
			if out, err := exec.Command("cp", db.DBPath(), dst).CombinedOutput(); err != nil {
				b.Fatalf("cp: %v %s", err, out)
			}
			f, err := os.OpenFile(dst, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			b.StopTimer()
			os.Remove(dst)
			b.StartTimer()
		}
	})
	b.Run("certadm-backup", func(b *testing.B) {
		b.SetBytes(size)
		defer reportCPU(b, syscall.RUSAGE_SELF, size)()
		for i := 0; i < b.N; i++ {
			dir := filepath.Join(b.TempDir(), "set")
			a := &app{stdout: io.Discard, stderr: io.Discard, server: srv.Addr, creds: srv.CredsDir}
			r := &backupRun{a: a, dir: dir, flags: backupFlags{keepLogs: true}, start: time.Now()}
			if err := r.full(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			os.RemoveAll(dir)
			b.StartTimer()
		}
	})
}

// reportCPU starts measuring the CPU time of who (syscall.RUSAGE_SELF or
// RUSAGE_CHILDREN) and returns the function that reports it per GiB of
// b.N copies of size bytes.
func reportCPU(b *testing.B, who int, size int64) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		gib := float64(size) * float64(b.N) / (1 << 30)
		b.ReportMetric((cpu()-start).Seconds()/gib, "cpu-s/GiB")
	}
}

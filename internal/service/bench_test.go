package service

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchWorkers is the number of concurrent submitters in
// BenchmarkSubmitAutoIssue.
const benchWorkers = 64

// BenchmarkSubmitAutoIssue measures automatic issuance through the whole
// service: CSR check (ECDSA P-256 signature verification), signing with the
// CA's ECDSA P-256 key, and a durable store.Enroll record (fsync shared by
// group commit), from 64 goroutines. It reports certificates/s and the
// process CPU time (user + system, every goroutine including the store's)
// per certificate, which does not depend on what else the machine runs:
// 2 cores / cpu-µs/cert bounds the rate on an idle two-core machine. The
// CSRs (256 distinct keys) are made before the timer starts.
func BenchmarkSubmitAutoIssue(b *testing.B) {
	c := newCA(b)
	ctx := context.Background()
	csrs := make([][]byte, 256)
	for i := range csrs {
		csrs[i] = serverCSR(b, fmt.Sprintf("bench%d.example.test", i))
	}
	var (
		next   atomic.Int64
		failed atomic.Pointer[error]
		wg     sync.WaitGroup
	)
	b.ResetTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	for w := 0; w < benchWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) || failed.Load() != nil {
					return
				}
				r, err := c.Submit(ctx, "bench", csrs[i%int64(len(csrs))], "")
				if err == nil && r.Certificate == nil {
					err = fmt.Errorf("request %d not issued", r.ID)
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "certs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/cert")
}

// processCPU returns the process's user plus system CPU time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package wal

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// benchAppend appends b.N records of 256 bytes from writers goroutines and
// reports records/s and fsyncs per record.
func benchAppend(b *testing.B, writers int) {
	l := createLog(b, b.TempDir(), 0)
	defer l.Close()
	payload := make([]byte, 256)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := l.Append(context.Background(), 1, payload); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(l.syncs.Load())/float64(b.N), "fsyncs/record")
}

func BenchmarkAppend1Writer(b *testing.B)   { benchAppend(b, 1) }
func BenchmarkAppend64Writers(b *testing.B) { benchAppend(b, 64) }

// BenchmarkReadFrom reads 16 MiB of 1 KiB records (about four generations)
// per iteration.
func BenchmarkReadFrom(b *testing.B) {
	const records = 16 << 10
	l := createLog(b, b.TempDir(), 0)
	defer l.Close()
	payload := make([]byte, 1024)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= records {
				if _, err := l.Append(context.Background(), 1, payload); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.SetBytes(records * 1024)
	b.ResetTimer()
	for range b.N {
		n := 0
		if err := l.ReadFrom(context.Background(), 1, func(Record) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != records {
			b.Fatalf("read %d records, want %d", n, records)
		}
	}
	b.ReportMetric(float64(records*b.N)/b.Elapsed().Seconds(), "records/s")
}

package backupset

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// benchSize is the file size of the benchmarks: CERTSRV_BACKUPSET_BENCH_MB
// MiB, default 256.
func benchSize(b *testing.B) int64 {
	mb := int64(256)
	if s := os.Getenv("CERTSRV_BACKUPSET_BENCH_MB"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			b.Fatalf("CERTSRV_BACKUPSET_BENCH_MB=%q: want a positive integer", s)
		}
		mb = v
	}
	return mb << 20
}

// benchSource writes a file of random bytes and returns its path.
func benchSource(b *testing.B, size int64) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "source.db")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkAddFile writes a file into a set (hash while writing, fsync,
// rename, fsync dir), from a source in the page cache. BenchmarkCopyFsync
// is the same copy without hashing: the floor AddFile is measured against.
func BenchmarkAddFile(b *testing.B) {
	size := benchSize(b)
	src := benchSource(b, size)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), fmt.Sprint(i))
		w, err := Create(dir, Options{CAName: "Bench", CACertSHA256: [32]byte{1}})
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := w.AddFile(context.Background(), KindDatabase, "DataBase/Bench.db", f, size); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

func BenchmarkCopyFsync(b *testing.B) {
	size := benchSize(b)
	src := benchSource(b, size)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst := filepath.Join(b.TempDir(), "copy.db")
		in, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		out, err := os.Create(dst)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(out, in, make([]byte, copyBufferSize)); err != nil {
			b.Fatal(err)
		}
		if err := out.Sync(); err != nil {
			b.Fatal(err)
		}
		out.Close()
		b.StopTimer()
		in.Close()
		os.Remove(dst)
		b.StartTimer()
	}
}

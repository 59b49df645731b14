package backup

import (
	"context"
	"io"
	"sync"
	"testing"

	"github.com/certsrv/certsrv/internal/store"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// benchRequests is how many ~1 KiB requests the benchmark databases hold
// (a database file of about 20 MiB).
const benchRequests = 16000

// writeParallel submits n requests from 32 goroutines (so that group
// commit shares fsyncs).
func writeParallel(tb testing.TB, db *store.DB, n int) {
	tb.Helper()
	const workers = 32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := submit(db); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// BenchmarkReadDatabase measures Manager.Read of a full backup's database
// snapshot without a network: bytes/s from the pinned file to the send
// callback, 1 MiB chunks.
func BenchmarkReadDatabase(b *testing.B) {
	db := newDB(b, func(o *store.Options) { o.SegmentSize = 4 << 20 })
	writeParallel(b, db, benchRequests)
	m, _ := newManager(b, db)
	ctx := context.Background()
	id, names := prepareFull(b, m, op1)
	b.SetBytes(names[0].Size)
	for b.Loop() {
		if _, err := m.OpenFile(ctx, op1, id, names[0].Name); err != nil {
			b.Fatal(err)
		}
		if err := m.Read(ctx, op1, id, DefaultChunk, func(int64, []byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
		if err := m.CloseFile(ctx, op1, id, names[0].Size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeLog measures serving one full 4 MiB log generation:
// OpenFile (read, verify, read again, compare) plus Read.
func BenchmarkServeLog(b *testing.B) {
	db := newDB(b, func(o *store.Options) { o.SegmentSize = 4 << 20 })
	m, _ := newManager(b, db)
	ctx := context.Background()
	id, err := m.Prepare(ctx, op1, Full)
	if err != nil {
		b.Fatal(err)
	}
	writeParallel(b, db, 8000)
	logs, err := m.BackupLogs(ctx, op1, id)
	if err != nil {
		b.Fatal(err)
	}
	var big File
	for _, f := range logs {
		if f.Size > big.Size {
			big = f
		}
	}
	if big.Size < 3<<20 {
		b.Fatalf("largest listed generation has %d bytes", big.Size)
	}
	b.SetBytes(big.Size)
	for b.Loop() {
		if _, err := m.OpenFile(ctx, op1, id, big.Name); err != nil {
			b.Fatal(err)
		}
		if err := m.Read(ctx, op1, id, DefaultChunk, func(int64, []byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
		if err := m.CloseFile(ctx, op1, id, big.Size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGRPCReadDatabase measures streaming a full backup's database
// snapshot over real gRPC with TLS 1.3 on loopback, 1 MiB chunks.
func BenchmarkGRPCReadDatabase(b *testing.B) {
	ts := startServer(b, 0)
	writeParallel(b, ts.CA.Store(), benchRequests)
	cl, _ := client(b, ts, ts.CredsDir)
	ctx := context.Background()
	prep, err := cl.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	if err != nil {
		b.Fatal(err)
	}
	names, err := cl.GetDatabaseNames(ctx, &certsrvv1.SessionRequest{SessionId: prep.SessionId})
	if err != nil {
		b.Fatal(err)
	}
	name, size := names.Files[0].Name, names.Files[0].Size
	b.SetBytes(size)
	for b.Loop() {
		if _, err := cl.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: prep.SessionId, Name: name}); err != nil {
			b.Fatal(err)
		}
		st, err := cl.ReadFile(ctx, &certsrvv1.ReadFileRequest{SessionId: prep.SessionId, ChunkSize: DefaultChunk})
		if err != nil {
			b.Fatal(err)
		}
		var got int64
		for {
			c, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			got += int64(len(c.Data))
		}
		if got != size {
			b.Fatalf("streamed %d bytes of %d", got, size)
		}
		if _, err := cl.CloseFile(ctx, &certsrvv1.CloseFileRequest{SessionId: prep.SessionId, Consumed: size}); err != nil {
			b.Fatal(err)
		}
	}
}

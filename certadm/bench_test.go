package certadm_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/certadm/internal/wiretest"
)

// BenchmarkSubmit measures issuance through the library against the real
// server: 8 workers over one shared connection, or each over its own. It
// reports certificates per second; requests are generated before the
// timer starts.
func BenchmarkSubmit(b *testing.B) {
	const workers = 8
	for _, mode := range []string{"shared", "per-worker"} {
		b.Run(mode, func(b *testing.B) {
			srv := startServer(b)
			ctx := context.Background()
			conns := 1
			if mode == "per-worker" {
				conns = workers
			}
			clients := make([]*certadm.Client, conns)
			for i := range clients {
				c, err := certadm.Dial(ctx, srv.Addr, certadm.WithCredentials(srv.CredsDir))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				clients[i] = c
			}
			csrs := make([][]byte, b.N)
			for i := range csrs {
				csrs[i] = wiretest.NewCSR(b, fmt.Sprintf("bench-%d.test", i))
			}
			var next int
			var mu sync.Mutex
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range workers {
				c := clients[w%conns]
				wg.Go(func() {
					for {
						mu.Lock()
						i := next
						next++
						mu.Unlock()
						if i >= len(csrs) {
							return
						}
						if r, err := c.Submit(ctx, csrs[i], ""); err != nil || r.Status != certadm.StatusIssued {
							b.Errorf("submit: %v", err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}

// BenchmarkBackupFileStream measures the client side of streaming a
// backup file (gRPC over TLS on loopback, offset checks, copy) for three
// chunk sizes, with a 32 MiB file served from memory.
func BenchmarkBackupFileStream(b *testing.B) {
	const size = 32 << 20
	p := wiretest.NewPKI(b, "anchor")
	s := wiretest.Start(b, p)
	dir := b.TempDir()
	p.WriteCreds(b, dir, "operator", "")
	data := make([]byte, size)
	s.Backup.Files["ca.db"] = &wiretest.FileScript{Size: size, Data: data}
	ctx := context.Background()
	for _, chunk := range []int{certadm.MinChunkSize, certadm.DefaultChunkSize, certadm.MaxChunkSize} {
		b.Run(fmt.Sprintf("chunk=%dKiB", chunk>>10), func(b *testing.B) {
			bc, err := certadm.BackupPrepare(ctx, s.Addr, certadm.BackupFull, certadm.WithCredentials(dir))
			if err != nil {
				b.Fatal(err)
			}
			defer bc.Close()
			b.SetBytes(size)
			for b.Loop() {
				f, err := bc.OpenFile(ctx, "ca.db", chunk)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, f); err != nil || n != size {
					b.Fatalf("%d bytes, %v", n, err)
				}
				f.Close()
			}
		})
	}
}

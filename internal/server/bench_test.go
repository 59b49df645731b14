package server_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/testserver"
)

// BenchmarkSubmitRPC measures issuance through the whole stack: Submit over
// gRPC and TLS 1.3 with the role check, CSR check, signing and the durable
// database write, from 64 concurrent callers on one connection. CSRs are
// made before the clock starts. Reported as certificates/s.
func BenchmarkSubmitRPC(b *testing.B) {
	s := testserver.Start(b)
	c := dial(b, s, s.CredsDir)
	ctx := ctxT(b)
	csrs := make([][]byte, b.N)
	for i := range csrs {
		csrs[i], _ = newCSR(b, fmt.Sprintf("h%d.example.test", i))
	}
	var next atomic.Int64
	b.SetParallelism(64 / max(1, runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if _, err := c.admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csrs[i]}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkPingRPC measures the per-call cost of authentication and
// authorization (one Ping round trip, 64 concurrent callers) with the role
// cache on (the default) and off (a database read per call).
func BenchmarkPingRPC(b *testing.B) {
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"cache", 0}, {"nocache", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			s := testserver.Start(b, testserver.WithServerOptions(func(o *server.Options) { o.AuthCacheTTL = tc.ttl }))
			c := dial(b, s, s.CredsDir)
			ctx := ctxT(b)
			b.SetParallelism(64 / max(1, runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.admin.Ping(ctx, &certsrvv1.PingRequest{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

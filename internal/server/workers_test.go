package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/testserver"
)

// blockingBackup is a Backup service whose OpenFile waits until released.
type blockingBackup struct {
	certsrvv1.UnimplementedBackupServer
	started chan struct{}
	release chan struct{}
}

func (b *blockingBackup) OpenFile(context.Context, *certsrvv1.OpenFileRequest) (*certsrvv1.OpenFileResponse, error) {
	close(b.started)
	<-b.release
	return &certsrvv1.OpenFileResponse{Size: 1}, nil
}

// TestStreamWorkers checks Options.StreamWorkers as documented: with one
// worker, the default, or none, RPCs arriving while a handler blocks (and
// so keeps the only worker busy) are served at once and concurrently, and
// the blocked RPC completes when released.
func TestStreamWorkers(t *testing.T) {
	for _, workers := range []int{1, 0, -1} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			b := &blockingBackup{started: make(chan struct{}), release: make(chan struct{})}
			s := testserver.Start(t,
				testserver.WithServerOptions(func(o *server.Options) { o.StreamWorkers = workers }),
				testserver.WithBackup(func(*service.CA) certsrvv1.BackupServer { return b }))
			ctx := ctxT(t)
			c := dial(t, s, s.CredsDir)
			blocked := make(chan error, 1)
			go func() {
				_, err := c.backup.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: "s", Name: "n"})
				blocked <- err
			}()
			<-b.started
			const n = 8
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				csr, _ := newCSR(t, fmt.Sprintf("w%d.example.test", i))
				wg.Go(func() {
					r, err := c.admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr})
					if err == nil && r.GetCertificate() == nil {
						err = fmt.Errorf("request %d not issued", r.GetRequestId())
					}
					errs[i] = err
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("submit %d while a handler blocks: %v", i, err)
				}
			}
			close(b.release)
			if err := <-blocked; err != nil {
				t.Fatalf("blocked OpenFile: %v", err)
			}
		})
	}
}

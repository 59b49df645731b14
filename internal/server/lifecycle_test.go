package server_test

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/testserver"
)

// slowBackup is a Backup service whose OpenFile takes a while and whose
// ReadFile never ends on its own, to watch how a stop treats RPCs in
// progress. Close records whether the CA was still usable when it ran.
type slowBackup struct {
	certsrvv1.UnimplementedBackupServer
	ca          *service.CA
	openStarted chan struct{}
	readStarted chan struct{}
	closed      atomic.Bool
	caOpenAtEnd atomic.Bool
	principal   atomic.Value
}

func (b *slowBackup) OpenFile(ctx context.Context, _ *certsrvv1.OpenFileRequest) (*certsrvv1.OpenFileResponse, error) {
	if p, ok := server.PrincipalFrom(ctx); ok {
		b.principal.Store(p)
	}
	close(b.openStarted)
	time.Sleep(300 * time.Millisecond)
	return &certsrvv1.OpenFileResponse{Size: 42}, nil
}

func (b *slowBackup) ReadFile(_ *certsrvv1.ReadFileRequest, stream certsrvv1.Backup_ReadFileServer) error {
	if err := stream.Send(&certsrvv1.FileChunk{Offset: 0, Data: []byte("x")}); err != nil {
		return err
	}
	close(b.readStarted)
	<-stream.Context().Done()
	return stream.Context().Err()
}

func (b *slowBackup) Close() error {
	b.closed.Store(true)
	_, err := b.ca.View(context.Background(), storeFilterAll())
	b.caOpenAtEnd.Store(err == nil)
	return nil
}

// TestStopFinishesRPCsInProgress checks the graceful part of a stop: an RPC
// in progress when Shutdown is called completes and its caller gets the
// answer; the handler sees the authenticated principal through
// PrincipalFrom; and the backup service is closed while the CA is still
// open.
func TestStopFinishesRPCsInProgress(t *testing.T) {
	b := &slowBackup{openStarted: make(chan struct{}), readStarted: make(chan struct{})}
	s := testserver.Start(t, testserver.WithBackup(func(c *service.CA) certsrvv1.BackupServer { b.ca = c; return b }))
	ctx := ctxT(t)
	c := dial(t, s, s.CredsDir)

	done := make(chan error, 1)
	go func() {
		resp, err := c.backup.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: "s", Name: "n"})
		if err == nil && resp.Size != 42 {
			t.Errorf("OpenFile size %d", resp.Size)
		}
		done <- err
	}()
	<-b.openStarted
	s.Server.Shutdown()
	if err := <-done; err != nil {
		t.Fatalf("OpenFile in progress during the stop: %v, want its answer", err)
	}
	if err := s.Wait(10 * time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if got, _ := b.principal.Load().(string); got != "admin" {
		t.Fatalf("PrincipalFrom in the handler = %q, want admin", got)
	}
	if !b.closed.Load() || !b.caOpenAtEnd.Load() {
		t.Fatalf("backup service closed=%v with the CA open=%v, want both", b.closed.Load(), b.caOpenAtEnd.Load())
	}
}

// TestStopCutsOffAtDeadline checks the bound: a stream that would never end
// is cut off after ShutdownTimeout, and Serve returns.
func TestStopCutsOffAtDeadline(t *testing.T) {
	const timeout = 500 * time.Millisecond
	b := &slowBackup{openStarted: make(chan struct{}), readStarted: make(chan struct{})}
	s := testserver.Start(t,
		testserver.WithBackup(func(c *service.CA) certsrvv1.BackupServer { b.ca = c; return b }),
		testserver.WithServerOptions(func(o *server.Options) { o.ShutdownTimeout = timeout }))
	ctx := ctxT(t)
	c := dial(t, s, s.CredsDir)
	stream, err := c.backup.ReadFile(ctx, &certsrvv1.ReadFileRequest{SessionId: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	<-b.readStarted
	start := time.Now()
	s.Server.Shutdown()
	if err := s.Wait(10 * time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if took := time.Since(start); took < timeout {
		t.Fatalf("Serve returned after %v, before the %v deadline, while a stream was open", took, timeout)
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal("the stream still delivers after the cut-off")
	}
}

// TestServeRunsPublisher removes the published CRL before Serve and checks
// that the CA's publisher, which Serve runs, writes it again and the
// endpoint serves it.
func TestServeRunsPublisher(t *testing.T) {
	c, dir := newCA(t)
	crlPath := filepath.Join(dir.PublishDir(), c.Name()+".crl")
	if err := os.Remove(crlPath); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(c, server.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	u := "http://" + srv.HTTPAddr() + "/CertEnroll/" + url.PathEscape(c.Name()+".crl")
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			crl, err := x509.ParseRevocationList(body)
			if err != nil || crl.CheckSignatureFrom(c.Certificate()) != nil {
				t.Fatalf("republished CRL does not verify: %v", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s still %s: the publisher did not republish the missing CRL", u, resp.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

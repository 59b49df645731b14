package server_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/testserver"
	"github.com/certsrv/certsrv/internal/wal"
)

// appliedLSN reads meta.applied_lsn of the database with the sqlite3
// command-line tool, an independent reader.
func appliedLSN(t *testing.T, dbPath string) uint64 {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatalf("sqlite3 is needed: %v", err)
	}
	out, err := exec.Command("sqlite3", "-readonly", dbPath, "SELECT applied_lsn FROM meta WHERE id = 1").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("sqlite3 applied_lsn %q: %v", out, err)
	}
	return n
}

// lastLogLSN reads every log generation offline and returns the last LSN.
func lastLogLSN(t *testing.T, dir datadir.Dir) uint64 {
	t.Helper()
	var last uint64
	err := wal.ReadDir(context.Background(), dir.LogDir(), "ca", wal.Signature{}, 0, func(r wal.Record) error {
		last = r.LSN
		return nil
	})
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	return last
}

// checkCleanStop checks that a stopped CA's database reflects the whole
// log (read independently with sqlite3 and the log reader) and that
// reopening it replays nothing (as the store reports it).
func checkCleanStop(t *testing.T, dir datadir.Dir) {
	t.Helper()
	cfg, err := dir.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	applied, last := appliedLSN(t, dir.DBPath(cfg.CAName)), lastLogLSN(t, dir)
	if applied != last || last == 0 {
		t.Fatalf("after the stop the database is at LSN %d and the log ends at %d", applied, last)
	}
	logs := &logRecords{}
	c, err := service.Open(context.Background(), dir, service.OpenOptions{Logger: slog.New(logs)})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer c.Close()
	if n := len(logs.find("soft recovery replayed log records")); n != 0 {
		t.Fatalf("reopen replayed records (%d reports)", n)
	}
	rep := logs.find("soft recovery: nothing to replay")
	if len(rep) != 1 {
		t.Fatalf("reopen did not report that it had nothing to replay")
	}
	if v, ok := attr(rep[0], "applied_lsn"); !ok || v.Uint64() != last {
		t.Fatalf("reopen reports applied LSN %v, want %d", v, last)
	}
}

// TestGracefulStopUnderLoad cancels Serve's context while clients keep
// submitting, and checks that Serve returns nil, every acknowledged
// request is in the database, calls after the stop fail as unavailable
// (never as server errors), and the clean stop leaves nothing to replay.
func TestGracefulStopUnderLoad(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	c := dial(t, s, s.CredsDir)

	var (
		mu    sync.Mutex
		acked []int64
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				csr, _ := newCSR(t, fmt.Sprintf("w%d-%d.example.test", w, i))
				r, err := c.admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr})
				if err != nil {
					if !isUnavailable(err) {
						t.Errorf("Submit during the stop: %v, want success or Unavailable", err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, r.RequestId)
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	s.Stop() // cancels Serve's context and waits for it
	if err := s.ServeError(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no request was acknowledged before the stop")
	}
	if _, err := c.admin.Ping(ctx, &certsrvv1.PingRequest{}); !isUnavailable(err) {
		t.Fatalf("Ping after the stop: %v, want Unavailable", err)
	}
	checkCleanStop(t, s.Dir)

	c2, err := service.Open(ctx, s.Dir, service.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for _, id := range acked {
		if _, err := c2.Request(ctx, id); err != nil {
			t.Fatalf("acknowledged request %d lost: %v", id, err)
		}
	}
	t.Logf("%d requests acknowledged before the stop", len(acked))
}

// isUnavailable reports whether err is the transport's "server not
// there" status.
func isUnavailable(err error) bool {
	return status.Code(err) == codes.Unavailable
}

// TestServerControlShutdown stops the server through ServerControl
// (CSCONTROL_SHUTDOWN) as an Operator: the call succeeds, Serve returns
// nil, the ports close, and nothing is left to replay.
func TestServerControlShutdown(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	admin := dial(t, s, s.CredsDir)
	op := dial(t, s, grantRPC(t, ctx, s, admin.admin, "ops", "Operator"))
	if _, err := op.backup.ServerControl(ctx, &certsrvv1.ServerControlRequest{Control: server.ControlShutdown}); err != nil {
		t.Fatalf("ServerControl: %v", err)
	}
	if err := s.Wait(15 * time.Second); err != nil {
		t.Fatalf("Serve after ServerControl: %v", err)
	}
	for _, addr := range []string{s.Addr, s.HTTPAddr} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after the shutdown", addr)
		}
	}
	s.Stop()
	checkCleanStop(t, s.Dir)
}

// TestServeTwice checks that a second Serve is refused while the first
// runs.
func TestServeTwice(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	// Once Ping answers, the first Serve is running.
	if _, err := dial(t, s, s.CredsDir).admin.Ping(ctx, &certsrvv1.PingRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Server.Serve(ctx); !errors.Is(err, server.ErrAlreadyServed) {
		t.Fatalf("second Serve: %v, want ErrAlreadyServed", err)
	}
}

// newCA makes and opens a CA in a fresh directory, for tests of New.
func newCA(t *testing.T) (*service.CA, datadir.Dir) {
	t.Helper()
	dir, _ := datadir.New(filepath.Join(t.TempDir(), "data"))
	ctx := context.Background()
	cfg := datadir.DefaultConfig("New Test CA")
	cfg.Listen, cfg.HTTPListen = "127.0.0.1:0", "127.0.0.1:0"
	if _, err := service.Init(ctx, dir, service.InitOptions{Config: &cfg}); err != nil {
		t.Fatal(err)
	}
	c, err := service.Open(ctx, dir, service.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, dir
}

// TestNewErrors checks New's typed errors: missing TLS material names the
// file, an address in use names the listener, and a CA left to the caller
// stays open.
func TestNewErrors(t *testing.T) {
	t.Run("missing server key", func(t *testing.T) {
		c, dir := newCA(t)
		keyPath := filepath.Join(dir.TLSDir(), "server.key")
		if err := os.Remove(keyPath); err != nil {
			t.Fatal(err)
		}
		_, err := server.New(c, server.Options{})
		var te *server.TLSError
		if !errors.Is(err, server.ErrTLSMaterial) || !errors.As(err, &te) || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("New without server.key: %v, want a TLSError", err)
		}
		if _, err := c.View(context.Background(), storeFilterAll()); err != nil {
			t.Fatalf("the CA was closed by a failed New: %v", err)
		}
	})
	t.Run("corrupt trust anchor", func(t *testing.T) {
		c, dir := newCA(t)
		path := filepath.Join(dir.TLSDir(), "trust.crt")
		if err := os.WriteFile(path, []byte("not PEM"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := server.New(c, server.Options{})
		var te *server.TLSError
		if !errors.As(err, &te) || te.Path != path {
			t.Fatalf("New with a corrupt trust.crt: %v, want a TLSError naming it", err)
		}
	})
	t.Run("address in use", func(t *testing.T) {
		c, _ := newCA(t)
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		_, err = server.New(c, server.Options{HTTPListen: busy.Addr().String()})
		var le *server.ListenError
		if !errors.As(err, &le) || le.What != "http" || le.Addr != busy.Addr().String() {
			t.Fatalf("New on a busy address: %v, want a ListenError for http", err)
		}
		// The admin listener New opened first was released: New succeeds
		// once the HTTP port is free.
		busy.Close()
		srv, err := server.New(c, server.Options{HTTPListen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		srv.Shutdown()
		if err := srv.Serve(context.Background()); err != nil {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	})
}

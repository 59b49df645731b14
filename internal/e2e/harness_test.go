package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/backup"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/servetest"
	"github.com/certsrv/certsrv/internal/service"
)

// caName is the name of every CA these tests create.
const caName = "certsrv E2E CA"

// initCA creates a root CA (ECDSA P-256) in the data directory root with
// the default configuration, edited by edit when not nil, and returns the
// directory. The CA is closed when initCA returns; startCA serves it.
func initCA(tb testing.TB, root string, edit func(*datadir.Config)) datadir.Dir {
	tb.Helper()
	dir, err := datadir.New(root)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := datadir.DefaultConfig(caName)
	// The server certificate Init makes names the listen host; the port is
	// rewritten by startCA on every start.
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	lock, err := dir.Acquire()
	if err != nil {
		tb.Fatalf("lock %s: %v", root, err)
	}
	defer lock.Release()
	if _, err := service.Init(context.Background(), dir, service.InitOptions{Config: &cfg}); err != nil {
		tb.Fatalf("init CA in %s: %v", root, err)
	}
	return dir
}

// caServer is a CA served in this process on loopback ports, as certsrv
// serve does it: the CA, the backup service and the gRPC and HTTP server.
type caServer struct {
	Dir      datadir.Dir
	Addr     string // admin API, 127.0.0.1:port
	HTTPAddr string // publication endpoint
	CredsDir string // the admin credential (every role), <data>/admin
	CA       *service.CA

	srv      *server.Server
	lock     *datadir.Lock
	cancel   context.CancelFunc
	done     chan struct{}
	serveErr error
	stopOnce sync.Once
}

// startCA opens the initialized data directory dir and serves it on
// fresh 127.0.0.1 ports. The configuration's listen addresses and base URL
// are rewritten to those ports first, so the dynamic files' URLs work. The
// server stops at the end of the test (or earlier with Stop).
func startCA(tb testing.TB, dir datadir.Dir) *caServer {
	tb.Helper()
	lock, err := dir.Acquire()
	if err != nil {
		tb.Fatalf("lock %s: %v", dir.Root, err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		lock.Release()
		tb.Fatal(err)
	}
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		lis.Close()
		lock.Release()
		tb.Fatal(err)
	}
	fail := func(format string, args ...any) {
		tb.Helper()
		lis.Close()
		httpLis.Close()
		lock.Release()
		tb.Fatalf(format, args...)
	}
	cfg, err := dir.LoadConfig()
	if err != nil {
		fail("load configuration: %v", err)
	}
	cfg.Listen = lis.Addr().String()
	cfg.HTTPListen = httpLis.Addr().String()
	cfg.BaseURL = "http://" + httpLis.Addr().String()
	if err := dir.SaveConfig(cfg); err != nil {
		fail("save configuration: %v", err)
	}
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	c, err := service.Open(ctx, dir, service.OpenOptions{Logger: logger})
	if err != nil {
		fail("open CA: %v", err)
	}
	bsvc, err := backup.ForCA(c, backup.Options{Principal: server.PrincipalFrom, ConnClosed: server.ConnClosed, Logger: logger})
	if err != nil {
		c.Close()
		fail("backup service: %v", err)
	}
	srv, err := server.New(c, server.Options{
		Listener: lis, HTTPListener: httpLis, Logger: logger, BackupService: bsvc, Version: "e2e",
	})
	if err != nil {
		bsvc.Close()
		c.Close()
		fail("new server: %v", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir.AdminDir(), "server"), []byte(srv.Addr()+"\n"), 0o644); err != nil {
		tb.Errorf("write admin/server: %v", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &caServer{
		Dir: dir, Addr: srv.Addr(), HTTPAddr: srv.HTTPAddr(), CredsDir: dir.AdminDir(), CA: c,
		srv: srv, lock: lock, cancel: cancel, done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.serveErr = srv.Serve(sctx)
	}()
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("stop server: %v", err)
		}
	})
	return s
}

// Stop stops the server, which closes the backup service and the CA (a
// clean close of the database), releases the data directory's lock, and
// returns Serve's error. It is safe to call more than once.
func (s *caServer) Stop() error {
	s.stopOnce.Do(func() {
		s.cancel()
		<-s.done
		s.lock.Release()
	})
	return s.serveErr
}

// dial connects a certadm client with the admin credential.
func (s *caServer) dial(tb testing.TB) *certadm.Client {
	tb.Helper()
	c, err := certadm.Dial(context.Background(), s.Addr, certadm.WithCredentials(s.CredsDir))
	if err != nil {
		tb.Fatalf("dial %s: %v", s.Addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// dialN connects n clients (one connection each).
func (s *caServer) dialN(tb testing.TB, n int) []*certadm.Client {
	out := make([]*certadm.Client, n)
	for i := range out {
		out[i] = s.dial(tb)
	}
	return out
}

// cmdError is a certadm run that failed, with what it printed.
type cmdError struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *cmdError) Error() string {
	return fmt.Sprintf("certadm %v: %v: %s", e.Args, e.Err, bytes.TrimSpace([]byte(e.Stderr)))
}

func (e *cmdError) Unwrap() error { return e.Err }

// certadm runs the certadm executable against this server with the admin
// credential and returns its standard output.
func (s *caServer) certadm(ctx context.Context, args ...string) (string, error) {
	out, _, err := s.certadmCPU(ctx, args...)
	return out, err
}

// certadmCPU is certadm that also returns the CPU time (user and system)
// the certadm process used.
func (s *caServer) certadmCPU(ctx context.Context, args ...string) (string, time.Duration, error) {
	full := append([]string{"--server", s.Addr, "--creds", s.CredsDir}, args...)
	cmd := exec.CommandContext(ctx, certadmBin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return stdout.String(), cpu, &cmdError{Args: args, Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), cpu, nil
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// copyAndSync copies the file src to dst with io.Copy and fsyncs it.
func copyAndSync(dst, src string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// startServeProcess runs `certsrv serve` on the data directory root, on
// free loopback ports, and returns it once it listens and has checked the
// database's pages (which reads the whole file once after the start). It
// is stopped when the benchmark or test ends.
func startServeProcess(tb testing.TB, root string) *servetest.Process {
	tb.Helper()
	p := servetest.Start(tb, certsrvBinary(tb), "--data", root, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-level", "info")
	tb.Cleanup(func() { p.Stop(tb) })
	p.WaitLog(tb, "database pages checked", 60*time.Second)
	return p
}

// pidCPU is the CPU time (user and system) process pid has used, from
// /proc/<pid>/stat in clock ticks of 1/100 s.
func pidCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/servetest"
	"github.com/certsrv/certsrv/internal/testserver"
)

// binary is the certsrv executable TestMain builds for the tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certsrv-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "certsrv")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCertsrv runs the binary to completion and returns its exit status and
// output.
func runCertsrv(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run certsrv %v: %v", args, err)
	}
	return code, stdout.String(), stderr.String()
}

// daemon is a running certsrv serve.
type daemon = servetest.Process

// startServe starts certsrv serve with args and waits for its "listening
// on" line. The process is killed when the test ends if it still runs.
func startServe(t *testing.T, args ...string) *daemon {
	t.Helper()
	return servetest.Start(t, binary, args...)
}

// dialServer connects to the admin API at addr with the credential in
// creds; the connection is closed when the test ends.
func dialServer(t *testing.T, addr, creds string) *grpc.ClientConn {
	t.Helper()
	conn, err := testserver.Dial(addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// ping calls Ping with the credential in creds at addr.
func ping(t *testing.T, addr, creds string) *certsrvv1.PingResponse {
	t.Helper()
	conn := dialServer(t, addr, creds)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := certsrvv1.NewAdminClient(conn).Ping(ctx, &certsrvv1.PingRequest{})
	if err != nil {
		t.Fatalf("Ping %s: %v", addr, err)
	}
	return resp
}

// TestServeFirstStartLockAndSIGTERM runs certsrv serve on a directory that
// does not exist: it initializes it, reports its addresses, records the
// admin address for certadm, answers Ping, keeps a second serve out, and
// exits 0 on SIGTERM; a second start reuses the CA.
func TestServeFirstStartLockAndSIGTERM(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	d := startServe(t, "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if !strings.Contains(d.Stderr(), "initialized a new CA") {
		t.Fatalf("first start did not say it initialized the CA:\n%s", d.Stderr())
	}
	recorded, err := os.ReadFile(filepath.Join(data, "admin", "server"))
	if err != nil || strings.TrimSpace(string(recorded)) != d.Admin {
		t.Fatalf("admin/server = %q (%v), want %s", recorded, err, d.Admin)
	}
	resp := ping(t, strings.TrimSpace(string(recorded)), filepath.Join(data, "admin"))
	if resp.State != certsrvv1.ServerState_SERVER_STATE_ONLINE || resp.CaName != "certsrv CA" || resp.Principal != "admin" {
		t.Fatalf("Ping = %+v", resp)
	}

	code, _, stderr := runCertsrv(t, "serve", "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "in use by another certsrv process") {
		t.Fatalf("second serve: exit %d, stderr %q; want 1 and a message about the lock", code, stderr)
	}
	if code := d.Stop(t); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d, want 0\n%s", code, d.Stderr())
	}

	d2 := startServe(t, "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if strings.Contains(d2.Stderr(), "initialized a new CA") {
		t.Fatal("second start initialized the CA again")
	}
	if resp := ping(t, d2.Admin, filepath.Join(data, "admin")); resp.CaName != "certsrv CA" {
		t.Fatalf("Ping after restart = %+v", resp)
	}
	if code := d2.Stop(t); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d, want 0", code)
	}
}

// TestServeBackupAndServerControl checks that the daemon serves the
// Backup service (a session can be prepared and aborted) and that
// ServerControl(CSCONTROL_SHUTDOWN) stops it with exit status 0.
func TestServeBackupAndServerControl(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	d := startServe(t, "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	conn := dialServer(t, d.Admin, filepath.Join(data, "admin"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bc := certsrvv1.NewBackupClient(conn)
	prep, err := bc.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	if err != nil || prep.SessionId == "" {
		t.Fatalf("BackupPrepare: %+v, %v", prep, err)
	}
	names, err := bc.GetDatabaseNames(ctx, &certsrvv1.SessionRequest{SessionId: prep.SessionId})
	if err != nil || len(names.Files) != 1 || names.Files[0].Tag != 'D' {
		t.Fatalf("GetDatabaseNames: %+v, %v", names, err)
	}
	if _, err := bc.End(ctx, &certsrvv1.EndRequest{SessionId: prep.SessionId, Abort: true}); err != nil {
		t.Fatalf("End(abort): %v", err)
	}
	if _, err := bc.ServerControl(ctx, &certsrvv1.ServerControlRequest{Control: 1}); err != nil {
		t.Fatalf("ServerControl: %v", err)
	}
	select {
	case <-d.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("certsrv serve still runs after ServerControl\n%s", d.Stderr())
	}
	if code := d.ExitState().ExitCode(); code != 0 {
		t.Fatalf("exit status after ServerControl = %d, want 0\n%s", code, d.Stderr())
	}
}

// TestServeRefusesStrayDirectory checks that serve does not initialize a
// directory that holds files but no configuration.
func TestServeRefusesStrayDirectory(t *testing.T) {
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "something"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCertsrv(t, "serve", "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "not initialized") {
		t.Fatalf("serve on a stray directory: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "certsrv.json")); err == nil {
		t.Fatal("serve initialized a directory that was not empty")
	}
	// A directory holding only a CA key (certsrv key restore ahead of a
	// restore) is pointed at certsrv restore, not at init.
	keyOnly := t.TempDir()
	if err := os.MkdirAll(filepath.Join(keyOnly, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keyOnly, "keys", "ca.key"), []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCertsrv(t, "serve", "--data", keyOnly, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "holds a CA key but no configuration") || !strings.Contains(stderr, "certsrv restore") {
		t.Fatalf("serve on a directory holding only a CA key: exit %d, %q", code, stderr)
	}
}

// TestUsageErrors checks exit status 2 for command-line mistakes.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"serve", "--bogus"},
		{"serve", "extra"},
		{"serve", "--listen", "no-port"},
		{"init", "--key", "rsa-1024"},
		{"init", "--name", ""},
		{"init", "--name", "a/b"},
		{"--log-level", "loud", "check"},
		{"install-cert"},
		{"key"},
		{"key", "restore", "file.p12"},
		{"--log-level", "loud", "serve"},
	} {
		code, _, stderr := runCertsrv(t, append(args, "--data", t.TempDir())...)
		if code != 2 {
			t.Errorf("certsrv %q: exit %d, want 2\n%s", args, code, stderr)
		}
	}
}

// TestServeDynamicFilesFollowTheBoundAddress checks that with the default
// base_url (the http_listen of init) and --http naming another address for
// this run, the dynamic-file URLs a backup client gets name where this run
// serves, and fetching them works.
func TestServeDynamicFilesFollowTheBoundAddress(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := runCertsrv(t, "init", "--data", data); code != 0 {
		t.Fatalf("init: exit %d\n%s", code, stderr)
	}
	d := startServe(t, "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	defer d.Stop(t)
	conn := dialServer(t, d.Admin, filepath.Join(data, "admin"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bc := certsrvv1.NewBackupClient(conn)
	prep, err := bc.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.End(ctx, &certsrvv1.EndRequest{SessionId: prep.SessionId, Abort: true})
	list, err := bc.GetDynamicFiles(ctx, &certsrvv1.SessionRequest{SessionId: prep.SessionId})
	if err != nil || len(list.GetFiles()) == 0 {
		t.Fatalf("GetDynamicFiles: %v, %v", list, err)
	}
	for _, f := range list.GetFiles() {
		if !strings.HasPrefix(f.GetUrl(), "http://"+d.HTTP+"/CertEnroll/") {
			t.Fatalf("dynamic file URL %q does not name this run's publication endpoint %s", f.GetUrl(), d.HTTP)
		}
		resp, err := http.Get(f.GetUrl())
		if err != nil {
			t.Fatalf("fetch %s: %v", f.GetUrl(), err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("fetch %s: %s", f.GetUrl(), resp.Status)
		}
	}
}

// TestRefusedRestoreLeavesNoTrace: a restore refused before it changes
// anything leaves a target that did not exist absent and an empty one
// empty; recover names a data directory that does not exist instead of
// creating it.
func TestRefusedRestoreLeavesNoTrace(t *testing.T) {
	root := t.TempDir()
	set := filepath.Join(root, "not-a-set")
	if err := os.MkdirAll(set, 0o700); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(root, "absent")
	empty := filepath.Join(root, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{absent, empty} {
		code, _, stderr := runCertsrv(t, "restore", set, "--data", target)
		if code != 1 || stderr == "" {
			t.Fatalf("restore of a non-set into %s: exit %d, %q", target, code, stderr)
		}
	}
	if _, err := os.Stat(absent); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused restore created %s: %v", absent, err)
	}
	if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
		t.Errorf("a refused restore left %v in %s (%v)", entries, empty, err)
	}
	code, _, stderr := runCertsrv(t, "recover", "--data", absent)
	if code != 1 || !strings.Contains(stderr, "no data directory "+absent) {
		t.Fatalf("recover of a missing directory: exit %d, %q", code, stderr)
	}
	deeper := filepath.Join(absent, "deeper")
	if code, _, stderr := runCertsrv(t, "restore", "--cancel", "--data", deeper); code != 1 || !strings.Contains(stderr, "no restore is registered") {
		t.Fatalf("cancel in a missing directory: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(absent); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("recover or cancel created %s: %v", absent, err)
	}
	// Nothing pending in an empty directory: nothing is written there.
	if code, stdout, _ := runCertsrv(t, "recover", "--data", empty); code != 0 || !strings.Contains(stdout, "nothing to recover") {
		t.Fatalf("recover of an empty directory: exit %d, %q", code, stdout)
	}
	if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
		t.Errorf("recover left %v in %s (%v)", entries, empty, err)
	}
}

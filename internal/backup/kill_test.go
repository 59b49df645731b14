package backup

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/testserver"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// childEnv, when set to a data directory, makes the test binary serve that
// CA with the Backup service instead of running tests (see runChild).
const childEnv = "CERTSRV_BACKUP_TEST_CHILD"

func TestMain(m *testing.M) {
	if root := os.Getenv(childEnv); root != "" {
		os.Exit(runChild(root))
	}
	os.Exit(m.Run())
}

// runChild serves the CA in root on 127.0.0.1 with the Backup service,
// prints "ADDR <admin address>" on stdout, and serves until killed.
func runChild(root string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	dir, err := datadir.New(root)
	if err != nil {
		return fail(err)
	}
	lock, err := dir.Acquire()
	if err != nil {
		return fail(err)
	}
	defer lock.Release()
	ctx := context.Background()
	c, err := service.Open(ctx, dir, service.OpenOptions{})
	if err != nil {
		return fail(err)
	}
	svc, err := ForCA(c, Options{Principal: server.PrincipalFrom, ConnClosed: server.ConnClosed})
	if err != nil {
		return fail(err)
	}
	srv, err := server.New(c, server.Options{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", BackupService: svc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fail(err)
	}
	fmt.Printf("ADDR %s\n", srv.Addr())
	if err := srv.Serve(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// openCA opens the CA in dir under its lock, closing both when the test
// ends or when the returned function is called.
func openCA(t *testing.T, dir datadir.Dir) (*service.CA, func()) {
	t.Helper()
	lock, err := dir.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	c, err := service.Open(context.Background(), dir, service.OpenOptions{Logger: testLogger(t)})
	if err != nil {
		lock.Release()
		t.Fatal(err)
	}
	closed := false
	done := func() {
		if !closed {
			closed = true
			if err := c.Close(); err != nil {
				t.Errorf("close CA: %v", err)
			}
			lock.Release()
		}
	}
	t.Cleanup(done)
	return c, done
}

// TestServerKilledMidBackup: the server, a child process, is killed with
// SIGKILL after a full backup has read the database and all but part of
// the last log. After the restart nothing new is recorded as backed up, no
// log generation was deleted, and a new backup works.
func TestServerKilledMidBackup(t *testing.T) {
	ctx := context.Background()
	dir, err := datadir.New(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := datadir.DefaultConfig("Kill Test CA")
	cfg.Listen, cfg.HTTPListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.LogSegmentSize = 64 << 10
	lock, err := dir.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := service.Init(ctx, dir, service.InitOptions{Config: &cfg}); err != nil {
		t.Fatal(err)
	}
	lock.Release()

	// A recorded full backup, then more records.
	c, closeCA := openCA(t, dir)
	m, err := NewManager(StoreEngine(c.Store()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := backupFiles(t, m, op1, Full)
	if _, err := m.End(ctx, op1, first.id, false); err != nil {
		t.Fatal(err)
	}
	m.Close()
	write(t, c.Store(), 300)
	recorded, _ := c.Store().LastBackups()
	closeCA()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir.Root)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	addrLine := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addrLine <- line
	}()
	var addr string
	select {
	case line := <-addrLine:
		addr = strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
	case <-time.After(30 * time.Second):
		t.Fatal("the child server did not start")
	}
	if addr == "" {
		t.Fatal("the child server printed no address")
	}
	conn, err := testserver.Dial(addr, dir.AdminDir())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := certsrvv1.NewBackupClient(conn)

	prep, err := cl.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	if err != nil {
		t.Fatal(err)
	}
	sid := &certsrvv1.SessionRequest{SessionId: prep.SessionId}
	names, err := cl.GetDatabaseNames(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	readStream(t, ctx, cl, prep.SessionId, names.Files[0].Name, 0)
	logs, err := cl.GetBackupLogs(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range logs.Files[:len(logs.Files)-1] {
		readStream(t, ctx, cl, prep.SessionId, f.Name, 0)
	}
	last := logs.Files[len(logs.Files)-1]
	if _, err := cl.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: prep.SessionId, Name: last.Name}); err != nil {
		t.Fatal(err)
	}
	before := logFiles(t, dir.LogDir())

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	if err := cmd.Wait(); err == nil {
		t.Fatal("the child exited cleanly; it should have been killed")
	}

	c, _ = openCA(t, dir)
	after, _ := c.Store().LastBackups()
	if after == nil || *after != *recorded {
		t.Fatalf("after the kill the last full backup is %+v, before it was %+v", after, recorded)
	}
	if _, inc := c.Store().LastBackups(); inc != nil {
		t.Fatalf("an incremental backup was recorded: %+v", inc)
	}
	now := logFiles(t, dir.LogDir())
	for name := range before {
		if !now[name] {
			t.Fatalf("log generation %s was deleted", name)
		}
	}
	m, err = NewManager(StoreEngine(c.Store()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	again := backupFiles(t, m, op1, Full)
	if res, err := m.End(ctx, op1, again.id, false); err != nil || !res.Recorded {
		t.Fatalf("backup after the restart: %+v, %v", res, err)
	}
}

package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/testserver"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// Child processes: the test binary re-executed with childEnv set to the
// role and dirEnv to the data directory.
const (
	childEnv = "CERTSRV_RESTORE_TEST_CHILD"
	dirEnv   = "CERTSRV_RESTORE_TEST_DIR"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "serve":
		os.Exit(childServe(os.Getenv(dirEnv)))
	case "recover":
		os.Exit(childRecover(os.Getenv(dirEnv)))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", childEnv, os.Getenv(childEnv))
		os.Exit(2)
	}
}

// childServe runs the CA in path (the admin API on 127.0.0.1, a free
// port), prints "ADDR host:port" and serves until killed.
func childServe(path string) int {
	dir, err := datadir.New(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lock, err := dir.Acquire()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer lock.Release()
	ctx := context.Background()
	c, err := service.Open(ctx, dir, service.OpenOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := server.New(c, server.Options{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", s.Addr())
	if err := s.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childRecover takes the lock and runs Recover in path, printing
// "PHASE <phase>" as each phase starts.
func childRecover(path string) int {
	dir, err := datadir.New(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lock, err := dir.Acquire()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer lock.Release()
	_, err = Recover(context.Background(), dir, RecoverOptions{OnProgress: func(e Event) {
		fmt.Printf("PHASE %s %d\n", e.Phase, e.Records)
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startChild starts the test binary as a child in role for dir and returns
// it with a reader of its standard output.
func startChild(t *testing.T, role string, dir datadir.Dir) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, dirEnv+"="+dir.Root)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, err, "pipe")
	must(t, cmd.Start(), "start child")
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, bufio.NewScanner(out)
}

// kill sends SIGKILL and checks the child died of it.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	must(t, cmd.Process.Signal(syscall.SIGKILL), "kill")
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL", err)
	}
}

// TestDisasterAfterKill keeps a CA issuing in another process after a full
// backup, kills it with SIGKILL, deletes its database file only and
// restores the backup over the directory: catch-up brings back every
// certificate the CA acknowledged.
func TestDisasterAfterKill(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	set := filepath.Join(t.TempDir(), "set")
	src.workload(5)
	src.fullBackup(set, backupOptions{})
	dbPath := src.ca.Store().DBPath()
	src.stop()

	child, out := startChild(t, "serve", src.dir)
	var addr string
	for out.Scan() {
		if a, ok := strings.CutPrefix(out.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("the CA child did not start")
	}
	conn, err := testserver.Dial(addr, src.dir.AdminDir())
	must(t, err, "dial")
	defer conn.Close()
	admin := certsrvv1.NewAdminClient(conn)

	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				r, err := admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csrFor(t, src.key, fmt.Sprintf("w%d-%d", w, i)), Profile: "tls-server"})
				if err != nil {
					return // the CA was killed
				}
				mu.Lock()
				acked = append(acked, r.GetCertificate().GetSerial())
				if len(acked) >= 60 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(30 * time.Second):
		t.Fatal("the CA child issued fewer than 60 certificates in 30 s")
	}
	kill(t, child)
	conn.Close()
	wg.Wait()
	must(t, os.Remove(dbPath), "delete the database file")

	rep, err := Restore(ctx, Options{SetDir: set, Dir: src.dir, Force: true, RecoverNow: true, Logger: testLogger(t)})
	must(t, err, "restore")
	if rep.Recovery.LiveRecords < len(acked) || rep.Recovery.CatchUpSkipped != "" {
		t.Fatalf("catch-up replayed %d records for %d acknowledged certificates (skipped: %q)",
			rep.Recovery.LiveRecords, len(acked), rep.Recovery.CatchUpSkipped)
	}
	c := openRestored(t, src.dir)
	mu.Lock()
	defer mu.Unlock()
	for _, serial := range acked {
		if _, err := c.CertificateBySerial(ctx, serial); err != nil {
			t.Fatalf("acknowledged certificate %s is missing after the restore: %v", serial, err)
		}
	}
	t.Logf("%d acknowledged certificates, all restored; %d live records replayed", len(acked), rep.Recovery.LiveRecords)
}

// killRecords is how many records the hard recovery that gets killed
// replays.
const killRecords = 100_000

// TestKillDuringRecovery kills `recover` (a child process) with SIGKILL in
// the middle of replaying the backup's logs, twice, then runs it again: it
// resumes and ends with the database the backup describes.
func TestKillDuringRecovery(t *testing.T) {
	ctx := context.Background()
	src := newSourceSegments(t, 4<<20)
	set := filepath.Join(t.TempDir(), "set")
	src.fullBackup(set, backupOptions{withKey: true})
	fillRecords(t, src.ca.Store(), killRecords)
	want := src.dump()
	m := src.incrementalBackup(set)
	if m.LastBackup().LastLSN != want.Meta.AppliedLSN {
		t.Fatalf("the set ends at LSN %d, the source at %d", m.LastBackup().LastLSN, want.Meta.AppliedLSN)
	}
	target := newTarget(t)
	_, err := Restore(ctx, Options{SetDir: set, Dir: target, Password: testPassword})
	must(t, err, "restore")
	dbPath := target.DBPath(src.name)
	snap := m.Backups[0].SnapshotLSN

	midway := 0
	var last uint64
	for round := 0; round < 2; round++ {
		child, out := startChild(t, "recover", target)
		started := false
		for out.Scan() {
			if strings.HasPrefix(out.Text(), "PHASE "+string(PhaseReplayBackup)) {
				started = true
				break
			}
		}
		if !started {
			t.Fatalf("round %d: the recovery child did not start replaying", round)
		}
		// The replay verifies the logs, then applies about 100,000
		// records a second (far fewer under the race detector): kill it
		// once it has written into the database's WAL, give or take a
		// few milliseconds, whatever the machine's speed.
		waitForWrites(t, dbPath+"-wal", 256<<10, time.Minute)
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
		kill(t, child)
		rec, err := Pending(target)
		must(t, err, "record after the kill")
		if rec == nil || rec.State != StateRecovering {
			t.Fatalf("round %d: record after the kill: %+v", round, rec)
		}
		applied := dumpOf(t, dbPath).Meta.AppliedLSN
		t.Logf("round %d: killed with the database at LSN %d of %d..%d", round, applied, snap, want.Meta.AppliedLSN)
		if applied < last || applied > want.Meta.AppliedLSN {
			t.Fatalf("round %d: the database is at LSN %d after the kill, %d before", round, applied, last)
		}
		if applied > snap && applied < want.Meta.AppliedLSN {
			midway++
		}
		last = applied
	}
	if midway == 0 {
		t.Fatal("no kill landed in the middle of the replay")
	}
	_, err = Recover(ctx, target, RecoverOptions{afterSave: stopAt(StateReplayed)})
	if !errors.Is(err, errStopped) {
		t.Fatalf("resumed recovery: %v", err)
	}
	got := dumpOf(t, dbPath)
	if got.Meta != want.Meta || len(got.Requests) != len(want.Requests) {
		t.Fatalf("after resuming: meta %+v, %d requests; want %+v, %d requests", got.Meta, len(got.Requests), want.Meta, len(want.Requests))
	}
	for i := range got.Requests {
		if got.Requests[i].ID != want.Requests[i].ID || got.Requests[i].SubmittedLSN != want.Requests[i].SubmittedLSN {
			t.Fatalf("request %d differs after resuming", i)
		}
	}
	res, err := Recover(ctx, target, RecoverOptions{})
	must(t, err, "finish recovery")
	if res.Record.Recovery.Attempts != 3 {
		t.Fatalf("%d attempts recorded, want 3", res.Record.Recovery.Attempts)
	}
	openRestored(t, target)
}

// fillRecords appends n request records from 256 goroutines (group
// commit).
func fillRecords(t testing.TB, db *store.DB, n int) {
	t.Helper()
	const workers = 256
	csr := make([]byte, 200)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				_, err := db.SubmitRequest(context.Background(), store.NewRequest{CSR: csr, Subject: fmt.Sprintf("CN=r%d", i),
					Profile: "tls-server", Requester: "filler"})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("fill: %v", err)
	}
}

// waitForWrites waits until the file at p holds more than n bytes, or
// fails the test after d.
func waitForWrites(t *testing.T, p string, n int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if fi, err := os.Stat(p); err == nil && fi.Size() > n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not grow past %d bytes in %s", p, n, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

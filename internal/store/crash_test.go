package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test re-runs this test binary as a child (crashChildEnv names
// the data directory) that writes from many goroutines and prints every
// acknowledged write; the parent kills it with SIGKILL at a random moment.
const (
	crashChildEnv  = "CERTSRV_STORE_CRASH_CHILD"
	crashRoundsEnv = "CERTSRV_CRASH_ROUNDS"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	code := m.Run()
	for _, dir := range benchTempDirs {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

func crashOptions(dir string) Options {
	o := testLayout(dir)
	o.SegmentSize = 64 << 10
	o.CheckpointInterval = 50 * time.Millisecond
	return o
}

// crashChild opens the database in dir, prints READY, then enrolls and revokes from 16
// goroutines until it is killed, printing one line per acknowledged write:
// "E <request id> <serial> <lsn>" or "R <serial> <lsn>".
func crashChild(dir string) int {
	ctx := context.Background()
	d, err := Open(ctx, crashOptions(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 3
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		outMu.Lock()
		os.Stdout.WriteString(line)
		outMu.Unlock()
	}
	say("READY\n")
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var mine []string
			for i := 0; ; i++ {
				if i%4 == 3 && len(mine) > 0 {
					s := mine[0]
					mine = mine[1:]
					if err := errOnly(d.Revoke(ctx, s, 4, time.Time{})); err != nil {
						fmt.Fprintln(os.Stderr, "child revoke:", err)
						os.Exit(4)
					}
					c, err := d.CertificateBySerial(ctx, s)
					if err != nil {
						fmt.Fprintln(os.Stderr, "child read:", err)
						os.Exit(4)
					}
					say("R %s %d\n", s, c.RevokedLSN)
					continue
				}
				nr, nc := testRequest(fmt.Sprintf("g%d-%d", g, i)), testCert("crash")
				nr.CSR, nc.DER = nr.CSR[:64], nc.DER[:128]
				req, c, err := d.Enroll(ctx, nr, nc)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child enroll:", err)
					os.Exit(4)
				}
				mine = append(mine, c.Serial)
				say("E %d %s %d\n", req.ID, c.Serial, req.SubmittedLSN)
			}
		}(g)
	}
	wg.Wait()
	return 0
}

// crashLedger is everything children acknowledged, across rounds.
type crashLedger struct {
	enrolled map[int64]string  // request ID -> serial
	lsnOf    map[int64]uint64  // request ID -> LSN
	revoked  map[string]uint64 // serial -> LSN
}

// parse reads the complete lines of a child's output (a line cut by the
// kill is ignored) into the ledger.
func (l *crashLedger) parse(t *testing.T, out []byte) int {
	t.Helper()
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[:i+1]
	} else {
		out = nil
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && f[0] == "READY" || len(f) == 0:
		case len(f) == 4 && f[0] == "E":
			id, _ := strconv.ParseInt(f[1], 10, 64)
			lsn, _ := strconv.ParseUint(f[3], 10, 64)
			if _, dup := l.enrolled[id]; dup {
				t.Fatalf("request ID %d acknowledged twice", id)
			}
			l.enrolled[id], l.lsnOf[id] = f[2], lsn
			n++
		case len(f) == 3 && f[0] == "R":
			lsn, _ := strconv.ParseUint(f[2], 10, 64)
			l.revoked[f[1]] = lsn
			n++
		default:
			t.Fatalf("child printed %q", line)
		}
	}
	return n
}

// verify opens the database described by opts (soft recovery after the
// kill) and checks every acknowledged write: present, once, with its LSN;
// integrity_check ok. It closes the database again.
func (l *crashLedger) verify(t *testing.T, opts Options) {
	t.Helper()
	ctx := context.Background()
	d, err := Open(ctx, opts)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer d.Close()
	if m := d.Meta(); m.AppliedLSN != d.LastLSN() {
		t.Fatalf("after recovery applied LSN %d, log %d", m.AppliedLSN, d.LastLSN())
	}
	type row struct {
		serial     string
		lsn        uint64
		revoked    bool
		revokedLSN uint64
	}
	rows := map[int64]row{}
	bySerial := map[string]int64{}
	rs, err := d.rdb.QueryContext(ctx, `SELECT id, serial, submitted_lsn, revoked, revoked_lsn
		FROM requests WHERE serial IS NOT NULL`)
	mustf(t, err, "query")
	for rs.Next() {
		var id int64
		var r row
		mustf(t, rs.Scan(&id, &r.serial, &r.lsn, &r.revoked, &r.revokedLSN), "scan")
		rows[id] = r
		bySerial[r.serial] = id
	}
	mustf(t, rs.Err(), "rows")
	rs.Close()
	for id, serial := range l.enrolled {
		r, ok := rows[id]
		if !ok || r.serial != serial || r.lsn != l.lsnOf[id] {
			t.Fatalf("acknowledged request %d (serial %s, LSN %d): found %v %+v", id, serial, l.lsnOf[id], ok, r)
		}
	}
	for serial, lsn := range l.revoked {
		r := rows[bySerial[serial]]
		if !r.revoked || r.revokedLSN != lsn {
			t.Fatalf("acknowledged revocation of %s at LSN %d: %+v", serial, lsn, r)
		}
	}
	dupLSN := queryInt(t, opts.DBPath, "SELECT count(*) - count(DISTINCT submitted_lsn) FROM requests")
	dupSerial := queryInt(t, opts.DBPath, "SELECT count(serial) - count(DISTINCT serial) FROM requests")
	if dupLSN != 0 || dupSerial != 0 {
		t.Fatalf("records applied twice: %d duplicate LSNs, %d duplicate serials", dupLSN, dupSerial)
	}
	if got := integrityCheck(t, opts.DBPath); got != "ok" {
		t.Fatalf("integrity_check: %s", got)
	}
}

// TestCrashKill9 kills a writing child with SIGKILL at random moments and
// checks, after every kill, that every acknowledged write survived exactly
// once: the parent reopens (recovers) the crashed directory, checks it,
// closes it, and the next child continues on it. 20 rounds;
// CERTSRV_CRASH_ROUNDS=N runs N.
func TestCrashKill9(t *testing.T) {
	rounds := 20
	if v := os.Getenv(crashRoundsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashRoundsEnv, v)
		}
		rounds = n
	}
	dir := t.TempDir()
	d, err := Create(context.Background(), crashOptions(dir))
	mustf(t, err, "create")
	mustf(t, d.Close(), "close")
	l := &crashLedger{enrolled: map[int64]string{}, lsnOf: map[int64]uint64{}, revoked: map[string]uint64{}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := 0; round < rounds; round++ {
		delay := time.Duration(20+rng.IntN(281)) * time.Millisecond
		t0 := time.Now()
		out := runAndKill(t, dir, delay)
		t1 := time.Now()
		n := l.parse(t, out)
		// The crash image itself must be a sound SQLite database.
		if got := integrityCheck(t, crashOptions(dir).DBPath); got != "ok" {
			t.Fatalf("round %d: integrity_check of the crash image: %s", round, got)
		}
		l.verify(t, crashOptions(dir))
		if out, ok := sqlite3Check(t, crashOptions(dir).DBPath); ok && out != "ok" {
			t.Fatalf("round %d: sqlite3 integrity_check: %s", round, out)
		}
		t.Logf("round %d: killed after %v, %d acknowledged writes (%d in total); child ran %v, verification took %v",
			round, delay, n, len(l.enrolled)+len(l.revoked), t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	}
	if len(l.enrolled) == 0 {
		t.Fatal("no child acknowledged a write")
	}
}

// runAndKill runs a crash child on dir, kills it with SIGKILL delay after
// it is ready, and returns what it printed.
func runAndKill(t *testing.T, dir string, delay time.Duration) []byte {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	mustf(t, err, "pipe")
	mustf(t, cmd.Start(), "start child")
	var out bytes.Buffer
	ready := make(chan struct{})
	copied := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		signalled := false
		for {
			n, err := pipe.Read(buf)
			out.Write(buf[:n])
			if !signalled && bytes.Contains(out.Bytes(), []byte("READY\n")) {
				close(ready)
				signalled = true
			}
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				if !signalled {
					close(ready)
				}
				copied <- err
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("child not ready: %s", stderr.String())
	}
	time.Sleep(delay)
	mustf(t, cmd.Process.Signal(syscall.SIGKILL), "kill child")
	// Read to EOF (the pipe closes when the child dies) before Wait
	// closes it.
	if err := <-copied; err != nil {
		t.Fatalf("read child output: %v", err)
	}
	werr := cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v; stderr: %s", werr, stderr.String())
	}
	return out.Bytes()
}

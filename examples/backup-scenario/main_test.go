package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/backuptest"
	"github.com/certsrv/certsrv/internal/testserver"
	"github.com/certsrv/certsrv/internal/wal"
)

// envRunMain makes the test binary run the example's main, so the test
// runs the program as its own process.
const envRunMain = "BACKUP_SCENARIO_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func startServer(t *testing.T) *testserver.Server {
	t.Helper()
	return testserver.Start(t, backuptest.Service(t))
}

// runScenario runs the example as a process.
func runScenario(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1", certadm.EnvServer+"=", certadm.EnvCreds+"=")
	cmd.Dir = t.TempDir()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

var stepLine = regexp.MustCompile(`^step (\d+): `)

func TestScenarioAgainstServer(t *testing.T) {
	srv := startServer(t)
	c, err := certadm.Dial(context.Background(), srv.Addr, certadm.WithCredentials(srv.CredsDir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runScenario(t, "--creds", srv.CredsDir, srv.Addr, out)
	t.Logf("output:\n%s", stdout)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}

	// The steps ran in the scenario's order: 3..6, then 7..9 per database
	// file, 10, 7..9 per log, 11, 12, 13 per dynamic file, 14, 15.
	var steps []int
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		m := stepLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected output line %q", l)
		}
		n, _ := strconv.Atoi(m[1])
		steps = append(steps, n)
	}
	dbFiles, logFiles, dynFiles := listDir(t, out)
	want := []int{3, 4, 5, 6}
	for range dbFiles {
		want = append(want, 7, 8, 9)
	}
	want = append(want, 10)
	for range logFiles {
		want = append(want, 7, 8, 9)
	}
	want = append(want, 11, 12)
	for range dynFiles {
		want = append(want, 13)
	}
	want = append(want, 14, 15)
	if !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %v\n%s", steps, want, stdout)
	}
	if len(dbFiles) != 1 || len(logFiles) == 0 || len(dynFiles) == 0 {
		t.Fatalf("database %v, logs %v, dynamic %v", dbFiles, logFiles, dynFiles)
	}
	for _, s := range []string{"step 14: CertSrvBackupEnd: backup recorded", "step 15: CertSrvBackupFree: nothing to free in Go", "step 3: CertSrvIsServerOnline: " + srv.Addr + " is online"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("output lacks %q", s)
		}
	}

	// certbkxp.dat is in the documented form and holds the server's map.
	rm, err := backupset.ReadRestoreMap(filepath.Join(out, "DataBase", "certbkxp.dat"))
	if err != nil {
		t.Fatal(err)
	}
	if rm.Database() != filepath.Join(srv.DataDir, "db", testserver.CAName+".db") {
		t.Errorf("restore map database %q, data dir %s", rm.Database(), srv.DataDir)
	}
	// The database is a consistent snapshot of this CA, and the logs
	// continue it, verified with the log format's own chain.
	meta, err := backupset.ReadDBMeta(context.Background(), filepath.Join(out, "DataBase", dbFiles[0]))
	if err != nil {
		t.Fatal(err)
	}
	var prev *wal.GenInfo
	for _, l := range logFiles {
		g, err := wal.VerifyGeneration(filepath.Join(out, "DataBase", l), prev)
		if err != nil {
			t.Fatal(err)
		}
		if g.Signature != meta.LogSignature {
			t.Errorf("%s belongs to another log set", l)
		}
		prev = &g
	}
	// The dynamic files are the server's publish/ files.
	for _, d := range dynFiles {
		a, _ := os.ReadFile(filepath.Join(out, "Dynamic", d))
		b, err := os.ReadFile(filepath.Join(srv.Dir.PublishDir(), d))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("Dynamic/%s differs from publish/%s: %v", d, d, err)
		}
	}
	// The server recorded the backup: a logs-only backup is now possible.
	b, err := c.BackupPrepare(context.Background(), certadm.BackupLogsOnly)
	if err != nil {
		t.Fatalf("logs-only after the scenario: %v", err)
	}
	b.Abort(context.Background())
}

// listDir returns the database files, log generations (in order) and
// dynamic files the scenario wrote, and fails on anything else.
func listDir(t *testing.T, out string) (db, logs, dyn []string) {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(out, "DataBase"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		switch n := e.Name(); {
		case n == "certbkxp.dat":
		case strings.HasSuffix(n, ".db"):
			db = append(db, n)
		case strings.HasSuffix(n, ".log"):
			logs = append(logs, n)
		default:
			t.Errorf("unexpected DataBase/%s", n)
		}
	}
	slices.Sort(logs)
	ds, err := os.ReadDir(filepath.Join(out, "Dynamic"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ds {
		dyn = append(dyn, e.Name())
	}
	return db, logs, dyn
}

func TestScenarioFailuresAndUsage(t *testing.T) {
	srv := startServer(t)
	if code, _, stderr := runScenario(t, "only-one-arg"); code != 2 || !strings.Contains(stderr, "usage:") {
		t.Errorf("usage: exit %d %s", code, stderr)
	}
	// A principal without the Operator role: step 3 works (any role may
	// ask), step 4 fails with E_ACCESSDENIED and nothing is written.
	reader, err := srv.Grant("reader", "Reader")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runScenario(t, "--creds", reader, srv.Addr, out)
	if code != 1 || !strings.Contains(stdout, "step 3") || strings.Contains(stdout, "step 4") ||
		!strings.Contains(stderr, "(HRESULT 0x80070005)") {
		t.Errorf("reader credential: exit %d\n%s%s", code, stdout, stderr)
	}
	// A server that is not there: step 3 fails.
	code, stdout, stderr = runScenario(t, "--creds", srv.CredsDir, "127.0.0.1:1", out)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "backup-scenario: ") {
		t.Errorf("no server: exit %d\n%s%s", code, stdout, stderr)
	}
	if es, _ := os.ReadDir(filepath.Join(out, "DataBase")); len(es) != 0 {
		t.Errorf("files written after a failure: %v", es)
	}
}

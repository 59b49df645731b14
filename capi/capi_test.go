package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/restore"
	"github.com/certsrv/certsrv/internal/testserver"
)

// exports are the 18 functions libcertadm.so must export.
var exports = []string{
	"CertSrvIsServerOnlineW", "CertSrvBackupPrepareW", "CertSrvRestoreGetDatabaseLocationsW",
	"CertSrvBackupGetDatabaseNamesW", "CertSrvBackupOpenFileW", "CertSrvBackupRead",
	"CertSrvBackupClose", "CertSrvBackupGetBackupLogsW", "CertSrvBackupTruncateLogs",
	"CertSrvBackupGetDynamicFileListW", "CertSrvBackupEnd", "CertSrvBackupFree",
	"CertSrvRestorePrepareW", "CertSrvRestoreRegisterW", "CertSrvRestoreRegisterThroughFile",
	"CertSrvRestoreRegisterComplete", "CertSrvRestoreEnd", "CertSrvServerControlW",
}

// TestLibraryExportsEveryFunction reads the dynamic symbol table of the
// built library: every certbcli.h name is there as a defined function.
func TestLibraryExportsEveryFunction(t *testing.T) {
	b := build(t)
	out, err := exec.Command("nm", "-D", "--defined-only", b.lib).Output()
	if err != nil {
		t.Fatalf("nm -D %s: %v", b.lib, err)
	}
	defined := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[1] == "T" {
			defined[f[2]] = true
		}
	}
	for _, name := range exports {
		if !defined[name] {
			t.Errorf("%s is not exported", name)
		}
	}
}

// TestLinkedDirectly compiles capi/test/link_check.c against the library
// with -lcertadm and the prototypes of certbcli.h, and runs it.
func TestLinkedDirectly(t *testing.T) {
	b := build(t)
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "link_check")
	dir := filepath.Dir(b.lib)
	cmd := exec.Command("gcc", "-std=c11", "-Wall", "-Wextra", "-Werror",
		"-I"+filepath.Join(root, "include"), "-o", bin, filepath.Join(root, "capi", "test", "link_check.c"),
		"-L"+dir, "-Wl,-rpath,"+dir, "-lcertadm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc link_check: %v\n%s", err, out)
	}
	stdout, stderr, err := run(t, t.TempDir(), nil, time.Minute, bin)
	if err != nil || !strings.Contains(stdout, "link_check: ok") {
		t.Errorf("link_check: %v\n%s%s", err, stdout, stderr)
	}
}

// TestCProgram runs capi/test/test_certbcli.c against a live server and
// requires every check to pass and every export to be exercised.
func TestCProgram(t *testing.T) {
	b := build(t)
	srv := startServer(t)
	reader, err := srv.Grant("reader", "Reader")
	if err != nil {
		t.Fatal(err)
	}
	stopped := testserver.Start(t)
	stopped.Stop()

	work := t.TempDir() // no certsrv-data here: the default credentials do not exist
	stdout, stderr, err := run(t, work, []string{"CERTADM_CREDS=" + srv.CredsDir, "CERTBCLI_TRACE=1"}, 3*time.Minute,
		b.test, b.lib, srv.Addr, deadAddress(t), reader, srv.DataDir, stopped.DataDir)
	t.Logf("test_certbcli output:\n%s", stdout)
	if err != nil {
		t.Fatalf("test_certbcli: %v\nstderr:\n%s", err, stderr)
	}
	// With CERTBCLI_TRACE set, failing calls explain themselves on stderr,
	// and successful ones stay quiet.
	for _, want := range []string{
		"certbcli: CertSrvBackupRead: cbBuffer: buffer too small (HRESULT 0x8007007A)",
		"certbcli: CertSrvBackupPrepareW: ", "(HRESULT 0xC7FF000E)",
		"certbcli: CertSrvRestoreEnd: handle 0x0: invalid handle (HRESULT 0x80070006)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("trace output lacks %q", want)
		}
	}
	if strings.Contains(stderr, "HRESULT 0x00000000") {
		t.Error("a successful call was traced")
	}

	var passed, failed int
	covered := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sawSummary := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ok - "):
			passed++
		case strings.HasPrefix(line, "not ok - "):
			failed++
			t.Errorf("C check failed: %s", line)
		case strings.HasPrefix(line, "covers "):
			covered[strings.TrimPrefix(line, "covers ")] = true
		case strings.HasSuffix(line, " failed") && strings.Contains(line, " passed, "):
			sawSummary = true
		}
	}
	if !sawSummary {
		t.Error("no summary line: the program stopped early")
	}
	if failed != 0 {
		t.Errorf("%d C checks failed", failed)
	}
	if passed < 150 {
		t.Errorf("only %d C checks passed; the program skipped work", passed)
	}
	for _, name := range exports {
		if !covered[name] {
			t.Errorf("no C check covers %s", name)
		}
	}
	// The restore the program registered and completed is in the stopped
	// CA's data directory, with the program's arguments; the copy it wrote
	// through a file says the same.
	rec, err := restore.ReadRecordFile(filepath.Join(stopped.DataDir, "restore", "restore.json"))
	if err != nil {
		t.Fatalf("restore record: %v", err)
	}
	copyRec, err := restore.ReadRecordFile(filepath.Join(stopped.DataDir, "backup-logs", "restore.json"))
	if err != nil {
		t.Fatalf("restore record written through a file: %v", err)
	}
	for _, r := range []*restore.Record{rec, copyRec} {
		if len(r.RestoreMap) != 1 || r.RestoreMap[0].Old != "/var/lib/certsrv-old/db/Old host CA.db" ||
			r.RestoreMap[0].New != stopped.Dir.DBPath(stopped.CA.Name()) || r.LowGen != 1 || r.HighGen != 2 ||
			r.BackupLogDir != filepath.Join(stopped.DataDir, "backup-logs") || r.LogDir != stopped.Dir.LogDir() {
			t.Errorf("restore record %+v does not hold the registered values", r)
		}
	}
	if rec.State != restore.StateComplete {
		t.Errorf("restore record state %q, want %q", rec.State, restore.StateComplete)
	}

	// CSCONTROL_SHUTDOWN really stopped the server.
	if err := srv.Wait(10 * time.Second); err != nil {
		t.Errorf("server after CSCONTROL_SHUTDOWN: %v", err)
	}
}

// TestSuspendedServer: while the CA is suspended for a restore,
// CertSrvIsServerOnlineW answers S_OK with FALSE and CertSrvBackupPrepareW
// fails with CERTSRV_E_SERVER_SUSPENDED; once resumed it is online again.
func TestSuspendedServer(t *testing.T) {
	b := build(t)
	srv := startServer(t)
	env := []string{"CERTADM_CREDS=" + srv.CredsDir}
	srv.Server.SetSuspended(true)
	stdout, stderr, err := run(t, t.TempDir(), env, time.Minute, b.test, "--suspended", b.lib, srv.Addr)
	if err != nil || !strings.Contains(stdout, "\nok - a suspended CA is not online\n") ||
		!strings.Contains(stdout, "\nok - BackupPrepare(suspended CA): 0x80094006") || !strings.Contains(stdout, " passed, 0 failed") {
		t.Errorf("suspended probe: %v\n%s%s", err, stdout, stderr)
	}
	srv.Server.SetSuspended(false)
	stdout, _, err = run(t, t.TempDir(), env, time.Minute, b.test, "--suspended", b.lib, srv.Addr)
	if err == nil || !strings.Contains(stdout, "not ok - a suspended CA is not online") {
		t.Errorf("the probe passed against a CA that is not suspended: %v\n%s", err, stdout)
	}
}

// TestBackupScenario runs examples/c/backup_scenario against a live server
// and checks the set it wrote: the database snapshot of this CA, a chain of
// log generations, the restore map in the backupset format, and the
// dynamic files byte for byte; and that the CA recorded the backup.
func TestBackupScenario(t *testing.T) {
	b := build(t)
	srv := startServer(t)
	issueSome(t, srv, 5)
	out := filepath.Join(t.TempDir(), "set")
	stdout, stderr, err := run(t, t.TempDir(), []string{"CERTADM_CREDS=" + srv.CredsDir}, 2*time.Minute,
		b.scenario, srv.Addr, out)
	t.Logf("backup_scenario:\n%s%s", stdout, stderr)
	if err != nil {
		t.Fatalf("backup_scenario: %v", err)
	}
	checkScenarioSet(t, srv, out)

	// The CA recorded a full backup: a logs-only backup is now accepted.
	ctx := context.Background()
	bc, err := certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupLogsOnly, certadm.WithCredentials(srv.CredsDir))
	if err != nil {
		t.Fatalf("logs-only backup after the scenario: %v", err)
	}
	bc.Abort(ctx)

	// A second run into the same, now non-empty, directory is refused
	// before anything is touched.
	_, _, err = run(t, t.TempDir(), []string{"CERTADM_CREDS=" + srv.CredsDir}, time.Minute, b.scenario, srv.Addr, out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("scenario into a non-empty directory: %v, want exit status 2", err)
	}
}

// TestBackupScenarioUsage: wrong arguments give exit status 2.
func TestBackupScenarioUsage(t *testing.T) {
	b := build(t)
	_, stderr, err := run(t, t.TempDir(), nil, time.Minute, b.scenario, "only-one-argument")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr, "usage:") {
		t.Errorf("got %v, %q; want exit status 2 and a usage line", err, stderr)
	}
}

// TestBackupScenarioUnreachable: a server that is not there fails the
// scenario at step 3 and leaves no set behind.
func TestBackupScenarioUnreachable(t *testing.T) {
	b := build(t)
	srv := startServer(t)
	out := filepath.Join(t.TempDir(), "set")
	_, stderr, err := run(t, t.TempDir(), []string{"CERTADM_CREDS=" + srv.CredsDir}, time.Minute, b.scenario, deadAddress(t), out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("got %v; want exit status 1", err)
	}
	if !strings.Contains(stderr, "CertSrvIsServerOnlineW") || !strings.Contains(stderr, "0xC7FF0007") {
		t.Errorf("stderr does not name the failing call and hrCouldNotConnect: %q", stderr)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the output directory exists after a failed start: %v", err)
	}
}

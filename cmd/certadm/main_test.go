package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/backuptest"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/testserver"
)

// envRunMain makes the test binary behave as certadm, so a test can check
// the exit status of a real process.
const envRunMain = "CERTADM_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// isolate clears the discovery environment and moves into an empty
// directory, so nothing outside the test is found.
func isolate(t *testing.T) string {
	t.Helper()
	t.Setenv(certadm.EnvServer, "")
	t.Setenv(certadm.EnvCreds, "")
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

// cli runs certadm in-process and returns the exit status and outputs.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustCLI runs certadm and fails the test unless it exits 0.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, args...)
	if code != 0 {
		t.Fatalf("certadm %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// manualProfile is a tls-server profile whose requests wait for an officer.
const manualProfile = "manual"

// startServer starts a real certsrv server in-process, with the Backup
// service wired as the daemon wires it and the extra profile "manual".
func startServer(t *testing.T) *testserver.Server {
	t.Helper()
	profiles := ca.DefaultProfiles()
	manual := profiles[0]
	manual.Name = manualProfile
	manual.AutoIssue = false
	profileJSON, err := json.Marshal(append(profiles, manual))
	if err != nil {
		t.Fatal(err)
	}
	return testserver.Start(t,
		testserver.WithConfig(func(c *datadir.Config) { c.Profiles = profileJSON }),
		backuptest.Service(t))
}

func TestUsageErrorsExitTwo(t *testing.T) {
	isolate(t)
	cases := [][]string{
		{},
		{"bogus"},
		{"ping", "--bogus"},
		{"ping", "extra"},
		{"--timeout", "soon", "ping"},
		{"--timeout", "-1s", "ping"},
		{"approve"},
		{"approve", "abc"},
		{"approve", "0"},
		{"deny", "1", "2"},
		{"get", "-5"},
		{"revoke"},
		{"revoke", ""},
		{"submit"},
		{"view", "--format", "xml"},
		{"view", "--format", "TABLE"},
		{"view", "--status", "lost"},
		{"view", "--expires-before", "next tuesday"},
		{"view", "--limit", "-1"},
		{"view", "--id", "x"},
		{"view", "--filter", "color=red"},
		{"view", "--filter", "status=issued,status=revoked"},
		{"view", "--filter"},
		{"role"},
		{"role", "bogus"},
		{"role", "grant", "alice"},
		{"role", "grant", "alice", "Officer"},
		{"key", "backup", "dir"},
		{"key", "backup"},
		{"bench", "issue", "-n", "0"},
		{"bench", "issue", "--connections", "many"},
		{"locations", "x"},
	}
	for _, args := range cases {
		code, out, errOut := cli(t, args...)
		if code != exitUsage {
			t.Errorf("certadm %q: exit %d, want 2\n%s%s", args, code, out, errOut)
			continue
		}
		if !strings.HasPrefix(errOut, "certadm: ") || !strings.Contains(errOut, "--help") || strings.Contains(errOut, "HRESULT") {
			t.Errorf("certadm %q: stderr %q", args, errOut)
		}
	}
}

func TestViewFormatErrorNamesTheFormat(t *testing.T) {
	isolate(t)
	code, _, errOut := cli(t, "view", "--format", "yaml")
	if code != exitUsage || !strings.Contains(errOut, `"yaml"`) || !strings.Contains(errOut, "table, json or csv") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestHelpExitsZero(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{{"--help"}, {"view", "--help"}, {"role", "grant", "--help"}, {"help", "revoke"}} {
		code, out, errOut := cli(t, args...)
		if code != exitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("certadm %q: exit %d\n%s%s", args, code, out, errOut)
		}
	}
}

func TestOperationErrorsExitOneWithHRESULT(t *testing.T) {
	isolate(t)
	code, _, errOut := cli(t, "ping")
	if code != exitError || !strings.HasSuffix(errOut, "(HRESULT 0x80070002)\n") || !strings.Contains(errOut, certadm.EnvCreds) {
		t.Fatalf("no credentials: exit %d: %s", code, errOut)
	}
	code, _, errOut = cli(t, "submit", "no-such.csr")
	if code != exitError || !strings.HasSuffix(errOut, "(HRESULT 0x80070002)\n") {
		t.Fatalf("missing CSR file: exit %d: %s", code, errOut)
	}
}

func TestProcessExitStatus(t *testing.T) {
	isolate(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--help"}, 0, ""},
		{[]string{"view", "--format", "xml"}, 2, "certadm: --format"},
		{[]string{"view", "--filter", "expires<soon"}, 2, `certadm: --filter condition "expires<soon"`},
		{[]string{"ping"}, 1, "(HRESULT 0x80070002)"},
	}
	for _, c := range cases {
		cmd := exec.Command(exe, c.args...)
		cmd.Env = append(os.Environ(), envRunMain+"=1")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(errOut.String(), c.stderr) {
			t.Errorf("certadm %q: exit %d, stderr %q; want %d, %q", c.args, code, errOut.String(), c.code, c.stderr)
		}
	}
}

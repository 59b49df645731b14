package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/verify"
)

// verifyJSON is the part of certadm verify --json the tests read.
type verifyJSON struct {
	OK       bool   `json:"ok"`
	Manifest bool   `json:"manifest"`
	CA       string `json:"ca"`
	Replay   struct {
		Records int `json:"records"`
	} `json:"replay"`
	Counts struct {
		Certificates int64 `json:"certificates"`
	} `json:"counts"`
	Checks []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"checks"`
	Problems []struct {
		Check string `json:"check"`
		Path  string `json:"path"`
		Error string `json:"error"`
	} `json:"problems"`
	LastVerified *struct {
		Outcome string `json:"outcome"`
		Tool    string `json:"tool"`
	} `json:"last_verified"`
}

// backedUpSet takes a full backup, then two incremental ones, of a fresh
// CA while it issues certificates, with certadm backup, and returns the
// set: three log generations or more.
func backedUpSet(t *testing.T) string {
	t.Helper()
	srv := startServer(t)
	c := client(t, srv.Addr, srv.CredsDir)
	conn := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	issueCerts(t, c, 10, "v")
	dir := filepath.Join(t.TempDir(), "set")
	stop := startIssuing(t, c)
	mustCLI(t, append(conn, "backup", dir)...)
	stop()
	for _, prefix := range []string{"w", "x"} {
		issueCerts(t, c, 5, prefix)
		mustCLI(t, append(conn, "backup", "--incremental", dir)...)
	}
	return dir
}

func TestVerifyCommand(t *testing.T) {
	isolate(t)
	dir := backedUpSet(t)
	tmp := t.TempDir()

	code, out, errOut := cli(t, "verify", "--temp-dir", tmp, dir)
	if code != exitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "result: OK") || strings.Contains(out, "FAIL") || !strings.Contains(out, "last verified: never") ||
		strings.Count(out, "\n  ok  ") != 12 || errOut != "" {
		t.Errorf("first run:\n%s%s", out, errOut)
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Errorf("the temporary directory holds %v (%v)", ents, err)
	}
	rec, err := verify.ReadRecord(dir)
	if err != nil {
		t.Fatalf("verified.json after the first run: %v", err)
	}
	if rec.Outcome != verify.OutcomeOK || !strings.HasPrefix(rec.Tool, "certadm ") {
		t.Errorf("record %+v", rec)
	}

	// The second run reports the first, in JSON too.
	code, out, errOut = cli(t, "verify", "--json", dir)
	if code != exitOK {
		t.Fatalf("verify --json: exit %d\n%s%s", code, out, errOut)
	}
	var j verifyJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("verify --json output does not parse: %v\n%s", err, out)
	}
	if !j.OK || !j.Manifest || j.CA == "" || j.Replay.Records == 0 || j.Counts.Certificates < 15 || len(j.Checks) != 12 ||
		len(j.Problems) != 0 || j.LastVerified == nil || j.LastVerified.Outcome != "ok" || j.LastVerified.Tool != rec.Tool {
		t.Errorf("JSON report %+v", j)
	}
	for _, c := range j.Checks {
		if c.Status != "ok" {
			t.Errorf("check %+v", c)
		}
	}

	// --no-write leaves no record behind.
	if err := os.Remove(filepath.Join(dir, backupset.VerifiedFile)); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "verify", "--no-write", dir)
	if _, err := os.Stat(filepath.Join(dir, backupset.VerifiedFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("--no-write wrote verified.json: %v", err)
	}

	// A damaged set fails with exit status 1, names the file, and the
	// failure is recorded.
	db := ""
	ents, err := os.ReadDir(filepath.Join(dir, backupset.DatabaseDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".db") {
			db = backupset.DatabaseDir + "/" + e.Name()
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(db)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, out, errOut = cli(t, "verify", dir)
	if code != exitError || !strings.Contains(out, "FAIL") || !strings.Contains(out, db+": file size mismatch") ||
		!strings.Contains(out, "result: FAILED") || !strings.Contains(errOut, "failed verification") {
		t.Errorf("damaged set: exit %d\n%s%s", code, out, errOut)
	}
	if rec, err := verify.ReadRecord(dir); err != nil || rec.Outcome != verify.OutcomeFailed {
		t.Errorf("record after a failure: %+v, %v", rec, err)
	}
	code, out, _ = cli(t, "verify", "--json", "--no-write", dir)
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != exitError || j.OK || len(j.Problems) == 0 || j.Problems[0].Path != db {
		t.Errorf("damaged set, --json: exit %d, %v, %+v", code, err, j)
	}
}

func TestVerifyWithoutManifestCommand(t *testing.T) {
	isolate(t)
	dir := backedUpSet(t)
	if err := os.Remove(filepath.Join(dir, backupset.ManifestFile)); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "verify", "--no-write", dir)
	if !strings.Contains(out, "no manifest") || !strings.Contains(out, "result: OK") {
		t.Errorf("output:\n%s", out)
	}
	// One log generation fewer: refused.
	logs, err := filepath.Glob(filepath.Join(dir, backupset.DatabaseDir, "ca*.log"))
	if err != nil || len(logs) < 3 {
		t.Fatalf("logs %v, %v", logs, err)
	}
	if err := os.Remove(logs[len(logs)/2]); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "verify", "--no-write", dir)
	if code != exitError || !strings.Contains(out, filepath.Base(logs[len(logs)/2])) {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestVerifyUsageAndNotASet(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{{"verify"}, {"verify", "a", "b"}, {"verify", "--bogus", "x"}} {
		if code, out, errOut := cli(t, args...); code != exitUsage {
			t.Errorf("certadm %q: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	empty := t.TempDir()
	code, out, errOut := cli(t, "verify", empty)
	if code != exitError || !strings.Contains(out, "not a backup set") {
		t.Errorf("empty directory: exit %d\n%s%s", code, out, errOut)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("verify wrote into a directory that is not a set: %v", ents)
	}
}

// TestVerifyProcessExitStatus runs certadm verify as a real process.
func TestVerifyProcessExitStatus(t *testing.T) {
	isolate(t)
	dir := backedUpSet(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	status := func() (int, string) {
		cmd := exec.Command(exe, "verify", "--no-write", dir)
		cmd.Env = append(os.Environ(), envRunMain+"=1")
		var out bytes.Buffer
		cmd.Stdout = &out
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	}
	if code, out := status(); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := status(); code != 1 || !strings.Contains(out, "extra.txt") {
		t.Fatalf("extra file: exit %d\n%s", code, out)
	}
}

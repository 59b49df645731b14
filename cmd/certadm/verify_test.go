package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/verify"
)

// verifyJSON is the part of certadm verify --json the tests read.
type verifyJSON struct {
	OK       bool   `json:"ok"`
	Outcome  string `json:"outcome"`
	Error    string `json:"error"`
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
	Unchanged bool `json:"unchanged_since_last_verified"`
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
	if !strings.Contains(out, "result: OK") || strings.Contains(out, "FAIL") || !strings.Contains(out, "previously verified: never") ||
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

// copySetDir copies the set src into a new directory and returns it.
func copySetDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "set")
	if err := fsutil.CopyTree(dst, src); err != nil {
		t.Fatal(err)
	}
	return dst
}

// verifyChecks is the order of certadm verify's checks.
var verifyChecks = []string{"manifest", "files", "restore map", "database snapshot", "log chain", "configuration",
	"trial restore", "integrity", "CA certificate", "certificates", "CRLs", "counts"}

// checkStatusList gives each check its status in the JSON report: "ok" for
// the file checks, "skipped" from the trial restore on, except those named.
func checkStatusList(except map[string]string) string {
	var out []string
	for i, n := range verifyChecks {
		st := "ok"
		if i >= 6 {
			st = "skipped"
		}
		if s, ok := except[n]; ok {
			st = s
		}
		out = append(out, n+"="+st)
	}
	return strings.Join(out, ", ")
}

// gotStatusList formats the checks of a JSON report like checkStatusList.
func gotStatusList(j verifyJSON) string {
	var out []string
	for _, c := range j.Checks {
		out = append(out, c.Name+"="+c.Status)
	}
	return strings.Join(out, ", ")
}

// reportLine formats a check's line of the text report.
func reportLine(status, name, detail string) string {
	return fmt.Sprintf("  %s  %-18s %s", status, name, detail)
}

// hasReportLine reports whether out holds line exactly, as a whole line.
func hasReportLine(out, line string) bool {
	for _, l := range strings.Split(out, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// TestVerifyDamagedSetCheckLines damages copies of a verified set with a
// manifest and checks each check's line and JSON status: a check whose file
// failed its file check is never ok, a missing log generation is a gap in
// the log chain, the last-verified line does not call the set unchanged,
// and verified.json records the failure.
func TestVerifyDamagedSetCheckLines(t *testing.T) {
	isolate(t)
	src := backedUpSet(t)
	mustCLI(t, "verify", src)
	prev, err := verify.ReadRecord(src)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := filepath.Glob(filepath.Join(src, backupset.DatabaseDir, "ca*.log"))
	if err != nil || len(logs) < 3 {
		t.Fatalf("logs %v, %v", logs, err)
	}
	dbs, err := filepath.Glob(filepath.Join(src, backupset.DatabaseDir, "*.db"))
	if err != nil || len(dbs) != 1 {
		t.Fatalf("databases %v, %v", dbs, err)
	}
	rel := func(p string) string { return backupset.DatabaseDir + "/" + filepath.Base(p) }
	mid, last, db := rel(logs[len(logs)/2]), rel(logs[len(logs)-1]), rel(dbs[0])
	lastSize := int64(0)
	if fi, err := os.Stat(logs[len(logs)-1]); err == nil {
		lastSize = fi.Size()
	}
	lastVerified := "previously verified: " + prev.Time.Format(time.RFC3339) + " by " + prev.Tool + ": ok; this run found the set damaged"
	cases := []struct {
		name     string
		damage   func(t *testing.T, dir string)
		statuses map[string]string
		lines    []string // exact lines of the text report
		prefixes []string // lines of the text report, by their beginning
		problems []string // problems verified.json records, by their beginning
	}{
		{"middle log generation deleted", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(mid))); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"files": "failed", "log chain": "failed"},
			[]string{reportLine("FAIL", "files", "1 problem"), "          - " + mid + ": file missing from backup set",
				reportLine("FAIL", "log chain", "1 problem")},
			[]string{"          - " + mid + ": backup chain gap: ", reportLine("ok  ", "database snapshot", db+" reflects LSN ")},
			[]string{mid + ": file missing from backup set", mid + ": backup chain gap: "}},
		{"last log generation truncated by 100 bytes", func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, filepath.FromSlash(last)), lastSize-100); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"files": "failed", "log chain": "skipped"},
			[]string{reportLine("skip", "log chain", "not checked: "+last+" failed its file check; the other generations showed no problem"),
				fmt.Sprintf("          - %s: file truncated: expected %d bytes, found %d bytes", last, lastSize, lastSize-100)},
			nil,
			[]string{fmt.Sprintf("%s: file truncated: expected %d bytes, found %d bytes", last, lastSize, lastSize-100)}},
		{"one byte of the database flipped", func(t *testing.T, dir string) {
			p := filepath.Join(dir, filepath.FromSlash(db))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x01
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"files": "failed", "database snapshot": "skipped"},
			[]string{reportLine("skip", "database snapshot", "not checked: "+db+" failed its file check")},
			[]string{"          - " + db + ": file digest mismatch: ", reportLine("ok  ", "log chain", "")},
			[]string{db + ": file digest mismatch: "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copySetDir(t, src)
			c.damage(t, dir)

			code, out, errOut := cli(t, "verify", "--json", "--no-write", dir)
			var j verifyJSON
			if err := json.Unmarshal([]byte(out), &j); err != nil || code != exitError {
				t.Fatalf("verify --json: exit %d, %v\n%s%s", code, err, out, errOut)
			}
			if got, want := gotStatusList(j), checkStatusList(c.statuses); got != want {
				t.Errorf("JSON checks\n got %s\nwant %s", got, want)
			}
			if j.OK || j.Outcome != "failed" || j.Error != "" || j.Unchanged || j.LastVerified == nil || j.LastVerified.Outcome != "ok" {
				t.Errorf("JSON report: ok %t, outcome %q, error %q, unchanged %t, last verified %+v", j.OK, j.Outcome, j.Error, j.Unchanged, j.LastVerified)
			}

			code, out, errOut = cli(t, "verify", dir)
			if code != exitError || !strings.Contains(errOut, "failed verification") || strings.Contains(errOut, "could not verify") {
				t.Errorf("exit %d\n%s", code, errOut)
			}
			for _, l := range append(c.lines, lastVerified) {
				if !hasReportLine(out, l) {
					t.Errorf("the report lacks the line\n%q\n%s", l, out)
				}
			}
			for _, p := range c.prefixes {
				if !strings.Contains(out, "\n"+p) {
					t.Errorf("the report lacks a line beginning\n%q\n%s", p, out)
				}
			}
			if strings.Contains(out, "unchanged since") {
				t.Errorf("the report calls the damaged set unchanged:\n%s", out)
			}
			rec, err := verify.ReadRecord(dir)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Outcome != verify.OutcomeFailed || len(rec.Problems) != len(c.problems) {
				t.Fatalf("verified.json: outcome %q, problems %q", rec.Outcome, rec.Problems)
			}
			for i, p := range c.problems {
				if !strings.HasPrefix(rec.Problems[i], p) {
					t.Errorf("verified.json problem %d: %q, want it to begin %q", i, rec.Problems[i], p)
				}
			}
		})
	}
}

// TestVerifyTempDirProblemIsNotAVerdict verifies a good set with a
// temporary directory that does not exist, and with a timeout that has
// passed: exit 1 with "could not verify", outcome "error" in JSON, and
// verified.json left as it was (or not written).
func TestVerifyTempDirProblemIsNotAVerdict(t *testing.T) {
	isolate(t)
	dir := backedUpSet(t)
	mustCLI(t, "verify", dir)
	recPath := filepath.Join(dir, backupset.VerifiedFile)
	before, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := verify.ReadRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(t.TempDir(), "absent")
	unchanged := func(when string) {
		t.Helper()
		after, err := os.ReadFile(recPath)
		if err != nil || !bytes.Equal(after, before) {
			t.Errorf("%s: verified.json changed (%v):\n%s", when, err, after)
		}
	}

	code, out, errOut := cli(t, "verify", "--temp-dir", absent, dir)
	wantErr := "certadm: could not verify " + dir + ": trial restore: make a temporary directory under " + absent + ": "
	if code != exitError || !strings.HasPrefix(errOut, wantErr) || strings.Contains(errOut, "failed verification") {
		t.Errorf("exit %d, stderr %q; want it to begin %q", code, errOut, wantErr)
	}
	if strings.Count(out, "\n  ok  ") != 6 || strings.Count(out, "\n  skip  ") != 6 || strings.Contains(out, "FAIL") ||
		!strings.Contains(out, "\n"+reportLine("skip", "trial restore", "not run: make a temporary directory under "+absent+": ")) ||
		!hasReportLine(out, reportLine("skip", "integrity", "not run: the trial restore could not run here")) ||
		!strings.Contains(out, "\nresult: NOT VERIFIED (a problem of this machine, no verdict on the set), in ") ||
		!hasReportLine(out, "previously verified: "+prev.Time.Format(time.RFC3339)+" by "+prev.Tool+": ok (this run reached no verdict)") {
		t.Errorf("report:\n%s", out)
	}
	unchanged("text")

	code, out, _ = cli(t, "verify", "--json", "--temp-dir", absent, dir)
	var j verifyJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != exitError {
		t.Fatalf("verify --json: exit %d, %v\n%s", code, err, out)
	}
	if got, want := gotStatusList(j), checkStatusList(nil); got != want {
		t.Errorf("JSON checks\n got %s\nwant %s", got, want)
	}
	if j.OK || j.Outcome != "error" || !strings.HasPrefix(j.Error, "could not verify "+dir+": ") || len(j.Problems) != 0 ||
		j.Unchanged || j.LastVerified == nil || j.LastVerified.Outcome != "ok" {
		t.Errorf("JSON report %+v", j)
	}
	unchanged("--json")

	// An interrupted verification (here by --timeout) is no verdict either.
	code, out, errOut = cli(t, "--timeout", "1ns", "verify", dir)
	wantErr = "certadm: could not verify " + dir + ": verification interrupted: " + context.DeadlineExceeded.Error()
	if code != exitError || !strings.HasPrefix(errOut, wantErr) ||
		!strings.Contains(out, "\nresult: NOT VERIFIED (a problem of this machine, no verdict on the set), in ") ||
		!hasReportLine(out, "previously verified: "+prev.Time.Format(time.RFC3339)+" by "+prev.Tool+": ok (this run reached no verdict)") {
		t.Errorf("--timeout 1ns: exit %d\n%s%s", code, out, errOut)
	}
	unchanged("--timeout")

	// The next verification that can run finds the record as it was.
	out = mustCLI(t, "verify", "--no-write", dir)
	if !hasReportLine(out, "previously verified: "+prev.Time.Format(time.RFC3339)+" by "+prev.Tool+": ok (the set is unchanged since)") {
		t.Errorf("report after:\n%s", out)
	}

	// Without a previous record none is written.
	if err := os.Remove(recPath); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := cli(t, "verify", "--temp-dir", absent, dir); code != exitError {
		t.Errorf("exit %d", code)
	}
	if _, err := os.Stat(recPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("verified.json written for a verification without a verdict: %v", err)
	}
}

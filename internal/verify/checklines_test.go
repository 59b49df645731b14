package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/backupset"
)

// checkStatuses returns the status of every check as the JSON report
// gives it, in report order, with the report's outcome and whether it
// claims the set unchanged since the last verification.
func checkStatuses(t *testing.T, rep *Report) (statuses []string, outcome string, unchanged bool) {
	t.Helper()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Outcome string `json:"outcome"`
		Checks  []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"checks"`
		Unchanged *bool `json:"unchanged_since_last_verified"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if j.Unchanged == nil {
		t.Fatalf("JSON report without unchanged_since_last_verified: %s", b)
	}
	for i, c := range j.Checks {
		if c.Name != checkOrder[i] {
			t.Fatalf("JSON check %d is %q, want %q", i, c.Name, checkOrder[i])
		}
		statuses = append(statuses, c.Status)
	}
	return statuses, j.Outcome, *j.Unchanged
}

// wantStatuses gives every check the status "ok" up to the trial restore
// and "skipped" from it on (the set's files did not verify), except those
// named in except.
func wantStatuses(except map[string]string) []string {
	var out []string
	trial := false
	for _, n := range checkOrder {
		trial = trial || n == CheckTrial
		st := "ok"
		if trial {
			st = "skipped"
		}
		if s, ok := except[n]; ok {
			st = s
		}
		out = append(out, st)
	}
	return out
}

// textLines returns the text report of rep, line by line.
func textLines(t *testing.T, rep *Report) []string {
	t.Helper()
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

// hasLine reports whether lines holds line exactly.
func hasLine(lines []string, line string) bool {
	for _, l := range lines {
		if l == line {
			return true
		}
	}
	return false
}

// checkLine formats the text report's line of a check.
func checkLine(status, name, detail string) string {
	return fmt.Sprintf("  %s  %-18s %s", status, name, detail)
}

// TestCheckLinesOfDamagedSet damages a verified set with a manifest one
// way at a time and checks every check's status, in the text report and
// in JSON: a check whose file failed its file check is never ok (it
// failed, or it was not checked and says which file kept it from it), a
// missing log generation is a gap in the log chain, and the last-verified
// line does not call the set unchanged.
func TestCheckLinesOfDamagedSet(t *testing.T) {
	f := fixtures(t)
	sf := filesOf(t, f.base)
	genOf := func(rel string) (gen uint32, backup int) {
		for _, e := range sf.m.Files {
			if e.Path == rel {
				backup = e.Backup
			}
		}
		if _, err := fmt.Sscanf(filepath.Base(rel), "ca%08X.log", &gen); err != nil {
			t.Fatal(err)
		}
		return gen, backup
	}
	mid, last := sf.logs[len(sf.logs)/2], sf.logs[len(sf.logs)-1]
	midGen, midBackup := genOf(mid)
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		// statuses of the checks that differ from wantStatuses' default
		statuses map[string]string
		lines    []string
		want     []error
	}{
		{"middle log generation deleted", func(t *testing.T, dir string) {
			if err := os.Remove(local(dir, mid)); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{CheckFiles: "failed", CheckLogs: "failed"}, []string{
			checkLine("FAIL", CheckFiles, "1 problem"),
			"          - " + mid + ": file missing from backup set",
			checkLine("FAIL", CheckLogs, "1 problem"),
			fmt.Sprintf("          - %s: backup chain gap: backup %d: log generation %d: the generation's file is missing: "+
				"the records it held cannot be replayed and the chain breaks there", mid, midBackup+1, midGen),
			checkLine("ok  ", CheckDatabase, fmt.Sprintf("%s reflects LSN %d and carries the set's signatures", sf.db, sf.m.Backups[0].SnapshotLSN)),
		}, []error{backupset.ErrMissingFile, backupset.ErrChainGap}},
		{"last log generation truncated by 100 bytes", func(t *testing.T, dir string) {
			b := readFile(t, local(dir, last))
			writeFile(t, local(dir, last), b[:len(b)-100])
		}, map[string]string{CheckFiles: "failed", CheckLogs: "skipped"}, []string{
			checkLine("FAIL", CheckFiles, "1 problem"),
			checkLine("skip", CheckLogs, "not checked: "+last+" failed its file check; the other generations showed no problem"),
		}, []error{backupset.ErrTruncated}},
		{"one byte of the database flipped", func(t *testing.T, dir string) {
			b := readFile(t, local(dir, sf.db))
			b[len(b)/2] ^= 0x01
			writeFile(t, local(dir, sf.db), b)
		}, map[string]string{CheckFiles: "failed", CheckDatabase: "skipped"}, []string{
			checkLine("FAIL", CheckFiles, "1 problem"),
			checkLine("skip", CheckDatabase, "not checked: "+sf.db+" failed its file check"),
		}, []error{backupset.ErrDigestMismatch}},
		{"restore map and configuration halved", func(t *testing.T, dir string) {
			for _, rel := range []string{restoreMapRel, "Config/certsrv.json"} {
				b := readFile(t, local(dir, rel))
				writeFile(t, local(dir, rel), b[:len(b)/2])
			}
		}, map[string]string{CheckFiles: "failed", CheckRestoreMap: "failed", CheckConfig: "skipped"}, []string{
			// The restore map's own file problem is the restore map
			// check's.
			checkLine("FAIL", CheckFiles, "1 problem"),
			checkLine("FAIL", CheckRestoreMap, "1 problem"),
			checkLine("skip", CheckConfig, "not checked: Config/certsrv.json failed its file check"),
		}, []error{backupset.ErrTruncated}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copySet(t, f.base)
			first, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			prev := NewRecord(first, "certadm test-1.0")
			if err := WriteRecord(dir, prev); err != nil {
				t.Fatal(err)
			}
			c.damage(t, dir)
			rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
			var fe *FailedError
			if !errors.As(err, &fe) || errors.Is(err, ErrNotVerified) {
				t.Fatalf("Verify: %v; want a *FailedError", err)
			}
			for _, want := range c.want {
				if !errors.Is(err, want) {
					t.Errorf("no problem matches %v:\n%s", want, problemList(rep))
				}
			}
			got, outcome, unchanged := checkStatuses(t, rep)
			if want := wantStatuses(c.statuses); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("check statuses\n got %v\nwant %v\n(checks %v)", got, want, checkOrder)
			}
			if outcome != OutcomeFailed || rep.Outcome() != OutcomeFailed || unchanged {
				t.Errorf("outcome %q (%q), unchanged since last verified %t", outcome, rep.Outcome(), unchanged)
			}
			lines := textLines(t, rep)
			want := append(c.lines, "previously verified: "+prev.Time.Format(timeFmt)+" by certadm test-1.0: ok; this run found the set damaged")
			for _, l := range want {
				if !hasLine(lines, l) {
					t.Errorf("the text report lacks the line\n%q\nreport:\n%s", l, strings.Join(lines, "\n"))
				}
			}
			for _, l := range lines {
				if strings.Contains(l, "unchanged since") {
					t.Errorf("the text report calls the damaged set unchanged: %q", l)
				}
			}
			// The record of this run says what it found.
			rec := NewRecord(rep, "certadm test-1.0")
			if err := WriteRecord(dir, rec); err != nil {
				t.Fatal(err)
			}
			back, err := ReadRecord(dir)
			if err != nil {
				t.Fatal(err)
			}
			if back.Outcome != OutcomeFailed || len(back.Problems) != len(rep.Problems) || back.Describes(rep) {
				t.Errorf("record %+v", back)
			}
		})
	}
}

// TestCheckLinesOfDamagedSetWithoutManifest damages a set without a
// manifest the same ways: the files show a missing generation and a
// truncated one themselves, and the log chain fails.
func TestCheckLinesOfDamagedSetWithoutManifest(t *testing.T) {
	f := fixtures(t)
	sf := filesOf(t, f.base)
	mid, last := sf.logs[len(sf.logs)/2], sf.logs[len(sf.logs)-1]
	cases := []struct {
		name     string
		damage   func(t *testing.T, dir string)
		statuses map[string]string
		want     error
	}{
		{"middle log generation deleted", func(t *testing.T, dir string) {
			if err := os.Remove(local(dir, mid)); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{CheckFiles: "failed", CheckLogs: "failed"}, backupset.ErrChainGap},
		{"last log generation truncated by 100 bytes", func(t *testing.T, dir string) {
			b := readFile(t, local(dir, last))
			writeFile(t, local(dir, last), b[:len(b)-100])
		}, map[string]string{CheckLogs: "failed"}, backupset.ErrLogCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copySet(t, f.base)
			if err := os.Remove(filepath.Join(dir, backupset.ManifestFile)); err != nil {
				t.Fatal(err)
			}
			c.damage(t, dir)
			rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify: %v; want a problem matching %v", err, c.want)
			}
			got, outcome, _ := checkStatuses(t, rep)
			if want := wantStatuses(c.statuses); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("check statuses\n got %v\nwant %v", got, want)
			}
			if outcome != OutcomeFailed {
				t.Errorf("outcome %q", outcome)
			}
		})
	}
}

// TestLastVerifiedLine checks what the text report says of the previous
// record for each combination of its outcome and this run's.
func TestLastVerifiedLine(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	good, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	okRec := NewRecord(good, "certadm test-1.0")
	failedRec := *okRec
	failedRec.Outcome, failedRec.Problems = OutcomeFailed, []string{"stray.txt: file not listed in manifest"}
	changed := *okRec
	changed.ManifestChecksum = strings.Repeat("0", 64)
	failed := *good
	failed.Problems = []error{&Problem{Check: CheckFiles, Path: "stray.txt", Err: backupset.ErrExtraFile}}
	noVerdict := *good
	noVerdict.Err = &EnvironmentError{Dir: dir, Op: "trial restore: make a temporary directory under /x", Err: os.ErrNotExist}
	at := okRec.Time.Format(timeFmt)
	for _, c := range []struct {
		name string
		rep  Report
		rec  *Record
		want string
	}{
		{"ok, unchanged", *good, okRec, "previously verified: " + at + " by certadm test-1.0: ok (the set is unchanged since)"},
		{"ok, manifest changed", *good, &changed, "previously verified: " + at + " by certadm test-1.0: ok (the set has changed since)"},
		{"ok after failed", *good, &failedRec, "previously verified: " + at + " by certadm test-1.0: failed; this run found no problem"},
		{"failed after ok", failed, okRec, "previously verified: " + at + " by certadm test-1.0: ok; this run found the set damaged"},
		{"failed after failed", failed, &failedRec, "previously verified: " + at + " by certadm test-1.0: failed; this run found the set damaged"},
		{"no verdict after ok", noVerdict, okRec, "previously verified: " + at + " by certadm test-1.0: ok (this run reached no verdict)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.rep
			r.LastVerified = c.rec
			if got := strings.TrimSuffix(r.lastVerifiedLine(), "\n"); got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
			_, _, unchanged := checkStatuses(t, &r)
			if want := c.name == "ok, unchanged"; unchanged != want {
				t.Errorf("unchanged_since_last_verified %t, want %t", unchanged, want)
			}
		})
	}
}

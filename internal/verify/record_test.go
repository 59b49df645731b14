package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/backupset"
)

func TestRecordIsWrittenAndReportedNextTime(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	if _, err := ReadRecord(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadRecord of a fresh set: %v", err)
	}
	rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecord(rep, "certadm test-1.0")
	if err := WriteRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, backupset.VerifiedFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("verified.json: %v %v", fi, err)
	}
	// A second run accepts the record (it is not an extra file) and
	// reports it.
	again, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatalf("the set no longer verifies with verified.json in it: %v", err)
	}
	lv := again.LastVerified
	if lv == nil || lv.Outcome != OutcomeOK || lv.Tool != "certadm test-1.0" || !lv.Time.Equal(rec.Time) ||
		lv.ManifestChecksum != rep.ManifestChecksum || lv.Certificates != rep.Counts.Certificates || !lv.Describes(again) {
		t.Fatalf("last verified %+v, want %+v", lv, rec)
	}
	var text strings.Builder
	if err := again.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "previously verified: "+rec.Time.Format(timeFmt)+" by certadm test-1.0: ok (the set is unchanged since)") {
		t.Errorf("text report:\n%s", text.String())
	}

	// The same set without its manifest is not the set the record
	// describes.
	if err := os.Remove(filepath.Join(dir, backupset.ManifestFile)); err != nil {
		t.Fatal(err)
	}
	raw, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if raw.LastVerified == nil || raw.LastVerified.Describes(raw) {
		t.Errorf("record %+v describes the set without its manifest", raw.LastVerified)
	}
}

func TestFailedOutcomeIsRecorded(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	writeFile(t, filepath.Join(dir, "stray.txt"), []byte("x"))
	rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
	if err == nil {
		t.Fatal("a set with a stray file verified")
	}
	if err := WriteRecord(dir, NewRecord(rep, "certadm test-1.0")); err != nil {
		t.Fatal(err)
	}
	rec, err := ReadRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Outcome != OutcomeFailed || len(rec.Problems) != len(rep.Problems) || !strings.Contains(rec.Problems[0], "stray.txt") {
		t.Errorf("record %+v", rec)
	}
}

func TestLeftoverAndMalformedRecords(t *testing.T) {
	f := fixtures(t)
	for _, withManifest := range []bool{true, false} {
		dir := copySet(t, f.base)
		if !withManifest {
			if err := os.Remove(filepath.Join(dir, backupset.ManifestFile)); err != nil {
				t.Fatal(err)
			}
		}
		// What a crash inside WriteRecord leaves, and a record that does not
		// parse: neither makes the set fail.
		writeFile(t, filepath.Join(dir, recordTmp), []byte(`{"format": 1, "ti`))
		writeFile(t, filepath.Join(dir, backupset.VerifiedFile), []byte(`{"format": 7}`))
		if _, err := ReadRecord(dir); !errors.Is(err, ErrRecord) {
			t.Fatalf("ReadRecord of a malformed record: %v", err)
		}
		rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
		if err != nil {
			t.Fatalf("manifest %t: %v", withManifest, err)
		}
		if rep.LastVerified != nil || len(rep.Notes) == 0 || !strings.Contains(strings.Join(rep.Notes, "\n"), "previous verification record cannot be used") {
			t.Errorf("manifest %t: last verified %+v, notes %q", withManifest, rep.LastVerified, rep.Notes)
		}
		if err := WriteRecord(dir, NewRecord(rep, "t")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, recordTmp)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("WriteRecord left %s: %v", recordTmp, err)
		}
		if _, err := ReadRecord(dir); err != nil {
			t.Errorf("the replaced record: %v", err)
		}
	}
}

func TestRecordValidation(t *testing.T) {
	bad := &Record{Format: RecordFormat, Outcome: "maybe"}
	if err := WriteRecord(t.TempDir(), bad); !errors.Is(err, ErrRecord) {
		t.Errorf("WriteRecord of an invalid record: %v", err)
	}
}

// TestProblemCountIncludesTheUnlisted: a check that finds more problems
// than it lists counts every one in the report's total, its text and its
// JSON, and in the error.
func TestProblemCountIncludesTheUnlisted(t *testing.T) {
	cs := newChecks()
	for i := 0; i < maxProblemsPerCheck+30; i++ {
		cs.add(&Problem{Check: CheckCerts, Err: fmt.Errorf("certificate %d does not verify", i)})
	}
	cs.add(&Problem{Check: CheckCRLs, Err: errors.New("CRL 1 lists a serial it should not")})
	r := &Report{Dir: "set"}
	cs.fill(r)
	want := maxProblemsPerCheck + 30 + 1
	if r.ProblemsFound != want || len(r.Problems) != maxProblemsPerCheck+2 {
		t.Fatalf("found %d, listed %d; want %d found, %d listed", r.ProblemsFound, len(r.Problems), want, maxProblemsPerCheck+2)
	}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), fmt.Sprintf("result: FAILED, %d problems", want)) {
		t.Errorf("text report (%v):\n%s", err, text.String())
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		ProblemsFound int             `json:"problems_found"`
		Counts        json.RawMessage `json:"counts"`
	}
	if err := json.Unmarshal(b, &j); err != nil || j.ProblemsFound != want || string(j.Counts) != "null" {
		t.Errorf("JSON: problems_found %d, counts %s (%v)", j.ProblemsFound, j.Counts, err)
	}
	e := &FailedError{Dir: "set", Problems: r.Problems, Found: r.ProblemsFound}
	if !strings.Contains(e.Error(), fmt.Sprintf("%d problems", want)) || !strings.Contains(e.Error(), fmt.Sprintf("and %d more", want-3)) {
		t.Errorf("error: %v", e)
	}
}

package verify

import (
	"context"
	"errors"
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
	if !strings.Contains(text.String(), "last verified: "+rec.Time.Format(timeFmt)+" by certadm test-1.0: ok (the set is unchanged since)") {
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

package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/store"
)

// verifiedOnce copies the base set, verifies it and records the outcome,
// and returns the copy and the bytes of its verified.json.
func verifiedOnce(t *testing.T) (dir string, rec *Record, recBytes []byte) {
	t.Helper()
	f := fixtures(t)
	dir = copySet(t, f.base)
	rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rec = NewRecord(rep, "certadm test-1.0")
	if err := WriteRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	return dir, rec, readFile(t, filepath.Join(dir, backupset.VerifiedFile))
}

// mustBeNoVerdict checks that Verify's outcome is no verdict: an
// *EnvironmentError for dir matching ErrNotVerified and cause, no
// problem, the set's file checks passed and every check from the trial
// restore on skipped, the trial restore's line beginning with trialDetail,
// "error" in JSON, and no record to write.
func mustBeNoVerdict(t *testing.T, dir string, rep *Report, err error, cause error, trialDetail string) {
	t.Helper()
	var ee *EnvironmentError
	var fe *FailedError
	if !errors.As(err, &ee) || !errors.Is(err, ErrNotVerified) || errors.As(err, &fe) {
		t.Fatalf("Verify: %v (%T); want an *EnvironmentError", err, err)
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("Verify: %v; want it to match %v", err, cause)
	}
	if ee.Dir != dir || !strings.HasPrefix(err.Error(), "could not verify "+dir+": ") {
		t.Errorf("error %q for directory %q", err, ee.Dir)
	}
	if rep.Err != err || rep.OK() || rep.Outcome() != OutcomeError || len(rep.Problems) != 0 {
		t.Errorf("report: err %v, ok %t, outcome %q, problems:\n%s", rep.Err, rep.OK(), rep.Outcome(), problemList(rep))
	}
	got, outcome, unchanged := checkStatuses(t, rep)
	if want := wantStatuses(nil); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("check statuses\n got %v\nwant %v", got, want)
	}
	if outcome != OutcomeError || unchanged {
		t.Errorf("JSON outcome %q, unchanged %t", outcome, unchanged)
	}
	b, jerr := json.Marshal(rep)
	if jerr != nil {
		t.Fatal(jerr)
	}
	var j struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(b, &j); jerr != nil || j.OK || j.Error != err.Error() {
		t.Errorf("JSON ok %t, error %q (%v)", j.OK, j.Error, jerr)
	}
	lines := textLines(t, rep)
	trial, result := "", ""
	for _, l := range lines {
		if strings.HasPrefix(l, checkLine("skip", CheckTrial, "")) {
			trial = strings.TrimPrefix(l, checkLine("skip", CheckTrial, ""))
		}
		if strings.HasPrefix(l, "result: ") {
			result = l
		}
	}
	if !strings.HasPrefix(trial, "not run: "+trialDetail) {
		t.Errorf("trial restore line %q; want it to begin %q", trial, "not run: "+trialDetail)
	}
	if !strings.HasPrefix(result, "result: NOT VERIFIED (a problem of this machine, no verdict on the set), in ") ||
		!strings.HasSuffix(result, ": "+err.Error()) {
		t.Errorf("result line %q", result)
	}
	for _, n := range []string{CheckIntegrity, CheckCACert, CheckCerts, CheckCRLs, CheckCounts} {
		if !hasLine(lines, checkLine("skip", n, "not run: the trial restore could not run here")) {
			t.Errorf("no skip line for %s:\n%s", n, strings.Join(lines, "\n"))
		}
	}
	if rec := NewRecord(rep, "certadm test-1.0"); rec.Outcome != OutcomeError {
		t.Errorf("record outcome %q", rec.Outcome)
	} else if werr := WriteRecord(t.TempDir(), rec); !errors.Is(werr, ErrRecord) {
		t.Errorf("WriteRecord of a report without a verdict: %v", werr)
	}
}

// TestTempDirMissingIsNoVerdict verifies a good set with a temporary
// directory that does not exist: no verdict, and the record of the last
// verification is reported as it was.
func TestTempDirMissingIsNoVerdict(t *testing.T) {
	dir, prev, before := verifiedOnce(t)
	absent := filepath.Join(t.TempDir(), "absent")
	rep, err := Verify(context.Background(), dir, Options{TempDir: absent})
	mustBeNoVerdict(t, dir, rep, err, fs.ErrNotExist, "make a temporary directory under "+absent+": ")
	if !hasLine(textLines(t, rep), "previously verified: "+prev.Time.Format(timeFmt)+" by certadm test-1.0: ok (this run reached no verdict)") {
		t.Errorf("text report:\n%s", strings.Join(textLines(t, rep), "\n"))
	}
	if after := readFile(t, filepath.Join(dir, backupset.VerifiedFile)); !bytes.Equal(after, before) {
		t.Errorf("verified.json changed:\n%s", after)
	}
}

// TestTempDirIsAFileIsNoVerdict gives a regular file as the temporary
// directory.
func TestTempDirIsAFileIsNoVerdict(t *testing.T) {
	dir, _, _ := verifiedOnce(t)
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, []byte("x"))
	rep, err := Verify(context.Background(), dir, Options{TempDir: file})
	mustBeNoVerdict(t, dir, rep, err, syscall.ENOTDIR, "make a temporary directory under "+file+": ")
}

// TestTempDirNotWritableIsNoVerdict makes the temporary directory
// unwritable (for root, who may write anyway, a read-only file system
// is mounted instead where the system allows it).
func TestTempDirNotWritableIsNoVerdict(t *testing.T) {
	dir, _, before := verifiedOnce(t)
	var tmp string
	var cause error
	if os.Geteuid() == 0 {
		tmp, cause = mountTmpfs(t, 1<<20, true), syscall.EROFS
	} else {
		tmp, cause = t.TempDir(), fs.ErrPermission
		if err := os.Chmod(tmp, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(tmp, 0o700) })
	}
	rep, err := Verify(context.Background(), dir, Options{TempDir: tmp})
	mustBeNoVerdict(t, dir, rep, err, cause, "make a temporary directory under "+tmp+": ")
	if after := readFile(t, filepath.Join(dir, backupset.VerifiedFile)); !bytes.Equal(after, before) {
		t.Errorf("verified.json changed:\n%s", after)
	}
}

// TestTempDirFullIsNoVerdict runs the trial restore in a file system too
// small for it: the snapshot copy, or SQLite's work on the copy, runs out
// of space. Neither is a verdict, and the temporary directory is removed.
func TestTempDirFullIsNoVerdict(t *testing.T) {
	f := fixtures(t)
	sf := filesOf(t, f.base)
	fi, err := os.Stat(local(f.base, sf.db))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		size   int64
		cause  error
		detail string
	}{
		{"the snapshot does not fit", 64 << 10, syscall.ENOSPC, "copy " + sf.db + " into "},
		{"the replay does not fit", (fi.Size()+4095)/4096*4096 + 8192, nil, "replay the set's log records onto the copy in "},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, _, before := verifiedOnce(t)
			tmp := mountTmpfs(t, c.size, false)
			rep, err := Verify(context.Background(), dir, Options{TempDir: tmp})
			mustBeNoVerdict(t, dir, rep, err, c.cause, c.detail+tmp+"/certsrv-verify-")
			if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
				t.Errorf("temporary directory holds %v (%v)", ents, err)
			}
			if after := readFile(t, filepath.Join(dir, backupset.VerifiedFile)); !bytes.Equal(after, before) {
				t.Errorf("verified.json changed:\n%s", after)
			}
			t.Log(err)
		})
	}
}

// TestCorruptDatabaseInTrialIsAVerdict damages a page of the database and
// makes the manifest vouch for the damaged file, so that only the trial
// restore can notice: its failure is a verdict on the set, not a problem
// of the machine.
func TestCorruptDatabaseInTrialIsAVerdict(t *testing.T) {
	f := fixtures(t)
	sf := filesOf(t, f.base)
	dir := copySet(t, f.base)
	p := local(dir, sf.db)
	b := readFile(t, p)
	const page = 16384 // the store's page size
	mid := (len(b) / page / 2) * page
	for i := mid; i < mid+page; i++ {
		b[i] = 0xA5
	}
	writeFile(t, p, b)
	sum := sha256.Sum256(b)
	rewriteManifest(t, dir, func(m *backupset.Manifest) {
		for i := range m.Files {
			if m.Files[i].Path == sf.db {
				m.Files[i].SHA256 = hex.EncodeToString(sum[:])
			}
		}
	})
	rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
	var fe *FailedError
	if !errors.As(err, &fe) || errors.Is(err, ErrNotVerified) || rep.Err != nil || rep.Outcome() != OutcomeFailed {
		t.Fatalf("Verify: %v (%T), outcome %q; want a *FailedError", err, err, rep.Outcome())
	}
	if !errors.Is(err, ErrTrialRestore) && !errors.Is(err, ErrIntegrity) {
		t.Fatalf("Verify: %v; want ErrTrialRestore or ErrIntegrity", err)
	}
	for _, n := range layerChecks {
		if c, _ := rep.Check(n); !c.OK {
			t.Errorf("check %q: %+v", n, c)
		}
	}
	rec := NewRecord(rep, "certadm test-1.0")
	if err := WriteRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	if back, err := ReadRecord(dir); err != nil || back.Outcome != OutcomeFailed || len(back.Problems) == 0 {
		t.Errorf("record %+v, %v", back, err)
	}
	t.Logf("%v\n%s", err, problemList(rep))
}

// TestEnvironmentalClassification checks which errors met by the trial
// restore are failures of the machine, with errors the system and SQLite
// really give.
func TestEnvironmentalClassification(t *testing.T) {
	tmp := t.TempDir()
	set := t.TempDir()
	notADB := filepath.Join(tmp, "garbage.db")
	writeFile(t, notADB, bytes.Repeat([]byte("not a database "), 2000))
	_, sqliteNotADB := store.DumpFile(context.Background(), notADB)
	_, sqliteCantOpen := store.DumpFile(context.Background(), filepath.Join(tmp, "no-such-dir", "x.db"))
	_, setMissing := os.Open(filepath.Join(set, "DataBase", "x.db"))
	_, tmpMissing := os.Open(filepath.Join(tmp, "trial.db"))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"context cancelled", fmt.Errorf("replay: %w", cancelled.Err()), true},
		{"context deadline", context.DeadlineExceeded, true},
		{"a file in the temporary directory", tmpMissing, true},
		{"out of space while copying", fmt.Errorf("copy: %w", os.NewSyscallError("copy_file_range", syscall.ENOSPC)), true},
		{"over quota", &fs.PathError{Op: "write", Path: "/elsewhere", Err: syscall.EDQUOT}, true},
		{"read-only file system", &fs.PathError{Op: "mkdir", Path: "/elsewhere", Err: syscall.EROFS}, true},
		{"SQLite cannot open the copy", sqliteCantOpen, true},
		{"no OFD locks", fmt.Errorf("replay: %w", store.ErrOFDLocking), true},
		{"a set file", setMissing, false},
		{"an I/O error reading the set", os.NewSyscallError("copy_file_range", syscall.EIO), false},
		{"SQLite: not a database", sqliteNotADB, false},
		{"the replay refuses a record", fmt.Errorf("replay: %w", store.ErrSchema), false},
	} {
		if c.err == nil {
			t.Fatalf("%s: no error to classify", c.name)
		}
		if got := environmental(c.err, tmp); got != c.want {
			t.Errorf("%s: environmental(%v) = %t, want %t", c.name, c.err, got, c.want)
		}
	}
}

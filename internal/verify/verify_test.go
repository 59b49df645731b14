package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/backupset"
)

// dirState records every file under dir with its digest.
func dirState(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyFullAndIncrementalTakenUnderLoad(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	before := dirState(t, dir)
	tmp := t.TempDir()
	rep, err := Verify(context.Background(), dir, Options{TempDir: tmp})
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, problemList(rep))
	}
	if !rep.OK() || !rep.HasManifest || rep.Backups != 2 || rep.CAName == "" {
		t.Fatalf("report %+v", rep)
	}
	for _, c := range rep.Checks {
		if !c.OK || c.Skipped {
			t.Errorf("check %q: ok=%t skipped=%t %s", c.Name, c.OK, c.Skipped, c.Detail)
		}
	}
	if len(rep.Checks) != len(checkOrder) {
		t.Errorf("%d checks reported, want %d", len(rep.Checks), len(checkOrder))
	}
	set, err := backupset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := set.Manifest()
	if rep.SnapshotLSN != m.Backups[0].SnapshotLSN || rep.LastLSN != m.LastBackup().LastLSN || rep.FirstLSN != rep.SnapshotLSN+1 {
		t.Errorf("LSNs: snapshot %d, replayed %d..%d; manifest snapshot %d, last %d",
			rep.SnapshotLSN, rep.FirstLSN, rep.LastLSN, m.Backups[0].SnapshotLSN, m.LastBackup().LastLSN)
	}
	if uint64(rep.Replayed) != rep.LastLSN-rep.SnapshotLSN || rep.Replayed == 0 {
		t.Errorf("replayed %d records for LSNs %d..%d", rep.Replayed, rep.FirstLSN, rep.LastLSN)
	}
	if rep.Counts.Requests != int64(f.baseRequests) {
		t.Errorf("the restored database holds %d requests; the CA had recorded %d by the set's last LSN", rep.Counts.Requests, f.baseRequests)
	}
	c := rep.Counts
	if c.Revoked != int64(f.baseRevoked) || c.Revoked != 4 || c.Certificates != c.Issued+c.Revoked || c.Certificates != c.Requests ||
		c.CRLs != int64(f.baseCRLs) || c.CRLs < 3 {
		t.Errorf("counts %+v: want %d revoked (one hold was released), every request issued, %d CRLs", c, f.baseRevoked, f.baseCRLs)
	}
	if rep.Files != len(m.Files) || rep.FirstGen != m.Backups[0].FirstGen || rep.LastGen != m.LastBackup().LastGen {
		t.Errorf("files %d (manifest %d), generations %d..%d", rep.Files, len(m.Files), rep.FirstGen, rep.LastGen)
	}
	if rep.LastVerified != nil {
		t.Errorf("a fresh set has a verification record: %+v", rep.LastVerified)
	}
	// Nothing was written into the set, and the trial restore's
	// temporary directory is gone.
	after := dirState(t, dir)
	if len(after) != len(before) {
		t.Errorf("%d files before, %d after", len(before), len(after))
	}
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s changed", p)
		}
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Errorf("temporary directory holds %v (%v)", ents, err)
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	if strings.Contains(out, "FAIL") || strings.Contains(out, "skip") || !strings.Contains(out, "result: OK") ||
		strings.Count(out, "\n  ok  ") != len(checkOrder) || !strings.Contains(out, "previously verified: never") {
		t.Errorf("text report:\n%s", out)
	}
	t.Logf("\n%s", out)
}

func TestJSONReportParses(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK       bool   `json:"ok"`
		Manifest bool   `json:"manifest"`
		CA       string `json:"ca"`
		Replay   struct {
			FirstLSN uint64 `json:"first_lsn"`
			LastLSN  uint64 `json:"last_lsn"`
			Records  int    `json:"records"`
		} `json:"replay"`
		Counts struct {
			Certificates int64 `json:"certificates"`
		} `json:"counts"`
		Checks []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"checks"`
		Problems []any `json:"problems"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !got.OK || !got.Manifest || got.CA != rep.CAName || got.Replay.Records != rep.Replayed ||
		got.Replay.LastLSN != rep.LastLSN || got.Counts.Certificates != rep.Counts.Certificates || got.Problems == nil {
		t.Errorf("JSON %s", b)
	}
	if len(got.Checks) != len(checkOrder) {
		t.Fatalf("%d checks in JSON", len(got.Checks))
	}
	for i, c := range got.Checks {
		if c.Name != checkOrder[i] || c.Status != "ok" {
			t.Errorf("check %d: %+v", i, c)
		}
	}
}

func TestVerifyIsCancelledByContext(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	tmp := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Verify(ctx, dir, Options{TempDir: tmp})
	if !errors.Is(err, context.Canceled) || rep == nil {
		t.Fatalf("Verify with a cancelled context: %v", err)
	}
	// An interrupted verification is no verdict on the set.
	var ee *EnvironmentError
	var fe *FailedError
	if !errors.Is(err, ErrNotVerified) || !errors.As(err, &ee) || ee.Dir != dir || errors.As(err, &fe) ||
		rep.Outcome() != OutcomeError || rep.OK() || rep.Err != err {
		t.Errorf("Verify with a cancelled context: %v (%T), outcome %q", err, err, rep.Outcome())
	}
	if err := WriteRecord(dir, NewRecord(rep, "t")); !errors.Is(err, ErrRecord) {
		t.Errorf("the record of an interrupted verification was written: %v", err)
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Errorf("temporary directory holds %v (%v)", ents, err)
	}
}

func TestNotASet(t *testing.T) {
	for name, dir := range map[string]string{
		"empty directory": t.TempDir(),
		"missing":         filepath.Join(t.TempDir(), "nothing"),
	} {
		t.Run(name, func(t *testing.T) {
			rep, err := Verify(context.Background(), dir, Options{})
			if !errors.Is(err, ErrNotASet) || rep.OK() {
				t.Fatalf("Verify: %v", err)
			}
			for _, c := range rep.Checks {
				if c.OK {
					t.Errorf("check %q passed on %s", c.Name, name)
				}
			}
		})
	}
}

func TestIncompleteSetIsRefused(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	if err := os.Rename(filepath.Join(dir, backupset.ManifestFile), filepath.Join(dir, backupset.ManifestFile+backupset.PartSuffix)); err != nil {
		t.Fatal(err)
	}
	rep := mustFail(t, dir, backupset.ErrIncomplete, backupset.ManifestFile+backupset.PartSuffix)
	if c, _ := rep.Check(CheckTrial); !c.Skipped {
		t.Errorf("trial restore ran on an incomplete set: %+v", c)
	}
}

// TestVerifyReportsProgress follows a verification through its Progress:
// at the end every digested byte was hashed and every issued certificate
// checked, and the last stage is the CRL and count checks.
func TestVerifyReportsProgress(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	var p Progress
	if h, total := p.Files(); h != 0 || total != 0 || p.Stage() != "" {
		t.Fatalf("a new Progress says %d of %d bytes, stage %q", h, total, p.Stage())
	}
	rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir(), Progress: &p})
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, problemList(rep))
	}
	hashed, total := p.Files()
	if total != rep.Bytes || hashed != total {
		t.Errorf("hashed %d of %d bytes; the set holds %d", hashed, total, rep.Bytes)
	}
	checked, certs := p.Certificates()
	if certs == 0 || checked != certs || certs != int64(rep.Counts.Certificates) {
		t.Errorf("checked %d of %d certificates; the report counts %d", checked, certs, rep.Counts.Certificates)
	}
	if p.Stage() != StageCRLs {
		t.Errorf("last stage %q, want %q", p.Stage(), StageCRLs)
	}
	// A nil Progress is ignored.
	var none *Progress
	none.hashedBytes(1)
	none.setStage(StageCopy)
	if _, n := none.Certificates(); n != 0 || none.Stage() != "" {
		t.Error("a nil Progress reports work")
	}
}

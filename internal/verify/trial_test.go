package verify

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/certsrv/certsrv/internal/backupset"
)

// TestDamageOnlySQLiteSees damages a page inside the database of a set
// without a manifest, where no digest can show it: the file checks pass,
// and the trial restore or the integrity check refuses the set.
func TestDamageOnlySQLiteSees(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	sf := filesOf(t, f.base)
	if err := os.Remove(filepath.Join(dir, backupset.ManifestFile)); err != nil {
		t.Fatal(err)
	}
	p := local(dir, sf.db)
	b := readFile(t, p)
	const page = 16384 // the store's page size
	if len(b) < 8*page {
		t.Fatalf("database of %d bytes", len(b))
	}
	mid := (len(b) / page / 2) * page
	for i := mid; i < mid+page; i++ {
		b[i] = 0xA5
	}
	writeFile(t, p, b)
	tmp := t.TempDir()
	rep, err := Verify(context.Background(), dir, Options{TempDir: tmp})
	if err == nil {
		t.Fatal("a set with a damaged database page verified")
	}
	if !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrTrialRestore) {
		t.Fatalf("Verify: %v; want the trial restore or the integrity check to fail", err)
	}
	for _, n := range layerChecks {
		if c, _ := rep.Check(n); !c.OK {
			t.Errorf("file check %q failed: %+v\n%s", n, c, problemList(rep))
		}
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Errorf("temporary directory holds %v (%v)", ents, err)
	}
	t.Logf("\n%s", problemList(rep))
}

// TestTrialOfSomethingElse runs the trial restore on a file that is not a
// database: it fails as a trial restore and cleans up.
func TestTrialOfSomethingElse(t *testing.T) {
	src := filepath.Join(t.TempDir(), "x.db")
	writeFile(t, src, []byte("not a database, just some bytes"))
	tmp := t.TempDir()
	out := runTrial(context.Background(), trialInput{dbPath: src, dbRel: "DataBase/x.db", logDir: t.TempDir(), base: "ca", tempDir: tmp},
		slog.New(slog.DiscardHandler))
	if len(out.problems) == 0 || !errors.Is(out.problems[0], ErrTrialRestore) || out.stage != "replay" || out.dump != nil {
		t.Fatalf("trial outcome %+v", out)
	}
	if out.cleanup != nil {
		t.Fatal(out.cleanup)
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Errorf("temporary directory holds %v (%v)", ents, err)
	}
}

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

// TestDamagedPageWithoutManifest damages a page inside the database of a
// set without a manifest, where no digest can show it: SQLite's
// quick_check in the database check refuses the set, naming the file, and
// the trial restore does not run.
func TestDamagedPageWithoutManifest(t *testing.T) {
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
	rep := mustFail(t, dir, backupset.ErrDatabase, sf.db)
	if c, _ := rep.Check(CheckDatabase); c.OK || c.Skipped {
		t.Errorf("database check: %+v", c)
	}
	if c, _ := rep.Check(CheckTrial); !c.Skipped {
		t.Errorf("the trial restore ran on a damaged set: %+v", c)
	}
	t.Logf("\n%s", problemList(rep))
}

// TestTrialOfSomethingElse runs the trial restore on a file that is not a
// database: it fails as a trial restore and its temporary directory goes
// with remove.
func TestTrialOfSomethingElse(t *testing.T) {
	src := filepath.Join(t.TempDir(), "x.db")
	writeFile(t, src, []byte("not a database, just some bytes"))
	tmp := t.TempDir()
	out := runTrial(context.Background(), trialInput{dbPath: src, dbRel: "DataBase/x.db", logDir: t.TempDir(), base: "ca", tempDir: tmp},
		slog.New(slog.DiscardHandler))
	if len(out.problems) == 0 || !errors.Is(out.problems[0], ErrTrialRestore) || out.stage != "replay" || out.dump != nil {
		t.Fatalf("trial outcome %+v", out)
	}
	if out.env != nil {
		t.Fatalf("a file that is not a database is taken for a problem of the machine: %v", out.env)
	}
	if out.remove == nil {
		t.Fatal("the trial made no temporary directory to remove")
	}
	if err := out.remove(); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Errorf("temporary directory holds %v (%v)", ents, err)
	}
}

// TestTrialRefusesDamagedPage runs the trial restore by itself on a set
// whose database has a damaged page: the replay or SQLite's
// integrity_check on the restored copy refuses it, and the temporary
// directory is removed.
func TestTrialRefusesDamagedPage(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	sf := filesOf(t, f.base)
	set, err := backupset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := fromSet(dir, set)
	if err != nil {
		t.Fatal(err)
	}
	p := local(dir, sf.db)
	b := readFile(t, p)
	const page = 16384 // the store's page size
	mid := (len(b) / page / 2) * page
	for i := mid; i < mid+page; i++ {
		b[i] = 0xA5
	}
	writeFile(t, p, b)
	tmp := t.TempDir()
	out := runTrial(context.Background(), trialInputOf(info, tmp), slog.New(slog.DiscardHandler))
	if out.dump != nil || len(out.problems) == 0 {
		t.Fatalf("the trial restore of a damaged database succeeded: stage %s", out.stage)
	}
	if !errors.Is(out.problems[0], ErrIntegrity) && !errors.Is(out.problems[0], ErrTrialRestore) {
		t.Fatalf("trial problem %v; want ErrIntegrity or ErrTrialRestore", out.problems[0])
	}
	if out.env != nil {
		t.Fatalf("a damaged database is taken for a problem of the machine: %v", out.env)
	}
	if out.remove == nil {
		t.Fatal("the trial made no temporary directory to remove")
	}
	if err := out.remove(); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Errorf("temporary directory holds %v (%v)", ents, err)
	}
	t.Logf("stage %s: %v", out.stage, out.problems[0])
}

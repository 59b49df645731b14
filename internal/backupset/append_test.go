package backupset

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// snapshotDir records every file of dir with its content digest, to prove
// that a refused operation changed nothing.
func snapshotDir(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = sha256.Sum256(b)
		}
		return nil
	})
	return out
}

func sameDir(t *testing.T, before, after map[string][32]byte) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("%d files before, %d after", len(before), len(after))
	}
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s changed or vanished", p)
		}
	}
}

func TestAppendRefusesAnotherCA(t *testing.T) {
	ctx := context.Background()
	a := newSource(t, "A CA")
	b := newSource(t, "B CA")
	dir := t.TempDir()
	m := a.fullBackup(dir)
	b.writeSized(400, 600) // more generations than a's full backup holds
	b.roll()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)

	// Another CA altogether: name, certificate, restore map and log set.
	inc := b.incremental(m.Backups[0].LastGen, 10)
	if _, err := s.AppendIncremental(ctx, inc); !errors.Is(err, ErrForeignSet) {
		t.Errorf("another CA: %v", err)
	}
	// The same name and location but another log set (another CA
	// installed at the same path): caught by the first log's signature.
	inc.CAName, inc.CACertSHA256, inc.RestoreMap = a.caName, a.cert, a.rmap
	if _, err := s.AppendIncremental(ctx, inc); !errors.Is(err, ErrForeignSet) {
		t.Errorf("same location, other log set: %v", err)
	}
	// The right log set seen from another location.
	good := a.incremental(m.Backups[0].LastGen, 10)
	moved := good
	moved.RestoreMap = RestoreMap{Entries: append([]RestoreEntry(nil), a.rmap.Entries...)}
	moved.RestoreMap.Entries[0].Path = "/elsewhere/db/A CA.db"
	if _, err := s.AppendIncremental(ctx, moved); !errors.Is(err, ErrForeignSet) {
		t.Errorf("other restore map: %v", err)
	}
	sameDir(t, before, snapshotDir(t, dir))
	// And the genuine one is accepted.
	if _, err := a.appendIncremental(s, good); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyDir(t, dir); err != nil {
		t.Fatal(err)
	}
}

func TestAppendRefusesGap(t *testing.T) {
	ctx := context.Background()
	src := newSource(t, "Gap CA")
	dir := t.TempDir()
	m := src.fullBackup(dir)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	// A logs-only backup the set never received...
	missed := src.incremental(m.Backups[0].LastGen, 100)
	lastMissed := src.log.Current() - 1
	// ...so the next one starts after a gap.
	next := src.incremental(lastMissed, 100)
	if _, err := s.AppendIncremental(ctx, next); !errors.Is(err, ErrChainGap) {
		t.Errorf("gap: %v", err)
	}
	// Listed generations that skip one.
	skip := missed
	skip.Logs = []string{missed.Logs[0], src.genPath(m.Backups[0].LastGen + 3)}
	if _, err := s.AppendIncremental(ctx, skip); !errors.Is(err, ErrChainGap) {
		t.Errorf("gap inside the list: %v", err)
	}
	// A header that does not belong to the first listed log.
	wrongHeader := missed
	wrongHeader.FirstLogHeader = src.header(lastMissed + 1)
	if _, err := s.AppendIncremental(ctx, wrongHeader); !errors.Is(err, ErrLogCorrupt) {
		t.Errorf("header of another generation: %v", err)
	}
	if _, err := s.AppendIncremental(ctx, Incremental{RestoreMap: src.rmap, Logs: []string{"/x/notalog"}, FirstLogHeader: missed.FirstLogHeader}); !errors.Is(err, ErrBadPath) {
		t.Errorf("bad log name: %v", err)
	}
	sameDir(t, before, snapshotDir(t, dir))
}

func TestAppendAbortLeavesSetAsItWas(t *testing.T) {
	ctx := context.Background()
	src := newSource(t, "Abort CA")
	dir := t.TempDir()
	m := src.fullBackup(dir)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	inc := src.incremental(m.Backups[0].LastGen, 300)
	if len(inc.Logs) < 2 {
		t.Fatalf("want at least 2 logs, have %d", len(inc.Logs))
	}
	a, err := s.AppendIncremental(ctx, inc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddLog(ctx, inc.Logs[1], nil, 0); !errors.Is(err, ErrBadPath) {
		t.Errorf("out of order: %v", err)
	}
	f, _ := os.Open(inc.Logs[0])
	fi, _ := f.Stat()
	if _, err := a.AddLog(ctx, inc.Logs[0], f, fi.Size()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := a.Commit(ctx, BackupInfo{}); !errors.Is(err, ErrChainGap) {
		t.Errorf("commit with logs missing: %v", err)
	}
	if err := a.Abort(); err != nil {
		t.Fatal(err)
	}
	sameDir(t, before, snapshotDir(t, dir))
	if _, err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAppendCommitRefusesSubstitutedLog(t *testing.T) {
	ctx := context.Background()
	src := newSource(t, "Swap CA")
	dir := t.TempDir()
	m := src.fullBackup(dir)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	inc := src.incremental(m.Backups[0].LastGen, 50)
	a, err := s.AppendIncremental(ctx, inc)
	if err != nil {
		t.Fatal(err)
	}
	// The header passed the check, but the bytes delivered are another
	// log set's generation of the same number.
	other := newSource(t, "Other CA")
	gen := a.Generations()[0]
	for other.log.Current() <= gen {
		other.write(100)
	}
	b, _ := os.ReadFile(other.genPath(gen))
	f, _ := os.Open(other.genPath(gen))
	defer f.Close()
	if _, err := a.AddLog(ctx, inc.Logs[0], f, int64(len(b))); err != nil {
		t.Fatal(err)
	}
	for _, l := range inc.Logs[1:] {
		g, _ := os.Open(l)
		fi, _ := g.Stat()
		a.AddLog(ctx, l, g, fi.Size())
		g.Close()
	}
	before, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	if _, err := a.Commit(ctx, BackupInfo{}); !errors.Is(err, ErrForeignLog) {
		t.Errorf("substituted log: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	if string(before) != string(after) {
		t.Error("manifest changed by a refused commit")
	}
	a.Abort()
	if _, err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMessagesNumberBackupsFromOne: a message about a backup numbers the
// set's backups from 1, as people count them and certadm verify shows
// them: the gap before a fourth backup names backup 4, a break between
// the second and third backups names backups 3 and 2. ChainError.Backup
// stays the index in the manifest.
func TestMessagesNumberBackupsFromOne(t *testing.T) {
	ctx := context.Background()
	src := newSource(t, "Numbers CA")
	dir := t.TempDir()
	src.fullBackup(dir)
	for i := 0; i < 2; i++ {
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.appendIncremental(s, src.incremental(s.Manifest().LastBackup().LastGen, 50)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Manifest().Backups); n != 3 {
		t.Fatalf("%d backups in the set, want 3", n)
	}
	// A logs-only backup the set never received, so the next one starts
	// after a gap.
	src.incremental(s.Manifest().LastBackup().LastGen, 50)
	next := src.incremental(src.log.Current()-1, 50)
	_, err = s.AppendIncremental(ctx, next)
	var ce *ChainError
	if !errors.As(err, &ce) || !errors.Is(err, ErrChainGap) || ce.Backup != 3 {
		t.Fatalf("gap: %#v, want a ChainError for index 3", err)
	}
	if msg := err.Error(); !strings.Contains(msg, ": backup 4: ") || strings.Contains(msg, "backup 3") {
		t.Errorf("gap before the fourth backup: %q, want it to name backup 4", msg)
	}

	// A break in the manifest's chain between the second and third backups.
	broken := t.TempDir()
	copyDir(t, broken, dir)
	rewriteManifest(t, broken, func(m *Manifest) { m.Backups[2].FirstLSN += 5 })
	_, err = verifyDir(t, broken)
	if !errors.Is(err, ErrChainGap) {
		t.Fatalf("broken chain: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "backup 3: ") || !strings.Contains(msg, "but backup 2 ended at LSN") {
		t.Errorf("broken chain: %q, want it to name backups 3 and 2", msg)
	}

	// The manifest's own checks.
	m := s.Manifest()
	m.Backups[1].Time = time.Time{}
	if err := m.validate(); !errors.Is(err, ErrManifestFormat) || !strings.Contains(err.Error(), "backup 2 has no time") {
		t.Errorf("second backup without a time: %v", err)
	}
	m = s.Manifest()
	m.Files[0].Backup = 3
	if err := m.validate(); !errors.Is(err, ErrManifestFormat) || !strings.Contains(err.Error(), "has backup index 3; the manifest lists 3 backups (indexes 0..2)") {
		t.Errorf("file of a fourth backup: %v", err)
	}
}

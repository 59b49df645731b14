package verify

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/backupset"
)

// setFiles names the files of a set by kind, from its manifest.
type setFiles struct {
	db      string
	logs    []string // ascending generations
	dynamic map[string]string
	m       *backupset.Manifest
}

func filesOf(t *testing.T, dir string) setFiles {
	t.Helper()
	set, err := backupset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	sf := setFiles{db: set.Database().Path, dynamic: map[string]string{}, m: set.Manifest()}
	for _, l := range set.Logs() {
		sf.logs = append(sf.logs, l.Path)
	}
	for _, f := range set.Files() {
		switch {
		case f.Kind != backupset.KindDynamic:
		case strings.HasSuffix(f.Path, "+.crl"):
			sf.dynamic["+.crl"] = f.Path
		default:
			sf.dynamic[filepath.Ext(f.Path)] = f.Path
		}
	}
	return sf
}

// local returns the path of a set file.
func local(dir, rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// damage is one way of damaging a set; it returns the file the failure
// must name.
type damage func(t *testing.T, dir string, sf setFiles, f *fixture) string

var (
	extraFile damage = func(t *testing.T, dir string, sf setFiles, f *fixture) string {
		writeFile(t, local(dir, "DataBase/notes.txt"), []byte("not part of the set\n"))
		return "DataBase/notes.txt"
	}
	foreignDatabase damage = func(t *testing.T, dir string, sf setFiles, f *fixture) string {
		other := filesOf(t, f.foreign)
		writeFile(t, local(dir, sf.db), readFile(t, local(f.foreign, other.db)))
		return sf.db
	}
	middleLogMissing damage = func(t *testing.T, dir string, sf setFiles, f *fixture) string {
		mid := sf.logs[len(sf.logs)/2]
		if err := os.Remove(local(dir, mid)); err != nil {
			t.Fatal(err)
		}
		return mid
	}
	foreignLog damage = func(t *testing.T, dir string, sf setFiles, f *fixture) string {
		other := filesOf(t, f.foreign)
		mid := sf.logs[len(sf.logs)/2]
		writeFile(t, local(dir, mid), readFile(t, local(f.foreign, other.logs[0])))
		return mid
	}
	logsOutOfOrder damage = func(t *testing.T, dir string, sf setFiles, f *fixture) string {
		a, b := local(dir, sf.logs[0]), local(dir, sf.logs[1])
		x, y := readFile(t, a), readFile(t, b)
		writeFile(t, a, y)
		writeFile(t, b, x)
		return sf.logs[0]
	}
	// gapIncremental appends the later set's logs-only backup, which the
	// base CA took after another full backup had truncated the generations
	// in between.
	gapIncremental damage = func(t *testing.T, dir string, sf setFiles, f *fixture) string {
		later := filesOf(t, f.later)
		inc := later.m.Backups[1]
		var added []backupset.FileEntry
		for _, e := range later.m.Files {
			if e.Backup == 1 {
				writeFile(t, local(dir, e.Path), readFile(t, local(f.later, e.Path)))
				e.Backup = len(sf.m.Backups)
				added = append(added, e)
			}
		}
		if inc.FirstGen <= sf.m.LastBackup().LastGen+1 {
			t.Fatalf("the later incremental starts at generation %d, right after the base set's %d: no gap",
				inc.FirstGen, sf.m.LastBackup().LastGen)
		}
		if _, err := os.Stat(filepath.Join(dir, backupset.ManifestFile)); err == nil {
			rewriteManifest(t, dir, func(m *backupset.Manifest) {
				m.Backups = append(m.Backups, inc)
				m.Files = append(m.Files, added...)
			})
		}
		return backupset.DatabaseDir + "/" + fmt.Sprintf("ca%08X.log", inc.FirstGen)
	}
)

// TestCorruptionCatalogue damages a copy of a good set one way at a time
// and checks that Verify refuses it with a distinct error naming the file.
func TestCorruptionCatalogue(t *testing.T) {
	f := fixtures(t)
	cases := []struct {
		name   string
		damage damage
		want   error
	}{
		{"extra file", extraFile, backupset.ErrExtraFile},
		{"missing file", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			crl := sf.dynamic[".crl"]
			if err := os.Remove(local(dir, crl)); err != nil {
				t.Fatal(err)
			}
			return crl
		}, backupset.ErrMissingFile},
		{"byte appended", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			b := readFile(t, local(dir, sf.db))
			writeFile(t, local(dir, sf.db), append(b, 0))
			return sf.db
		}, backupset.ErrSizeMismatch},
		{"file truncated to zero", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			writeFile(t, local(dir, sf.logs[1]), nil)
			return sf.logs[1]
		}, backupset.ErrTruncated},
		{"same-length content change", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			b := readFile(t, local(dir, sf.db))
			b[len(b)/2] ^= 0x01
			writeFile(t, local(dir, sf.db), b)
			return sf.db
		}, backupset.ErrDigestMismatch},
		{"manifest edited", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			p := local(dir, backupset.ManifestFile)
			b := readFile(t, p)
			old := fmt.Sprintf(`"snapshot_lsn": %d`, sf.m.Backups[0].SnapshotLSN)
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("manifest lacks %s", old)
			}
			writeFile(t, p, bytes.Replace(b, []byte(old), []byte(fmt.Sprintf(`"snapshot_lsn": %d`, sf.m.Backups[0].SnapshotLSN-1)), 1))
			return backupset.ManifestFile
		}, backupset.ErrManifestChecksum},
		{"manifest checksum wrong", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			p := local(dir, backupset.ManifestFile)
			b := readFile(t, p)
			wrong := strings.Repeat("0", 64)
			writeFile(t, p, bytes.Replace(b, []byte(sf.m.Checksum), []byte(wrong), 1))
			return backupset.ManifestFile
		}, backupset.ErrManifestChecksum},
		{"manifest edited with its checksum recomputed", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			rewriteManifest(t, dir, func(m *backupset.Manifest) { m.Backups[0].SnapshotLSN-- })
			return sf.db
		}, backupset.ErrManifestMismatch},
		{"database snapshot of another CA", foreignDatabase, backupset.ErrForeignDatabase},
		{"log generation missing in the middle", middleLogMissing, backupset.ErrMissingFile},
		{"log from another log set", foreignLog, backupset.ErrForeignLog},
		{"logs out of order", logsOutOfOrder, ErrLogOrder},
		{"incremental that does not continue the chain", gapIncremental, backupset.ErrChainGap},
	}
	if n := len(filesOf(t, f.base).logs); n < 3 {
		t.Fatalf("the base set has %d log generations; the cases need at least 3", n)
	}
	// An edited manifest and a wrong checksum cannot be told apart: either
	// way the checksum does not match the content.
	seen := map[string]string{}
	same := map[string]bool{"manifest checksum wrong": true}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copySet(t, f.base)
			rel := c.damage(t, dir, filesOf(t, f.base), f)
			rep := mustFail(t, dir, c.want, rel)
			p := problemFor(rep, c.want, rel)
			if !strings.Contains(p.Error(), rel) {
				t.Errorf("the problem does not name %s: %v", rel, p)
			}
			if c, _ := rep.Check(CheckTrial); !c.Skipped {
				t.Errorf("the trial restore ran on a damaged set: %+v", c)
			}
			key := fmt.Sprint(c.want) + " " + rel
			if prev, dup := seen[key]; dup && !same[c.name] {
				t.Errorf("same error and file as %q", prev)
			}
			seen[key] = c.name
			t.Logf("%s: %v", c.name, p)
		})
	}
}

// TestCorruptionCatalogueWithoutManifest damages a set without
// manifest.json: what the files themselves can show must still be refused,
// naming the file.
func TestCorruptionCatalogueWithoutManifest(t *testing.T) {
	f := fixtures(t)
	cases := []struct {
		name   string
		damage damage
		want   error
	}{
		{"extra file", extraFile, backupset.ErrExtraFile},
		{"database snapshot of another CA", foreignDatabase, backupset.ErrForeignDatabase},
		{"log generation missing in the middle", middleLogMissing, backupset.ErrMissingFile},
		{"log from another log set", foreignLog, backupset.ErrForeignLog},
		{"logs out of order", logsOutOfOrder, ErrLogOrder},
		{"incremental that does not continue the chain", gapIncremental, backupset.ErrChainGap},
		{"log truncated to zero", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			writeFile(t, local(dir, sf.logs[1]), nil)
			return sf.logs[1]
		}, backupset.ErrLogCorrupt},
		{"log record changed", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			b := readFile(t, local(dir, sf.logs[1]))
			b[len(b)-10] ^= 0x01
			writeFile(t, local(dir, sf.logs[1]), b)
			return sf.logs[1]
		}, backupset.ErrLogCorrupt},
		{"restore map missing", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			if err := os.Remove(local(dir, restoreMapRel)); err != nil {
				t.Fatal(err)
			}
			return restoreMapRel
		}, backupset.ErrMissingFile},
		{"restore map of another database", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			m, err := backupset.ReadRestoreMap(local(dir, restoreMapRel))
			if err != nil {
				t.Fatal(err)
			}
			for i := range m.Entries {
				if m.Entries[i].Tag == backupset.TagDatabase {
					m.Entries[i].Path = "/var/lib/other/db/Other CA.db"
				}
			}
			b, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, local(dir, restoreMapRel), b)
			return restoreMapRel
		}, backupset.ErrBadRestoreMap},
		{"configuration of another CA", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			p := local(dir, "Config/certsrv.json")
			b := readFile(t, p)
			writeFile(t, p, bytes.Replace(b, []byte(sf.m.CA.Name), []byte("Other CA"), 1))
			return "Config/certsrv.json"
		}, ErrConfig},
		{"leftover part file", func(t *testing.T, dir string, sf setFiles, f *fixture) string {
			writeFile(t, local(dir, sf.logs[0]+backupset.PartSuffix), []byte("x"))
			return sf.logs[0] + backupset.PartSuffix
		}, backupset.ErrIncomplete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copySet(t, f.base)
			sf := filesOf(t, f.base)
			if err := os.Remove(filepath.Join(dir, backupset.ManifestFile)); err != nil {
				t.Fatal(err)
			}
			rel := c.damage(t, dir, sf, f)
			rep := mustFail(t, dir, c.want, rel)
			if rep.HasManifest {
				t.Error("report says the set has a manifest")
			}
			if c, _ := rep.Check(CheckTrial); !c.Skipped {
				t.Errorf("the trial restore ran on a damaged set: %+v", c)
			}
			t.Logf("%s: %v", c.name, problemFor(rep, c.want, rel))
		})
	}
}

func TestSetWithoutManifestVerifies(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	if err := os.Remove(filepath.Join(dir, backupset.ManifestFile)); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, problemList(rep))
	}
	if rep.HasManifest || rep.ManifestChecksum != "" || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "no manifest.json") {
		t.Errorf("report: manifest %t, notes %q", rep.HasManifest, rep.Notes)
	}
	withManifest, err := Verify(context.Background(), copySet(t, f.base), Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// The same set, described from its files, restores to the same thing.
	if rep.SnapshotLSN != withManifest.SnapshotLSN || rep.LastLSN != withManifest.LastLSN || rep.Replayed != withManifest.Replayed ||
		rep.Counts != withManifest.Counts || rep.FirstGen != withManifest.FirstGen || rep.LastGen != withManifest.LastGen ||
		rep.CAName != withManifest.CAName || rep.Files != withManifest.Files {
		t.Errorf("without manifest: %+v\nwith: %+v", rep, withManifest)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "no manifest") || !strings.Contains(text.String(), "absent") {
		t.Errorf("text report does not say the manifest is absent:\n%s", text.String())
	}
}

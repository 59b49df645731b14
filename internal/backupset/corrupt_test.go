package backupset

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/wal"
)

// TestCorruptionCatalogue damages a complete set in one way at a time and
// checks that verification reports exactly the sentinels for that damage.
func TestCorruptionCatalogue(t *testing.T) {
	type damage func(t *testing.T, dir string, src *source, m *Manifest)
	path := func(dir, rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }
	fileOf := func(m *Manifest, k Kind) FileEntry {
		for _, f := range m.Files {
			if f.Kind == k {
				return f
			}
		}
		t.Fatalf("no %s file", k)
		return FileEntry{}
	}
	lastLog := func(m *Manifest) FileEntry {
		var l FileEntry
		for _, f := range m.Files {
			if f.Kind == KindLog && f.Path > l.Path {
				l = f
			}
		}
		return l
	}
	// setEntry replaces a file's manifest entry after the file changed.
	setEntry := func(t *testing.T, dir string, rel string) {
		rewriteManifest(t, dir, func(m *Manifest) {
			for i := range m.Files {
				if m.Files[i].Path == rel {
					m.Files[i] = fileEntryFor(t, dir, m.Files[i])
				}
			}
		})
	}
	cases := []struct {
		name string
		do   damage
		want []error
	}{
		{"extra file", func(t *testing.T, dir string, _ *source, _ *Manifest) {
			os.WriteFile(path(dir, "DataBase/notes.txt"), []byte("hello"), 0o600)
		}, []error{ErrExtraFile}},
		{"extra directory", func(t *testing.T, dir string, _ *source, _ *Manifest) {
			os.Mkdir(path(dir, "Other"), 0o700)
		}, []error{ErrExtraFile}},
		{"left-over part file", func(t *testing.T, dir string, _ *source, _ *Manifest) {
			os.WriteFile(path(dir, "DataBase/ca000000FF.log.part"), []byte("half"), 0o600)
		}, []error{ErrIncomplete}},
		{"missing file", func(t *testing.T, dir string, _ *source, m *Manifest) {
			os.Remove(path(dir, fileOf(m, KindDynamic).Path))
		}, []error{ErrMissingFile}},
		{"byte appended", func(t *testing.T, dir string, _ *source, m *Manifest) {
			f, _ := os.OpenFile(path(dir, fileOf(m, KindDatabase).Path), os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte{0})
			f.Close()
		}, []error{ErrSizeMismatch}},
		{"file truncated to zero", func(t *testing.T, dir string, _ *source, m *Manifest) {
			os.Truncate(path(dir, fileOf(m, KindConfig).Path), 0)
		}, []error{ErrSizeMismatch, ErrTruncated}},
		{"same-length content change", func(t *testing.T, dir string, _ *source, m *Manifest) {
			p := path(dir, fileOf(m, KindDatabase).Path)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x40
			os.WriteFile(p, b, 0o600)
		}, []error{ErrDigestMismatch}},
		{"manifest edited", func(t *testing.T, dir string, _ *source, _ *Manifest) {
			p := path(dir, ManifestFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"name": "Damage CA"`), []byte(`"name": "Other CA"`), 1), 0o600)
		}, []error{ErrManifestChecksum}},
		{"manifest checksum wrong", func(t *testing.T, dir string, _ *source, m *Manifest) {
			p := path(dir, ManifestFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(m.Checksum), []byte(strings.Repeat("ab", 32)), 1), 0o600)
		}, []error{ErrManifestChecksum}},
		{"manifest checksum malformed", func(t *testing.T, dir string, _ *source, m *Manifest) {
			p := path(dir, ManifestFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(m.Checksum), []byte("not-hex"), 1), 0o600)
		}, []error{ErrManifestFormat}},
		{"manifest unknown member", func(t *testing.T, dir string, _ *source, _ *Manifest) {
			// The checksum is recomputed with the extra member, so that
			// only the format check can object.
			p := path(dir, ManifestFile)
			b, _ := os.ReadFile(p)
			var obj map[string]any
			if err := json.Unmarshal(b, &obj); err != nil {
				t.Fatal(err)
			}
			obj["extra"] = true
			raw, _ := json.Marshal(obj)
			sum, _, err := manifestChecksum(raw)
			if err != nil {
				t.Fatal(err)
			}
			obj["checksum"] = sum
			raw, _ = json.Marshal(obj)
			os.WriteFile(p, raw, 0o600)
		}, []error{ErrManifestFormat}},
		{"incremental does not continue the chain", func(t *testing.T, dir string, src *source, m *Manifest) {
			// Logs-only backups 1 and 2 exist on the server, but only 2
			// is put into the set, with a manifest claiming it follows.
			full := m.Backups[0]
			src.incremental(full.LastGen, 250)
			sealed1 := src.log.Current() - 1
			inc2 := src.incremental(sealed1, 250)
			var gens []uint32
			for _, l := range inc2.Logs {
				g, _ := wal.ParseFileName("ca", filepath.Base(l))
				gens = append(gens, g)
				b, _ := os.ReadFile(l)
				os.WriteFile(path(dir, "DataBase/"+filepath.Base(l)), b, 0o600)
			}
			rewriteManifest(t, dir, func(m *Manifest) {
				first, _ := wal.VerifyGeneration(src.genPath(gens[0]), nil)
				last, _ := wal.VerifyGeneration(src.genPath(gens[len(gens)-1]), nil)
				m.Backups = append(m.Backups, Backup{Type: BackupLogsOnly, FirstGen: gens[0], LastGen: gens[len(gens)-1],
					FirstLSN: first.BaseLSN, LastLSN: endLSN(last), Time: full.Time})
				for _, g := range gens {
					e := FileEntry{Path: "DataBase/" + wal.FileName("ca", g), Kind: KindLog, Backup: 1}
					m.Files = append(m.Files, fileEntryFor(t, dir, e))
				}
			})
		}, []error{ErrChainGap}},
		{"log from another log set", func(t *testing.T, dir string, _ *source, m *Manifest) {
			l := lastLog(m)
			gen, _ := wal.ParseFileName("ca", filepath.Base(l.Path))
			other := newSource(t, "Other CA")
			for other.log.Current() <= gen {
				other.write(50)
			}
			b, _ := os.ReadFile(other.genPath(gen))
			os.WriteFile(path(dir, l.Path), b, 0o600)
			setEntry(t, dir, l.Path)
		}, []error{ErrForeignLog}},
		{"log damaged, manifest rehashed", func(t *testing.T, dir string, _ *source, m *Manifest) {
			l := lastLog(m)
			p := path(dir, l.Path)
			b, _ := os.ReadFile(p)
			b[wal.HeaderSize+40] ^= 1
			os.WriteFile(p, b, 0o600)
			setEntry(t, dir, l.Path)
		}, []error{ErrLogCorrupt}},
		{"database from another CA", func(t *testing.T, dir string, src *source, m *Manifest) {
			db := fileOf(m, KindDatabase)
			os.Remove(path(dir, db.Path))
			makeDB(t, path(dir, db.Path), [16]byte{9}, src.log.Signature(), m.Backups[0].SnapshotLSN)
			setEntry(t, dir, db.Path)
		}, []error{ErrForeignDatabase}},
		{"snapshot LSN edited", func(t *testing.T, dir string, _ *source, m *Manifest) {
			rewriteManifest(t, dir, func(m *Manifest) { m.Backups[0].SnapshotLSN-- })
		}, []error{ErrManifestMismatch}},
		{"restore map damaged, manifest rehashed", func(t *testing.T, dir string, _ *source, m *Manifest) {
			rm := fileOf(m, KindRestoreMap)
			p := path(dir, rm.Path)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte("\n44 /"), []byte("\n44 ."), 1), 0o600)
			setEntry(t, dir, rm.Path)
		}, []error{ErrBadRestoreMap}},
		{"restore map of another database, manifest rehashed", func(t *testing.T, dir string, src *source, m *Manifest) {
			rm := src.rmap
			rm.Entries = slices.Clone(rm.Entries)
			rm.Entries[0].Path = "/var/lib/certsrv/db/Other CA.db"
			b, err := rm.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(path(dir, fileOf(m, KindRestoreMap).Path), b, 0o600)
			setEntry(t, dir, fileOf(m, KindRestoreMap).Path)
		}, []error{ErrBadRestoreMap}},
		{"configuration of another CA, manifest rehashed", func(t *testing.T, dir string, _ *source, m *Manifest) {
			b, err := json.Marshal(datadir.DefaultConfig("Other CA"))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(path(dir, fileOf(m, KindConfig).Path), b, 0o600)
			setEntry(t, dir, fileOf(m, KindConfig).Path)
		}, []error{ErrConfig}},
		{"database cut by a page, manifest rehashed", func(t *testing.T, dir string, _ *source, m *Manifest) {
			db := fileOf(m, KindDatabase)
			os.Truncate(path(dir, db.Path), db.Size-4096)
			setEntry(t, dir, db.Path)
		}, []error{ErrSizeMismatch, ErrTruncated}},
		{"log generation missing from the set", func(t *testing.T, dir string, _ *source, m *Manifest) {
			// The manifest still lists it: a missing file and a gap in the
			// chain.
			os.Remove(path(dir, lastLog(m).Path))
		}, []error{ErrMissingFile, ErrChainGap}},
		{"log generation removed from set and manifest", func(t *testing.T, dir string, _ *source, m *Manifest) {
			l := lastLog(m)
			os.Remove(path(dir, l.Path))
			rewriteManifest(t, dir, func(m *Manifest) {
				m.Files = slices.DeleteFunc(m.Files, func(f FileEntry) bool { return f.Path == l.Path })
			})
		}, []error{ErrChainGap}},
	}
	src := newSource(t, "Damage CA")
	pristine := t.TempDir()
	m := src.fullBackup(pristine)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, dir, pristine)
			if _, err := verifyDir(t, dir); err != nil {
				t.Fatalf("before damage: %v", err)
			}
			c.do(t, dir, src, m)
			_, err := verifyDir(t, dir)
			if err == nil {
				t.Fatal("damage not detected")
			}
			got := matching(err)
			if !slices.Equal(got, c.want) {
				t.Errorf("got sentinels %v, want %v; error: %v", got, c.want, err)
			}
		})
	}
}

// TestVerifyReportsEveryProblem damages a set in several ways at once and
// checks that one Verify reports each.
func TestVerifyReportsEveryProblem(t *testing.T) {
	src := newSource(t, "Many CA")
	dir := t.TempDir()
	m := src.fullBackup(dir)
	for _, f := range m.Files {
		switch f.Kind {
		case KindDynamic:
			os.Remove(filepath.Join(dir, filepath.FromSlash(f.Path)))
		case KindConfig:
			os.WriteFile(filepath.Join(dir, filepath.FromSlash(f.Path)), []byte("{}"), 0o600)
		}
	}
	os.WriteFile(filepath.Join(dir, "stray"), nil, 0o600)
	rep, err := verifyDir(t, dir)
	var ve *VerifyError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 || len(rep.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	for _, want := range []error{ErrMissingFile, ErrTruncated, ErrExtraFile} {
		if !errors.Is(err, want) {
			t.Errorf("%v not reported", want)
		}
	}
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path == "" {
		t.Errorf("no FileError with a path in %v", err)
	}
	// The files that failed their own check, in manifest order; the stray
	// file is not a set file.
	var want []string
	for _, f := range m.Files {
		if f.Kind == KindDynamic || f.Kind == KindConfig {
			want = append(want, f.Path)
		}
	}
	if !slices.Equal(rep.FailedFiles, want) {
		t.Errorf("failed files %q, want %q", rep.FailedFiles, want)
	}
}

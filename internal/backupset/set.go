package backupset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/certsrv/certsrv/internal/wal"
)

// maxManifest bounds the size of a manifest a reader accepts.
const maxManifest = 16 << 20

// Set is a backup set on the medium: one whose manifest was read and
// checked (format and checksum) by Open, or one without manifest.json that
// Derive described from its files. Open does not look at the other files,
// and Derive only as far as it needs to describe the set: Verify checks
// them. A Set is safe for concurrent reads; AppendIncremental must not run
// concurrently with anything else on the same set.
type Set struct {
	dir string
	m   *Manifest
	raw []byte      // manifest.json as read; nil for a derived set
	d   *derivation // nil for a set with a manifest
}

// Open reads dir/manifest.json: ErrNoManifest when it is absent,
// ErrIncomplete when it is absent but a *.part file shows an interrupted
// write, ErrManifestChecksum when its checksum does not match and
// ErrManifestFormat when it is not a valid format-1 manifest.
//
// A dir that does not exist or is not a directory fails with an error
// matching ErrNotASet and ErrNoManifest that says just that.
func Open(dir string) (*Set, error) {
	if err := checkSetDir(dir); err != nil {
		return nil, fmt.Errorf("open backup set: %w", err)
	}
	p := filepath.Join(dir, ManifestFile)
	raw, err := readManifestFile(p)
	if errors.Is(err, os.ErrNotExist) {
		if parts := partFiles(dir); len(parts) > 0 {
			return nil, fmt.Errorf("open backup set %s: %w: no %s and %s is still being written or was interrupted",
				dir, ErrIncomplete, ManifestFile, parts[0])
		}
		return nil, fmt.Errorf("open backup set %s: %w", dir, ErrNoManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("open backup set %s: %w", dir, err)
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("open backup set %s: %w", dir, err)
	}
	return &Set{dir: dir, m: m, raw: raw}, nil
}

// partFiles lists the *.part files at the top of dir and one level below.
func partFiles(dir string) []string {
	top, _ := filepath.Glob(filepath.Join(dir, "*"+PartSuffix))
	sub, _ := filepath.Glob(filepath.Join(dir, "*", "*"+PartSuffix))
	return append(top, sub...)
}

func readManifestFile(p string) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxManifest {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrManifestFormat, p, fi.Size(), maxManifest)
	}
	return os.ReadFile(p)
}

// Dir returns the set directory.
func (s *Set) Dir() string { return s.dir }

// HasManifest reports whether the set was read from its manifest.json
// (Open) rather than derived from its files (Derive).
func (s *Set) HasManifest() bool { return s.d == nil }

// Manifest returns a copy of the manifest. For a derived set it is the
// description Derive made (see Derive): the manifest's form without a
// checksum, file digests, backup time or server.
func (s *Set) Manifest() *Manifest { return s.m.clone() }

// Path returns the local path of a file of the set given by its manifest
// path.
func (s *Set) Path(rel string) (string, error) { return localPath(s.dir, rel) }

// Database returns the entry of the database snapshot.
func (s *Set) Database() FileEntry {
	for _, f := range s.m.Files {
		if f.Kind == KindDatabase {
			return f
		}
	}
	return FileEntry{} // unreachable: validate requires one
}

// Logs returns the entries of the log generations, in generation order.
func (s *Set) Logs() []FileEntry {
	var logs []FileEntry
	for _, f := range s.m.Files {
		if f.Kind == KindLog {
			logs = append(logs, f)
		}
	}
	slices.SortFunc(logs, func(a, b FileEntry) int {
		ga, _ := wal.ParseFileName(s.m.CA.LogBase, filepath.Base(a.Path))
		gb, _ := wal.ParseFileName(s.m.CA.LogBase, filepath.Base(b.Path))
		return int(int64(ga) - int64(gb))
	})
	return logs
}

// Files returns every file entry, in manifest order.
func (s *Set) Files() []FileEntry { return slices.Clone(s.m.Files) }

// RestoreMap reads and parses the set's restore map.
func (s *Set) RestoreMap() (RestoreMap, error) {
	return ReadRestoreMap(filepath.Join(s.dir, DatabaseDir, RestoreMapFile))
}

package backupset

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/wal"
)

// Options describe the CA a new set is written for.
type Options struct {
	// CAName is the CA's name. Required.
	CAName string
	// CACertSHA256 is the SHA-256 of the CA certificate (DER). Required.
	CACertSHA256 [32]byte
	// LogBase is the log file name base ("ca"). Empty means: take it from
	// the first log generation added, whose name is <base><8 hex>.log.
	LogBase string
}

// BackupInfo describes the backup session a Commit records.
type BackupInfo struct {
	// Time is when the session ended; zero means now.
	Time time.Time
	// Server is the address the backup was taken from ("host:port").
	Server string
	// CertsrvVersion is the version the server reported.
	CertsrvVersion string
}

// Writer writes a new set holding one full backup. Add the files with
// AddFile (or AddRestoreMap), then Commit, which checks them and writes the
// manifest last; or Abort. A Writer is for one goroutine at a time.
type Writer struct {
	dir    string
	chunk  int64 // the manifest's chunk size
	opts   Options
	files  []FileEntry
	notes  []string
	closed bool
}

// Create starts a set in dir. dir must be absent or an empty directory
// (ErrNotEmpty otherwise; see Clear). Create makes dir (mode 0700) and
// fsyncs its parent.
func Create(dir string, opts Options) (*Writer, error) {
	if opts.CAName == "" {
		return nil, errors.New("create backup set: empty CA name")
	}
	if opts.CACertSHA256 == ([32]byte{}) {
		return nil, errors.New("create backup set: no CA certificate digest")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, dirPerm); err != nil {
			return nil, fmt.Errorf("create backup set: %w", err)
		}
		if err := fsutil.SyncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return nil, fmt.Errorf("create backup set: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("create backup set: %w", err)
	case len(entries) > 0:
		return nil, fmt.Errorf("create backup set in %s: %w: it holds %s", dir, ErrNotEmpty, describeEntries(entries))
	}
	return &Writer{dir: dir, chunk: chunkSize, opts: opts}, nil
}

func describeEntries(entries []os.DirEntry) string {
	names := make([]string, 0, 3)
	for i, e := range entries {
		if i == 3 {
			names = append(names, fmt.Sprintf("and %d more", len(entries)-3))
			break
		}
		names = append(names, e.Name())
	}
	return strings.Join(names, ", ")
}

// Dir returns the set directory.
func (w *Writer) Dir() string { return w.dir }

// AddFile copies exactly size bytes from r into the set as rel (a
// slash-separated path that fits the layout for kind; ErrBadPath
// otherwise), durably, hashing while it writes; see doc.go for the steps.
// A source that delivers another number of bytes fails with ErrSizeMismatch
// and leaves nothing behind. The set may hold one database, one restore map
// and one configuration file.
func (w *Writer) AddFile(ctx context.Context, kind Kind, rel string, r io.Reader, size int64) (FileEntry, error) {
	if w.closed {
		return FileEntry{}, ErrClosed
	}
	base := w.opts.LogBase
	if kind == KindLog && base == "" {
		base = logBaseOf(path.Base(rel))
	}
	if err := checkLayout(kind, rel, base); err != nil {
		return FileEntry{}, err
	}
	for _, f := range w.files {
		switch {
		case f.Path == rel:
			return FileEntry{}, fmt.Errorf("%w: %s was already added", ErrBadPath, rel)
		case f.Kind == kind && (kind == KindDatabase || kind == KindRestoreMap || kind == KindConfig):
			return FileEntry{}, fmt.Errorf("%w: a set holds one %s file and %s is already added", ErrBadPath, kind, f.Path)
		}
	}
	sums, err := writeFile(ctx, w.dir, rel, r, size, w.chunk)
	if err != nil {
		return FileEntry{}, err
	}
	e := FileEntry{Path: rel, Kind: kind, Size: size, Backup: 0}
	e.setDigests(sums)
	w.files = append(w.files, e)
	if kind == KindLog {
		w.opts.LogBase = base
	}
	return e, nil
}

// logBaseOf returns the base of a log generation file name,
// <base><8 upper-case hex digits>.log as internal/wal names it, or "" when
// name is not one.
func logBaseOf(name string) string {
	if len(name) <= 12 || !strings.HasSuffix(name, ".log") {
		return ""
	}
	base := name[:len(name)-12]
	if gen, ok := wal.ParseFileName(base, name); !ok || wal.FileName(base, gen) != name {
		return ""
	}
	return base
}

// AddRestoreMap writes m as DataBase/certbkxp.dat.
func (w *Writer) AddRestoreMap(ctx context.Context, m RestoreMap) (FileEntry, error) {
	b, err := m.Marshal()
	if err != nil {
		return FileEntry{}, err
	}
	return w.AddFile(ctx, KindRestoreMap, DatabaseDir+"/"+RestoreMapFile, bytes.NewReader(b), int64(len(b)))
}

// Note adds a line to the manifest's notes, for what a reader of the set
// should know (for example that the configuration could not be included).
func (w *Writer) Note(text string) { w.notes = append(w.notes, text) }

// Files returns the files added so far.
func (w *Writer) Files() []FileEntry { return cloneFiles(w.files) }

// Commit checks the files added and writes the manifest, which makes the
// set complete. It requires one database, one restore map and at least one
// log generation; it reads the database's meta row for the signatures and
// the snapshot LSN S, verifies every log generation and their chain, checks
// that each carries the database's log-set signature (ErrForeignLog) and
// that the logs continue the snapshot: the first log's first LSN is at most
// S+1 and the last holds S or later (ErrChainGap). Nothing is written when
// a check fails; the Writer is closed either way.
func (w *Writer) Commit(ctx context.Context, info BackupInfo) (*Manifest, error) {
	if w.closed {
		return nil, ErrClosed
	}
	w.closed = true
	var db, rmap *FileEntry
	for i := range w.files {
		switch w.files[i].Kind {
		case KindDatabase:
			db = &w.files[i]
		case KindRestoreMap:
			rmap = &w.files[i]
		}
	}
	gens := logGens(w.files, w.opts.LogBase)
	switch {
	case db == nil:
		return nil, fmt.Errorf("commit backup set: %w: no database file", ErrManifestFormat)
	case rmap == nil:
		return nil, fmt.Errorf("commit backup set: %w: no restore map", ErrManifestFormat)
	case len(gens) == 0:
		return nil, fmt.Errorf("commit backup set: %w: no log generation", ErrManifestFormat)
	}
	if _, err := ReadRestoreMap(filepath.Join(w.dir, filepath.FromSlash(rmap.Path))); err != nil {
		return nil, fmt.Errorf("commit backup set: %w", err)
	}
	meta, err := ReadDBMeta(ctx, filepath.Join(w.dir, filepath.FromSlash(db.Path)))
	if err != nil {
		return nil, fmt.Errorf("commit backup set: %w", err)
	}
	var problems collect
	infos, err := logChain(ctx, w.dir, w.opts.LogBase, meta.LogSignature, gens, nil, nil, problems.add)
	if err != nil {
		return nil, fmt.Errorf("commit backup set: %w", err)
	}
	if err := problems.err(); err != nil {
		return nil, fmt.Errorf("commit backup set: %w", err)
	}
	first, last := infos[gens[0]], infos[gens[len(gens)-1]]
	b := Backup{
		Type:           BackupFull,
		FirstGen:       first.Gen,
		LastGen:        last.Gen,
		FirstLSN:       first.BaseLSN,
		LastLSN:        endLSN(last),
		SnapshotLSN:    meta.AppliedLSN,
		Time:           backupTime(info.Time),
		Server:         info.Server,
		CertsrvVersion: info.CertsrvVersion,
	}
	if err := checkSnapshotCovered(b); err != nil {
		return nil, fmt.Errorf("commit backup set: %w", err)
	}
	m := &Manifest{
		Format:    ManifestFormat,
		ChunkSize: w.chunk,
		CA: CAIdentity{
			Name:         w.opts.CAName,
			CertSHA256:   hex.EncodeToString(w.opts.CACertSHA256[:]),
			DBSignature:  hex.EncodeToString(meta.DBSignature[:]),
			LogSignature: hex.EncodeToString(meta.LogSignature[:]),
			LogBase:      w.opts.LogBase,
		},
		Backups: []Backup{b},
		Files:   w.Files(),
		Notes:   append([]string{}, w.notes...),
	}
	if _, err := writeManifest(w.dir, m); err != nil {
		return nil, fmt.Errorf("commit backup set: %w", err)
	}
	return m.clone(), nil
}

// checkSnapshotCovered checks that a full backup's logs continue its
// snapshot: replay starts at S+1, which must be at or after the first log's
// first LSN and at most one past the last log's last record.
func checkSnapshotCovered(b Backup) error {
	if b.FirstLSN > b.SnapshotLSN+1 || b.LastLSN < b.SnapshotLSN {
		return chainErr(ErrChainGap, 0, b.FirstGen, "the snapshot is at LSN %d but the logs hold LSNs %d..%d",
			b.SnapshotLSN, b.FirstLSN, b.LastLSN)
	}
	return nil
}

func backupTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC()
}

// Abort closes the Writer without a manifest, so the set stays visibly
// incomplete. The files already added stay where they are, for inspection;
// Clear removes them.
func (w *Writer) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return nil
}

// Clear removes a backup set from dir so that a new full backup can be
// written there. It first checks that dir holds nothing but the layout's
// entries (manifest.json, verified.json, DataBase/, Dynamic/, Config/,
// *.p12 and *.part files at the top) and fails with ErrNotEmpty, removing
// nothing, when it holds anything else. It removes the manifest first, so
// that an interrupted Clear leaves a set that is visibly incomplete. A
// missing dir is not an error.
func Clear(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear backup set: %w", err)
	}
	var foreign []os.DirEntry
	for _, e := range entries {
		if !isLayoutEntry(e) {
			foreign = append(foreign, e)
		}
	}
	if len(foreign) > 0 {
		return fmt.Errorf("clear backup set %s: %w: %s is not part of a backup set; remove it yourself", dir, ErrNotEmpty, describeEntries(foreign))
	}
	if err := os.Remove(filepath.Join(dir, ManifestFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clear backup set: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fmt.Errorf("clear backup set: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clear backup set: %w", err)
		}
	}
	return fsutil.SyncDir(dir)
}

// isLayoutEntry reports whether a top-level entry of a set directory
// belongs to the layout.
func isLayoutEntry(e os.DirEntry) bool {
	name := e.Name()
	switch {
	case e.IsDir():
		return name == DatabaseDir || name == DynamicDir || name == ConfigDir
	case !e.Type().IsRegular():
		return false
	case name == ManifestFile || name == VerifiedFile:
		return true
	case strings.HasSuffix(name, PartSuffix):
		return true
	case strings.HasSuffix(name, ".p12") && !strings.HasPrefix(name, "."):
		return true
	}
	return false
}

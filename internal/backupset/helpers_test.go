package backupset

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/wal"
)

// source stands in for a CA's database engine: a real log set written with
// internal/wal and database snapshots made as real SQLite files with the
// store's meta row. It mimics what a backup session lists.
type source struct {
	t      *testing.T
	dir    string
	log    *wal.Log
	dbSig  [16]byte
	caName string
	cert   [32]byte
	rmap   RestoreMap
	// dbBytes, when set, grows each snapshot to at least that many bytes.
	dbBytes int64
}

func newSource(t *testing.T, caName string) *source {
	t.Helper()
	dir := t.TempDir()
	l, err := wal.Create(wal.Options{Dir: filepath.Join(dir, "log"), Base: "ca", SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &source{t: t, dir: dir, log: l, caName: caName}
	rand.Read(s.dbSig[:])
	s.cert = sha256.Sum256([]byte("certificate of " + caName + " " + dir))
	s.rmap = RestoreMap{Entries: []RestoreEntry{
		{TagDatabase, filepath.Join(dir, "db", caName+".db")},
		{TagLogDir, filepath.Join(dir, "log")},
		{TagCheckpointDir, filepath.Join(dir, "sys")},
	}}
	return s
}

// write appends n records of about 300 bytes.
func (s *source) write(n int) { s.writeSized(n, 300) }

// writeSized appends n records of size bytes.
func (s *source) writeSized(n, size int) {
	s.t.Helper()
	for i := 0; i < n; i++ {
		p := make([]byte, size)
		rand.Read(p)
		if _, err := s.log.Append(context.Background(), 1, p); err != nil {
			s.t.Fatal(err)
		}
	}
}

// roll seals the current generation and returns it.
func (s *source) roll() uint32 {
	s.t.Helper()
	g, err := s.log.Roll()
	if err != nil {
		s.t.Fatal(err)
	}
	return g
}

func (s *source) genPath(gen uint32) string {
	return filepath.Join(s.dir, "log", wal.FileName("ca", gen))
}

// snapshot writes a SQLite database at path whose meta row reflects the
// log's last LSN, as a store snapshot does, and returns that LSN.
func (s *source) snapshot(path string) uint64 {
	s.t.Helper()
	lsn := s.log.LastLSN()
	sig := s.log.Signature()
	makeDB(s.t, path, s.dbSig, sig, lsn)
	if s.dbBytes > 0 {
		growDB(s.t, path, s.dbBytes)
	}
	return lsn
}

// growDB adds rows of random bytes to the database at path until the file
// holds at least size bytes.
func growDB(t *testing.T, path string, size int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+uriPath(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; ; i++ {
		if fi, err := os.Stat(path); err != nil {
			t.Fatal(err)
		} else if fi.Size() >= size {
			return
		}
		der := make([]byte, 64<<10)
		rand.Read(der)
		if _, err := db.Exec(`INSERT INTO certificates VALUES (?, ?)`, fmt.Sprintf("G%015X", i), der); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
	}
}

// makeDB writes a database file with a meta row and some content.
func makeDB(t *testing.T, path string, dbSig [16]byte, logSig wal.Signature, applied uint64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+uriPath(path)+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), schema_version INTEGER NOT NULL,
			db_signature BLOB NOT NULL, log_signature BLOB NOT NULL, applied_lsn INTEGER NOT NULL,
			need_full_backup INTEGER NOT NULL DEFAULT 0)`,
		`CREATE TABLE certificates (serial TEXT PRIMARY KEY, der BLOB NOT NULL)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO meta (id, schema_version, db_signature, log_signature, applied_lsn) VALUES (1, 1, ?, ?, ?)`,
		dbSig[:], logSig[:], int64(applied)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		der := make([]byte, 600)
		rand.Read(der)
		if _, err := db.Exec(`INSERT INTO certificates VALUES (?, ?)`, fmt.Sprintf("%016X", i), der); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
}

// fullBackup writes a complete set into dir the way `certadm backup` does:
// snapshot at S, more writes, roll, then copy the generations from the one
// holding S+1 through the sealed one. It returns the manifest.
func (s *source) fullBackup(dir string) *Manifest {
	s.t.Helper()
	ctx := context.Background()
	s.write(20)
	snapDir := s.t.TempDir()
	snap := filepath.Join(snapDir, s.caName+".db")
	s.snapshot(snap)
	first := s.log.Current()
	s.writeSized(300, 600) // crosses at least two 64 KiB generations
	sealed := s.roll()
	w, err := Create(dir, Options{CAName: s.caName, CACertSHA256: s.cert})
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := w.AddRestoreMap(ctx, s.rmap); err != nil {
		s.t.Fatal(err)
	}
	s.addFile(w, KindDatabase, DatabaseDir+"/"+s.caName+".db", snap)
	for g := first; g <= sealed; g++ {
		s.addFile(w, KindLog, DatabaseDir+"/"+wal.FileName("ca", g), s.genPath(g))
	}
	crl := filepath.Join(snapDir, s.caName+".crl")
	if err := os.WriteFile(crl, []byte("a CRL of "+s.caName), 0o600); err != nil {
		s.t.Fatal(err)
	}
	s.addFile(w, KindDynamic, DynamicDir+"/"+s.caName+".crl", crl)
	cfg := filepath.Join(snapDir, "certsrv.json")
	conf, err := json.Marshal(datadir.DefaultConfig(s.caName))
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(cfg, conf, 0o600); err != nil {
		s.t.Fatal(err)
	}
	s.addFile(w, KindConfig, ConfigDir+"/"+ConfigFile, cfg)
	m, err := w.Commit(ctx, BackupInfo{Time: time.Now(), Server: "127.0.0.1:8443", CertsrvVersion: "test"})
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

func (s *source) addFile(w *Writer, k Kind, rel, src string) {
	s.t.Helper()
	f, err := os.Open(src)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if _, err := w.AddFile(context.Background(), k, rel, f, fi.Size()); err != nil {
		s.t.Fatal(err)
	}
}

// incremental is what a logs-only session would list after the set's last
// backup: more writes, a roll, and the generations since lastGen.
func (s *source) incremental(lastGen uint32, records int) Incremental {
	s.t.Helper()
	s.write(records)
	sealed := s.roll()
	inc := Incremental{CAName: s.caName, CACertSHA256: s.cert, RestoreMap: s.rmap}
	for g := lastGen + 1; g <= sealed; g++ {
		inc.Logs = append(inc.Logs, s.genPath(g))
	}
	inc.FirstLogHeader = s.header(lastGen + 1)
	return inc
}

func (s *source) header(gen uint32) []byte {
	s.t.Helper()
	b, err := os.ReadFile(s.genPath(gen))
	if err != nil {
		s.t.Fatal(err)
	}
	return b[:wal.HeaderSize]
}

// appendIncremental appends inc to the set, copying from the source.
func (s *source) appendIncremental(set *Set, inc Incremental) (*Manifest, error) {
	s.t.Helper()
	ctx := context.Background()
	a, err := set.AppendIncremental(ctx, inc)
	if err != nil {
		return nil, err
	}
	for _, l := range inc.Logs {
		f, err := os.Open(l)
		if err != nil {
			s.t.Fatal(err)
		}
		fi, _ := f.Stat()
		_, err = a.AddLog(ctx, l, f, fi.Size())
		f.Close()
		if err != nil {
			a.Abort()
			return nil, err
		}
	}
	return a.Commit(ctx, BackupInfo{Server: "127.0.0.1:8443", CertsrvVersion: "test"})
}

// rewriteManifest applies edit to dir's manifest and writes it back with a
// correct checksum, bypassing every check but the format's: the way to
// build a set that is wrong in one precise respect.
func rewriteManifest(t *testing.T, dir string, edit func(m *Manifest)) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	if _, err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
}

// fileEntryFor recomputes a manifest entry for a file replaced on disk, in
// a set with the default chunk size.
func fileEntryFor(t *testing.T, dir string, e FileEntry) FileEntry {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(e.Path))
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	e.Size = fi.Size()
	e.setDigests(fileDigests(t, p, DefaultChunkSize))
	return e
}

// fileDigests returns the digests a manifest records for the file at p: the
// SHA-256 of each chunk bytes, one for a file of at most one chunk.
func fileDigests(t *testing.T, p string, chunk int64) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var sums []string
	for off := int64(0); off == 0 || off < int64(len(b)); off += chunk {
		s := sha256.Sum256(b[off:min(off+chunk, int64(len(b)))])
		sums = append(sums, hex.EncodeToString(s[:]))
	}
	return sums
}

// entryDigests returns the digests e records, as fileDigests lists them.
func entryDigests(e FileEntry) []string {
	if e.SHA256 != "" {
		return []string{e.SHA256}
	}
	return e.ChunkSHA256
}

// verifyDir opens and verifies dir, returning the report (nil when Open
// failed) and the first error.
func verifyDir(t *testing.T, dir string) (*Report, error) {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		return nil, err
	}
	return s.Verify(context.Background())
}

// allSentinels are the sentinels a verification can report.
var allSentinels = []error{
	ErrNoManifest, ErrManifestFormat, ErrManifestChecksum, ErrManifestMismatch, ErrMissingFile,
	ErrExtraFile, ErrIncomplete, ErrSizeMismatch, ErrTruncated, ErrDigestMismatch, ErrChainGap,
	ErrForeignLog, ErrForeignDatabase, ErrForeignSet, ErrLogCorrupt, ErrDatabase, ErrBadRestoreMap, ErrBadPath,
	ErrNotASet, ErrLogOrder, ErrConfig,
}

// matching returns the sentinels err matches.
func matching(err error) []error {
	var out []error
	for _, s := range allSentinels {
		if errors.Is(err, s) {
			out = append(out, s)
		}
	}
	return out
}

// copyDir copies the regular files and directories of src into dst.
func copyDir(t *testing.T, dst, src string) {
	t.Helper()
	if err := fsutil.CopyTree(dst, src); err != nil {
		t.Fatal(err)
	}
}

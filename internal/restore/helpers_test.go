package restore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// testPassword protects the key files the tests put into backup sets.
const testPassword = "correct horse battery staple"

// testSegmentSize keeps log generations small, so a test's logs span many.
const testSegmentSize = 64 << 10

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testLogger writes to the test log with -v, else discards.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func must(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// source is a running CA (in process, no network) that tests back up.
type source struct {
	t    testing.TB
	dir  datadir.Dir
	ca   *service.CA
	lock *datadir.Lock
	key  *ecdsa.PrivateKey
	name string // the CA name
	n    int    // requests submitted so far, for unique names
}

// newSource creates a root CA in a fresh data directory with small log
// generations and opens it.
func newSource(t testing.TB) *source {
	t.Helper()
	return newSourceSegments(t, testSegmentSize)
}

// newSourceSegments is newSource with log generations of segSize bytes.
func newSourceSegments(t testing.TB, segSize int64) *source {
	t.Helper()
	dir, err := datadir.New(filepath.Join(t.TempDir(), "source"))
	must(t, err, "data dir")
	lock, err := dir.Acquire()
	must(t, err, "lock")
	cfg := datadir.DefaultConfig("Restore Test CA")
	cfg.LogSegmentSize = segSize
	cfg.DeltaCRLValidity = 0
	ctx := context.Background()
	if _, err := service.Init(ctx, dir, service.InitOptions{Config: &cfg, Logger: testLogger(t)}); err != nil {
		lock.Release()
		t.Fatalf("init: %v", err)
	}
	c, err := service.Open(ctx, dir, service.OpenOptions{Logger: testLogger(t)})
	if err != nil {
		lock.Release()
		t.Fatalf("open: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err, "key")
	s := &source{t: t, dir: dir, ca: c, lock: lock, key: key, name: c.Name()}
	t.Cleanup(s.stop)
	return s
}

// stop closes the CA and releases the lock; it may be called twice.
func (s *source) stop() {
	if s.ca != nil {
		s.ca.Close()
		s.ca = nil
	}
	s.lock.Release()
}

// csrFor returns a PEM CSR for name.example with the request key key.
func csrFor(t testing.TB, key *ecdsa.PrivateKey, name string) []byte {
	t.Helper()
	b, err := newCSR(key, name)
	must(t, err, "create CSR")
	return b
}

// newCSR returns a PEM CSR for name.example with the request key key.
func newCSR(key *ecdsa.PrivateKey, name string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: name + ".example"},
		DNSNames: []string{name + ".example"},
	}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// issue issues one certificate and returns its serial.
func (s *source) issue() string {
	s.t.Helper()
	s.n++
	r, err := s.ca.Submit(context.Background(), "tester", csrFor(s.t, s.key, fmt.Sprintf("host%d", s.n)), "tls-server")
	must(s.t, err, "submit")
	if r.Certificate == nil {
		s.t.Fatalf("request %d not issued: %+v", r.ID, r)
	}
	return r.Certificate.Serial
}

// workload issues n certificates, revokes every third and puts every
// fifth on hold, and publishes a CRL every tenth.
func (s *source) workload(n int) []string {
	s.t.Helper()
	ctx := context.Background()
	var serials []string
	for i := 0; i < n; i++ {
		serial := s.issue()
		serials = append(serials, serial)
		switch {
		case i%3 == 0:
			_, err := s.ca.Revoke(ctx, serial, "keyCompromise", time.Time{})
			must(s.t, err, "revoke")
		case i%5 == 0:
			_, err := s.ca.Revoke(ctx, serial, "certificateHold", time.Time{})
			must(s.t, err, "hold")
		}
		if i%10 == 9 {
			_, err := s.ca.PublishCRL(ctx, false)
			must(s.t, err, "CRL")
		}
	}
	return serials
}

// dump returns the source database's logical dump.
func (s *source) dump() *store.Dump {
	s.t.Helper()
	d, err := s.ca.Store().Dump(context.Background())
	must(s.t, err, "dump")
	return d
}

// certSHA256 is the SHA-256 of the CA certificate.
func (s *source) certSHA256() [32]byte { return sha256.Sum256(s.ca.Certificate().Raw) }

// restoreMap is what RestoreGetDatabaseLocations returns for the source.
func (s *source) restoreMap() backupset.RestoreMap {
	db := s.ca.Store()
	return backupset.RestoreMap{Entries: []backupset.RestoreEntry{
		{Tag: backupset.TagDatabase, Path: db.DBPath()},
		{Tag: backupset.TagLogDir, Path: db.LogDir()},
		{Tag: backupset.TagCheckpointDir, Path: db.SysDir()},
	}}
}

// backupOptions say what a full backup puts into the set besides the
// database, the logs and the restore map.
type backupOptions struct {
	withKey     bool // <CA>.p12 protected by testPassword
	withoutConf bool // no Config/certsrv.json
}

// fullBackup takes a full backup of the source into setDir, the way the
// backup service does: a snapshot at S, a roll, the generations from the
// one holding S+1 through the sealed one, then the backup is recorded.
func (s *source) fullBackup(setDir string, o backupOptions) *backupset.Manifest {
	s.t.Helper()
	t := s.t
	ctx := context.Background()
	db := s.ca.Store()
	snap, err := db.Snapshot(ctx)
	must(t, err, "snapshot")
	defer snap.Close()
	sealed, err := db.RollLog()
	must(t, err, "roll")
	var gens []wal.GenInfo
	for _, g := range db.Generations() {
		if g.Gen > sealed {
			continue
		}
		if g.BaseLSN <= snap.LSN()+1 {
			gens = gens[:0]
		}
		gens = append(gens, g)
	}
	w, err := backupset.Create(setDir, backupset.Options{CAName: s.ca.Name(), CACertSHA256: s.certSHA256(), LogBase: db.LogBase()})
	must(t, err, "create set")
	_, err = w.AddFile(ctx, backupset.KindDatabase, backupset.DatabaseDir+"/"+s.ca.Name()+".db", snap.NewReader(), snap.Size())
	must(t, err, "add database")
	for _, g := range gens {
		addFile(t, w, backupset.KindLog, backupset.DatabaseDir+"/"+filepath.Base(g.Path), g.Path)
	}
	_, err = w.AddRestoreMap(ctx, s.restoreMap())
	must(t, err, "add restore map")
	if !o.withoutConf {
		addFile(t, w, backupset.KindConfig, backupset.ConfigDir+"/"+backupset.ConfigFile, s.dir.ConfigPath())
	}
	for _, f := range s.ca.DynamicFiles() {
		addFile(t, w, backupset.KindDynamic, backupset.DynamicDir+"/"+f.Name, f.Path)
	}
	if o.withKey {
		p12, name, err := s.ca.BackupKey(ctx, testPassword)
		must(t, err, "backup key")
		_, err = w.AddFile(ctx, backupset.KindKey, name, bytes.NewReader(p12), int64(len(p12)))
		must(t, err, "add key")
	}
	last := gens[len(gens)-1]
	must(t, db.RecordBackup(ctx, store.BackupRecord{Type: store.BackupFull, FirstGen: gens[0].Gen, LastGen: sealed,
		FirstLSN: snap.LSN(), LastLSN: endLSN(last)}), "record backup")
	m, err := w.Commit(ctx, backupset.BackupInfo{Server: "test"})
	must(t, err, "commit set")
	return m
}

// incrementalBackup appends a logs-only backup to the set in setDir.
func (s *source) incrementalBackup(setDir string) *backupset.Manifest {
	s.t.Helper()
	t := s.t
	ctx := context.Background()
	db := s.ca.Store()
	set, err := backupset.Open(setDir)
	must(t, err, "open set")
	prev := set.Manifest().LastBackup()
	sealed, err := db.RollLog()
	must(t, err, "roll")
	var gens []wal.GenInfo
	var names []string
	for _, g := range db.Generations() {
		if g.Gen > prev.LastGen && g.Gen <= sealed {
			gens = append(gens, g)
			names = append(names, filepath.Base(g.Path))
		}
	}
	head := make([]byte, wal.HeaderSize)
	f, err := os.Open(gens[0].Path)
	must(t, err, "open log")
	_, err = io.ReadFull(f, head)
	f.Close()
	must(t, err, "read header")
	a, err := set.AppendIncremental(ctx, backupset.Incremental{CAName: s.ca.Name(), CACertSHA256: s.certSHA256(),
		RestoreMap: s.restoreMap(), Logs: names, FirstLogHeader: head})
	must(t, err, "append incremental")
	for _, g := range gens {
		f, err := os.Open(g.Path)
		must(t, err, "open log")
		_, err = a.AddLog(ctx, filepath.Base(g.Path), f, g.Size)
		f.Close()
		must(t, err, "add log")
	}
	last := gens[len(gens)-1]
	must(t, db.RecordBackup(ctx, store.BackupRecord{Type: store.BackupLogsOnly, FirstGen: gens[0].Gen, LastGen: sealed,
		FirstLSN: gens[0].BaseLSN, LastLSN: endLSN(last)}), "record backup")
	m, err := a.Commit(ctx, backupset.BackupInfo{Server: "test"})
	must(t, err, "commit incremental")
	return m
}

func addFile(t testing.TB, w *backupset.Writer, kind backupset.Kind, rel, src string) {
	t.Helper()
	f, err := os.Open(src)
	must(t, err, "open "+src)
	defer f.Close()
	fi, err := f.Stat()
	must(t, err, "stat "+src)
	_, err = w.AddFile(context.Background(), kind, rel, f, fi.Size())
	must(t, err, "add "+rel)
}

// newTarget returns a data directory that does not exist yet.
func newTarget(t testing.TB) datadir.Dir {
	t.Helper()
	d, err := datadir.New(filepath.Join(t.TempDir(), "target"))
	must(t, err, "target dir")
	return d
}

// openRestored opens the CA restored in dir.
func openRestored(t testing.TB, dir datadir.Dir) *service.CA {
	t.Helper()
	c, err := service.Open(context.Background(), dir, service.OpenOptions{Logger: testLogger(t)})
	must(t, err, "open restored CA")
	t.Cleanup(func() { c.Close() })
	return c
}

// stopAt returns an afterSave hook that stops recovery when it reaches
// state s, with errStopped.
func stopAt(s State) func(State) error {
	return func(got State) error {
		if got == s {
			return fmt.Errorf("stopped at %s: %w", s, errStopped)
		}
		return nil
	}
}

var errStopped = fmt.Errorf("recovery stopped by the test")

// dumpOf dumps the database file at path.
func dumpOf(t testing.TB, path string) *store.Dump {
	t.Helper()
	d, err := store.DumpFile(context.Background(), path)
	must(t, err, "dump "+path)
	return d
}

// copyTree copies a directory tree (regular files only).
func copyTree(t testing.TB, dst, src string) {
	t.Helper()
	must(t, fsutil.CopyTree(dst, src), "copy tree")
}

// leftover returns a file in dir other than the lock file, "" when there is
// none: stricter than occupied, which ignores CA key material.
func leftover(t testing.TB, dir datadir.Dir) string {
	t.Helper()
	p, err := firstFile(dir, nil)
	must(t, err, "walk "+dir.Root)
	return p
}

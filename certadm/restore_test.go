package certadm_test

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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/backuptest"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/restore"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/testserver"
	"github.com/certsrv/certsrv/internal/wal"
)

// restoreKeyPassword protects the key file in the tests' backup sets.
const restoreKeyPassword = "restore test password"

// startBackupServer starts a server with the Backup service and small log
// generations, so that backups span several of them.
func startBackupServer(t *testing.T) *testserver.Server {
	t.Helper()
	return testserver.Start(t,
		testserver.WithConfig(func(c *datadir.Config) { c.LogSegmentSize = 64 << 10 }),
		backuptest.Service(t))
}

// backupToSet takes a backup of typ through the certbcli.h functions and
// writes it into the set in dir, as `certadm backup DIR [--incremental]
// --with-key` does: the files in the session's order, the restore map, the
// configuration, the dynamic files fetched over HTTP and the key file.
func backupToSet(t *testing.T, c *certadm.Client, srv *testserver.Server, dir string, typ certadm.BackupType) {
	t.Helper()
	ctx := context.Background()
	b, err := c.BackupPrepare(ctx, typ)
	if err != nil {
		t.Fatalf("backup prepare: %v", err)
	}
	defer b.Abort(ctx)
	locs, err := b.DatabaseLocations(ctx)
	if err != nil {
		t.Fatalf("database locations: %v", err)
	}
	var rmap backupset.RestoreMap
	for _, f := range locs {
		rmap.Entries = append(rmap.Entries, backupset.RestoreEntry{Tag: byte(f.Type), Path: f.Name})
	}
	sum := sha256.Sum256(srv.CA.Certificate().Raw)
	read := func(name string) []byte {
		f, err := b.OpenFile(ctx, name, 0)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		defer f.Close()
		data, err := io.ReadAll(f)
		if err != nil || int64(len(data)) != f.Size() {
			t.Fatalf("read %s: %d of %d bytes, %v", name, len(data), f.Size(), err)
		}
		return data
	}
	if typ == certadm.BackupLogsOnly {
		set, err := backupset.Open(dir)
		if err != nil {
			t.Fatalf("open set: %v", err)
		}
		logs, err := b.BackupLogs(ctx)
		if err != nil {
			t.Fatalf("backup logs: %v", err)
		}
		var names []string
		var data [][]byte
		for _, f := range logs {
			names = append(names, f.Name)
			data = append(data, read(f.Name))
		}
		a, err := set.AppendIncremental(ctx, backupset.Incremental{CAName: srv.CA.Name(), CACertSHA256: sum, RestoreMap: rmap,
			Logs: names, FirstLogHeader: data[0]})
		if err != nil {
			t.Fatalf("append incremental: %v", err)
		}
		for i, n := range names {
			if _, err := a.AddLog(ctx, n, bytes.NewReader(data[i]), int64(len(data[i]))); err != nil {
				t.Fatalf("add log: %v", err)
			}
		}
		if err := b.End(ctx); err != nil {
			t.Fatalf("backup end: %v", err)
		}
		if _, err := a.Commit(ctx, backupset.BackupInfo{Server: c.Server()}); err != nil {
			t.Fatalf("commit incremental: %v", err)
		}
		return
	}
	w, err := backupset.Create(dir, backupset.Options{CAName: srv.CA.Name(), CACertSHA256: sum, LogBase: wal.DefaultBase})
	if err != nil {
		t.Fatalf("create set: %v", err)
	}
	add := func(kind backupset.Kind, rel string, data []byte) {
		if _, err := w.AddFile(ctx, kind, rel, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("add %s: %v", rel, err)
		}
	}
	dbs, err := b.DatabaseNames(ctx)
	if err != nil {
		t.Fatalf("database names: %v", err)
	}
	for _, f := range dbs {
		add(backupset.KindDatabase, backupset.DatabaseDir+"/"+filepath.Base(f.Name), read(f.Name))
	}
	logs, err := b.BackupLogs(ctx)
	if err != nil {
		t.Fatalf("backup logs: %v", err)
	}
	for _, f := range logs {
		add(backupset.KindLog, backupset.DatabaseDir+"/"+filepath.Base(f.Name), read(f.Name))
	}
	if _, err := w.AddRestoreMap(ctx, rmap); err != nil {
		t.Fatalf("add restore map: %v", err)
	}
	conf, err := os.ReadFile(srv.Dir.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	add(backupset.KindConfig, backupset.ConfigDir+"/"+backupset.ConfigFile, conf)
	dyn, err := b.DynamicFiles(ctx)
	if err != nil {
		t.Fatalf("dynamic files: %v", err)
	}
	for _, f := range dyn {
		resp, err := http.Get(f.URL)
		if err != nil {
			t.Fatalf("fetch %s: %v", f.URL, err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("fetch %s: %s, %v", f.URL, resp.Status, err)
		}
		add(backupset.KindDynamic, backupset.DynamicDir+"/"+f.Name, data)
	}
	p12, name, err := c.BackupKey(ctx, restoreKeyPassword)
	if err != nil {
		t.Fatalf("backup key: %v", err)
	}
	add(backupset.KindKey, name, p12)
	if err := b.End(ctx); err != nil {
		t.Fatalf("backup end: %v", err)
	}
	if _, err := w.Commit(ctx, backupset.BackupInfo{Server: c.Server()}); err != nil {
		t.Fatalf("commit set: %v", err)
	}
}

// issuer issues and revokes certificates through the admin API until
// stopped; Pause holds it between two operations.
type issuer struct {
	c       *certadm.Client
	key     *ecdsa.PrivateKey
	mu      sync.Mutex // held by the loop around each operation, and by Pause
	stop    chan struct{}
	done    chan struct{}
	err     error
	serials []string
}

func startIssuer(t *testing.T, c *certadm.Client) *issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l := &issuer{c: c, key: key, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *issuer) run() {
	defer close(l.done)
	ctx := context.Background()
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		l.mu.Lock()
		err := l.step(ctx, i)
		l.mu.Unlock()
		if err != nil {
			l.err = err
			return
		}
	}
}

func (l *issuer) step(ctx context.Context, i int) error {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: fmt.Sprintf("load%d.example", i)}, DNSNames: []string{fmt.Sprintf("load%d.example", i)}}, l.key)
	if err != nil {
		return err
	}
	r, err := l.c.Submit(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), "tls-server")
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	l.serials = append(l.serials, r.Certificate.Serial)
	if i%3 == 0 {
		if _, err := l.c.Revoke(ctx, r.Certificate.Serial, "keyCompromise"); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
	}
	if i%10 == 9 {
		if _, err := l.c.PublishCRL(ctx, false); err != nil {
			return fmt.Errorf("CRL: %w", err)
		}
	}
	return nil
}

// Stop ends the loop and returns its error.
func (l *issuer) Stop() error {
	close(l.stop)
	<-l.done
	return l.err
}

// TestRestoreRoundTripUnderLoad takes a full backup and two incrementals
// through the API while certificates are issued and revoked, restores them
// into a new directory (a new host), and checks that the restored database
// holds exactly what the CA held at the last backup's end, that the
// restored CA serves with its new admin credential, issues, and publishes a
// CRL numbered above every earlier one.
func TestRestoreRoundTripUnderLoad(t *testing.T) {
	ctx := context.Background()
	srv := startBackupServer(t)
	c, err := certadm.Dial(ctx, srv.Addr, certadm.WithCredentials(srv.CredsDir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	set := filepath.Join(t.TempDir(), "set")
	load := startIssuer(t, c)
	time.Sleep(100 * time.Millisecond)
	backupToSet(t, c, srv, set, certadm.BackupFull)
	time.Sleep(100 * time.Millisecond)
	backupToSet(t, c, srv, set, certadm.BackupLogsOnly)
	time.Sleep(100 * time.Millisecond)
	// Hold the load for the last backup, so the CA's state at its end is
	// known exactly.
	load.mu.Lock()
	want, err := srv.CA.Store().Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	backupToSet(t, c, srv, set, certadm.BackupLogsOnly)
	load.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	if err := load.Stop(); err != nil {
		t.Fatalf("load: %v", err)
	}
	s, err := backupset.Open(set)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Manifest()
	if len(m.Backups) != 3 || m.LastBackup().LastLSN != want.Meta.AppliedLSN {
		t.Fatalf("the set holds %d backups ending at LSN %d; the CA was at %d", len(m.Backups), m.LastBackup().LastLSN, want.Meta.AppliedLSN)
	}
	if m.Backups[1].LastLSN <= m.Backups[0].SnapshotLSN || len(load.serials) < 10 {
		t.Fatalf("no load between the backups: %+v, %d certificates", m.Backups, len(load.serials))
	}

	target, err := datadir.New(filepath.Join(t.TempDir(), "restored"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := restore.Restore(ctx, restore.Options{SetDir: set, Dir: target, Password: restoreKeyPassword, RecoverNow: true})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if rep.Recovery.LastLSN != want.Meta.AppliedLSN || !rep.NewHost {
		t.Fatalf("recovered to LSN %d (want %d), new host %v", rep.Recovery.LastLSN, want.Meta.AppliedLSN, rep.NewHost)
	}

	restored, err := service.Open(ctx, target, service.OpenOptions{})
	if err != nil {
		t.Fatalf("open restored CA: %v", err)
	}
	got, err := restored.Store().Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	compareRestored(t, got, want)

	addr, stopServer := serveRestored(t, restored)
	defer stopServer()
	rc, err := certadm.Dial(ctx, addr, certadm.WithCredentials(target.AdminDir()))
	if err != nil {
		t.Fatalf("dial the restored CA with its new admin credential: %v", err)
	}
	defer rc.Close()
	if _, err := certadm.Dial(ctx, addr, certadm.WithCredentials(srv.CredsDir), certadm.WithDialTimeout(2*time.Second)); err == nil {
		t.Fatal("the restored CA accepts the old host's admin credential")
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "after.example"}, DNSNames: []string{"after.example"}}, key)
	if _, err := rc.Submit(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), "tls-server"); err != nil {
		t.Fatalf("issue on the restored CA: %v", err)
	}
	crl, err := rc.PublishCRL(ctx, false)
	if err != nil {
		t.Fatalf("publish a CRL on the restored CA: %v", err)
	}
	var maxCRL uint64
	for _, x := range want.CRLs {
		maxCRL = max(maxCRL, x.Number)
	}
	if n, err := strconv.ParseUint(crl.Number, 10, 64); err != nil || n <= maxCRL {
		t.Fatalf("CRL number %v after restore; the backup held CRL %d", crl.Number, maxCRL)
	}
	if _, err := rc.BackupPrepare(ctx, certadm.BackupLogsOnly); !errors.Is(err, certadm.ErrIncrementalBackupDisabled) {
		t.Fatalf("a logs-only backup right after the restore: %v, want ErrIncrementalBackupDisabled", err)
	}
}

// compareRestored compares a restored CA's dump with the source's at the
// last backup: equal, but for the two records recovery adds (the
// need-full-backup flag and the new admin credential's fingerprint).
func compareRestored(t *testing.T, got, want *store.Dump) {
	t.Helper()
	if !reflect.DeepEqual(got.Requests, want.Requests) || !reflect.DeepEqual(got.RevocationEvents, want.RevocationEvents) ||
		!reflect.DeepEqual(got.CRLs, want.CRLs) || !reflect.DeepEqual(got.Backups, want.Backups) {
		t.Fatalf("restored content differs: %d/%d requests, %d/%d revocation events, %d/%d CRLs, %d/%d backups",
			len(got.Requests), len(want.Requests), len(got.RevocationEvents), len(want.RevocationEvents),
			len(got.CRLs), len(want.CRLs), len(got.Backups), len(want.Backups))
	}
	if got.Meta.Signatures != want.Meta.Signatures || got.Meta.AppliedLSN != want.Meta.AppliedLSN+2 || !got.Meta.NeedFullBackup {
		t.Fatalf("restored meta %+v, source %+v", got.Meta, want.Meta)
	}
	if len(got.Principals) != len(want.Principals) {
		t.Fatalf("%d principals restored, %d in the source", len(got.Principals), len(want.Principals))
	}
	for i, p := range got.Principals {
		w := want.Principals[i]
		if p.Name == service.AdminPrincipal {
			if len(p.Fingerprints) != len(w.Fingerprints)+1 {
				t.Fatalf("admin fingerprints %v, source %v: want one new", p.Fingerprints, w.Fingerprints)
			}
			for _, fp := range w.Fingerprints {
				if !slices.Contains(p.Fingerprints, fp) {
					t.Fatalf("admin fingerprint %s lost", fp)
				}
			}
			continue
		}
		if !reflect.DeepEqual(p, w) {
			t.Fatalf("principal %+v, source %+v", p, w)
		}
	}
}

// serveRestored starts the admin API of an opened CA on 127.0.0.1 and
// returns its address and a function that stops it (and closes the CA).
func serveRestored(t *testing.T, c *service.CA) (string, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := backuptest.New(c)
	if err != nil {
		t.Fatalf("backup service: %v", err)
	}
	s, err := server.New(c, server.Options{Listener: lis, HTTPListener: hlis, Version: "test",
		BackupService: svc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	return s.Addr(), func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("restored server: %v", err)
		}
	}
}

// TestRestoreFunctionsByHand restores a lost database the certbcli.h way
// through RestorePrepare, Register, RegisterThroughFile, RegisterComplete
// and End, with the backup's files copied by the caller; hard recovery
// with catch-up then brings back everything the CA acknowledged after the
// backup.
func TestRestoreFunctionsByHand(t *testing.T) {
	ctx := context.Background()
	srv := startBackupServer(t)
	c, err := certadm.Dial(ctx, srv.Addr, certadm.WithCredentials(srv.CredsDir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	set := filepath.Join(t.TempDir(), "set")
	load := startIssuer(t, c)
	time.Sleep(100 * time.Millisecond)
	backupToSet(t, c, srv, set, certadm.BackupFull)
	time.Sleep(200 * time.Millisecond)
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	dir := srv.Dir
	dbPath := srv.CA.Store().DBPath()
	srv.Stop()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(dbPath + suffix)
	}

	s, err := backupset.Open(set)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx); err != nil {
		t.Fatalf("verify set: %v", err)
	}
	m := s.Manifest()
	rmap, err := s.RestoreMap()
	if err != nil {
		t.Fatal(err)
	}
	r, err := certadm.RestorePrepare(dir.Root, certadm.RestoreFull)
	if err != nil {
		t.Fatalf("restore prepare: %v", err)
	}
	copyInto := func(dst, rel string) {
		src, err := s.Path(rel)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyInto(dbPath, s.Database().Path)
	backupLogs := filepath.Join(t.TempDir(), "backup-logs")
	for _, f := range s.Logs() {
		copyInto(filepath.Join(backupLogs, filepath.Base(f.Path)), f.Path)
	}
	err = r.Register(dir.SysDir(), dir.LogDir(), []certadm.RestoreMapEntry{{DatabaseName: rmap.Database(), NewDatabaseName: dbPath}},
		backupLogs, m.Backups[0].FirstGen, m.LastBackup().LastGen)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if err := r.RegisterThroughFile(filepath.Join(set, "..", "registration.json")); err != nil {
		t.Fatalf("register through file: %v", err)
	}
	if err := r.RegisterComplete(nil); err != nil {
		t.Fatalf("register complete: %v", err)
	}
	if err := r.End(); err != nil {
		t.Fatalf("end: %v", err)
	}
	if _, err := restore.Recover(ctx, dir, restore.RecoverOptions{}); err != nil {
		t.Fatalf("recover: %v", err)
	}
	restored, err := service.Open(ctx, dir, service.OpenOptions{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer restored.Close()
	for _, serial := range load.serials {
		if _, err := restored.CertificateBySerial(ctx, serial); err != nil {
			t.Fatalf("certificate %s acknowledged after the backup is missing: %v", serial, err)
		}
	}
}

// TestRestoreFunctionErrors checks the errors and HRESULTs of the restore
// functions.
func TestRestoreFunctionErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := certadm.RestorePrepare(dir, 2); !errors.Is(err, certadm.ErrInvalidArg) || certadm.HRESULT(err) != 0x80070057 {
		t.Fatalf("prepare with flags 2: %v (0x%08X)", err, certadm.HRESULT(err))
	}
	d, err := datadir.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := d.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	_, err = certadm.RestorePrepare(dir, certadm.RestoreFull)
	if !errors.Is(err, certadm.ErrCARunning) || !errors.Is(err, datadir.ErrLocked) || certadm.HRESULT(err) != 0x800700AA {
		t.Fatalf("prepare while the directory is locked: %v (0x%08X)", err, certadm.HRESULT(err))
	}
	lock.Release()

	r, err := certadm.RestorePrepare(dir, certadm.RestoreFull)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterComplete(nil); !errors.Is(err, certadm.ErrInvalidBackupSequence) || certadm.HRESULT(err) != 0xC8000209 {
		t.Fatalf("complete before register: %v (0x%08X)", err, certadm.HRESULT(err))
	}
	err = r.Register(filepath.Join(dir, "sys"), filepath.Join(dir, "log"), nil, filepath.Join(dir, "bl"), 1, 2)
	if !errors.Is(err, certadm.ErrInvalidArg) {
		t.Fatalf("register without a database: %v", err)
	}
	err = r.Register(filepath.Join(dir, "sys"), filepath.Join(dir, "log"),
		[]certadm.RestoreMapEntry{{DatabaseName: "/old/db/X.db", NewDatabaseName: filepath.Join(dir, "db", "X.db")}}, filepath.Join(dir, "bl"), 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	_, err = certadm.RestorePrepare(dir, certadm.RestoreFull)
	if !errors.Is(err, certadm.ErrRestoreInProgress) || !errors.Is(err, restore.ErrRegistrationPending) || certadm.HRESULT(err) != 0xC7FF0004 {
		t.Fatalf("prepare over an uncompleted registration: %v (0x%08X)", err, certadm.HRESULT(err))
	}
}

func ExampleRestorePrepare() {
	// A restore program registers the backup's database and its log
	// generations 3..9 for a stopped CA, copies them from the backup
	// medium, and completes the restore.
	dataDir, err := os.MkdirTemp("", "certsrv-restore-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dataDir)
	r, err := certadm.RestorePrepare(dataDir, certadm.RestoreFull)
	if err != nil {
		fmt.Printf("error 0x%08X: %v\n", certadm.HRESULT(err), err)
		return
	}
	newDB := filepath.Join(dataDir, "db", "Example CA.db")
	logDir := filepath.Join(dataDir, "restore", "logs")
	err = r.Register(filepath.Join(dataDir, "sys"), filepath.Join(dataDir, "log"),
		[]certadm.RestoreMapEntry{{
			DatabaseName:    "/var/lib/certsrv/db/Example CA.db", // from the set's certbkxp.dat
			NewDatabaseName: newDB,
		}},
		logDir, 3, 9)
	fmt.Println("register:", err)
	// Completing before the files are in place is refused.
	err = r.RegisterComplete(nil)
	fmt.Printf("complete too early: 0x%08X %v\n", certadm.HRESULT(err), errors.Is(err, certadm.ErrInvalidArg))
	// copyFromMedium stands for copying a file of the backup set.
	copyFromMedium := func(path string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
			err = os.WriteFile(path, []byte("..."), 0o600)
		}
	}
	copyFromMedium(newDB)
	for gen := 3; gen <= 9; gen++ {
		copyFromMedium(filepath.Join(logDir, fmt.Sprintf("ca%08X.log", gen)))
	}
	fmt.Println("complete:", r.RegisterComplete(nil))
	fmt.Println("end:", r.End())

	// Hard recovery runs when the CA next starts; until then a second
	// restore is refused.
	_, err = certadm.RestorePrepare(dataDir, certadm.RestoreFull)
	fmt.Printf("second restore: 0x%08X %v\n", certadm.HRESULT(err), errors.Is(err, certadm.ErrRestoreInProgress))
	// Output:
	// register: <nil>
	// complete too early: 0x80070057 true
	// complete: <nil>
	// end: <nil>
	// second restore: 0xC7FF0004 true
}

func ExampleRestoreContext_RegisterComplete() {
	dataDir, err := os.MkdirTemp("", "certsrv-restore-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dataDir)
	r, err := certadm.RestorePrepare(dataDir, certadm.RestoreFull)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.End()
	err = r.Register(filepath.Join(dataDir, "sys"), filepath.Join(dataDir, "log"),
		[]certadm.RestoreMapEntry{{DatabaseName: "/var/lib/certsrv/db/Example CA.db", NewDatabaseName: filepath.Join(dataDir, "db", "Example CA.db")}},
		filepath.Join(dataDir, "restore", "logs"), 1, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Copying failed: record it. The CA refuses to start until the restore
	// is run again to completion or cancelled.
	fmt.Println(r.RegisterComplete(errors.New("copy the database: no space left on device")))
	// Completing twice is out of sequence.
	err = r.RegisterComplete(nil)
	fmt.Printf("0x%08X %v\n", certadm.HRESULT(err), errors.Is(err, certadm.ErrInvalidBackupSequence))
	// Output:
	// <nil>
	// 0xC8000209 true
}

// TestRestoreErrorsNameTheirOperationOnce: a restore error reads
// "restore prepare: <why>", not "restore prepare: restore prepare: <why>".
func TestRestoreErrorsNameTheirOperationOnce(t *testing.T) {
	dataDir := t.TempDir()
	r, err := certadm.RestorePrepare(dataDir, certadm.RestoreFull)
	if err != nil {
		t.Fatal(err)
	}
	defer r.End()
	_, err = certadm.RestorePrepare(dataDir, certadm.RestoreFull)
	if err == nil || !strings.HasPrefix(err.Error(), "restore prepare: ") || strings.Count(err.Error(), "restore prepare") != 1 {
		t.Fatalf("second prepare: %v", err)
	}
	err = r.RegisterComplete(nil)
	if err == nil || strings.Count(err.Error(), "restore register complete") != 1 {
		t.Fatalf("complete before register: %v", err)
	}
}

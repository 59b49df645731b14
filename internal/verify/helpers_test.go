package verify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/backuptest"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/testserver"
)

// fixtureRoot holds the sets the tests build once and copy before
// damaging them; TestMain removes it.
var fixtureRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certsrv-verify-fixtures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startCA starts a real CA server with the Backup service and small log
// generations (64 KiB), so that a few hundred certificates span several.
func startCA(t testing.TB) (*testserver.Server, *certadm.Client) {
	t.Helper()
	srv := testserver.Start(t,
		testserver.WithConfig(func(c *datadir.Config) { c.LogSegmentSize = 64 << 10 }),
		backuptest.Service(t))
	c, err := certadm.Dial(context.Background(), srv.Addr, certadm.WithCredentials(srv.CredsDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// newCSR makes a CSR for name with a fresh key.
func newCSR(t testing.TB, name string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// issue issues n certificates and returns their serials.
func issue(t testing.TB, c *certadm.Client, n int, prefix string) []string {
	t.Helper()
	csr := newCSR(t, prefix+".example.com")
	var serials []string
	for range n {
		r, err := c.Submit(context.Background(), csr, "")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != certadm.StatusIssued || r.Certificate == nil {
			t.Fatalf("request %d: %s", r.ID, r.Status)
		}
		serials = append(serials, r.Certificate.Serial)
	}
	return serials
}

// busy issues certificates from a goroutine until the returned function
// is called, which returns how many it issued.
func busy(t testing.TB, c *certadm.Client) func() int64 {
	csr := newCSR(t, "busy.example.com")
	var (
		n       atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		failure error
		started = make(chan struct{})
		once    sync.Once
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer once.Do(func() { close(started) })
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Submit(context.Background(), csr, ""); err != nil {
				failure = err
				return
			}
			n.Add(1)
			once.Do(func() { close(started) })
		}
	}()
	<-started
	return func() int64 {
		close(stop)
		wg.Wait()
		if failure != nil {
			t.Errorf("issuing during the backup: %v", failure)
		}
		return n.Load()
	}
}

// restoreMapOf converts the server's restore map.
func restoreMapOf(files []certadm.File) backupset.RestoreMap {
	var m backupset.RestoreMap
	for _, f := range files {
		m.Entries = append(m.Entries, backupset.RestoreEntry{Tag: byte(f.Type), Path: f.Name})
	}
	return m
}

// copyListed opens each listed file of the session and hands its stream
// to add.
func copyListed(t testing.TB, b *certadm.BackupContext, files []certadm.File, add func(name string, r io.Reader, size int64) error) {
	t.Helper()
	ctx := context.Background()
	for _, f := range files {
		bf, err := b.OpenFile(ctx, f.Name, certadm.MaxChunkSize)
		if err != nil {
			t.Fatal(err)
		}
		if err := add(path.Base(filepath.ToSlash(f.Name)), bf, bf.Size()); err != nil {
			t.Fatal(err)
		}
		if err := bf.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// caIdentity returns the server's CA name and certificate digest.
func caIdentity(t testing.TB, c *certadm.Client) (string, [32]byte, string) {
	t.Helper()
	info, err := c.Ping(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := c.CACertificate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.CAName, sha256.Sum256(cert.Raw), info.Version
}

// takeFull takes a full backup of srv into the new set dir through the
// public certadm library and internal/backupset, as certadm backup does:
// restore map, snapshot, logs, truncation, dynamic files over HTTP, the
// configuration, End, then the manifest.
func takeFull(t testing.TB, srv *testserver.Server, c *certadm.Client, dir string) *backupset.Manifest {
	t.Helper()
	ctx := context.Background()
	name, sum, version := caIdentity(t, c)
	b, err := c.BackupPrepare(ctx, certadm.BackupFull)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort(ctx)
	w, err := backupset.Create(dir, backupset.Options{CAName: name, CACertSHA256: sum})
	if err != nil {
		t.Fatal(err)
	}
	locs, err := b.DatabaseLocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddRestoreMap(ctx, restoreMapOf(locs)); err != nil {
		t.Fatal(err)
	}
	for _, list := range []struct {
		kind backupset.Kind
		get  func(context.Context) ([]certadm.File, error)
	}{{backupset.KindDatabase, b.DatabaseNames}, {backupset.KindLog, b.BackupLogs}} {
		files, err := list.get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		copyListed(t, b, files, func(n string, r io.Reader, size int64) error {
			_, err := w.AddFile(ctx, list.kind, backupset.DatabaseDir+"/"+n, r, size)
			return err
		})
	}
	if _, err := b.TruncateLogs(ctx); err != nil {
		t.Fatal(err)
	}
	dyn, err := b.DynamicFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range dyn {
		data := httpGet(t, f.URL)
		if _, err := w.AddFile(ctx, backupset.KindDynamic, backupset.DynamicDir+"/"+f.Name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := os.ReadFile(srv.Dir.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddFile(ctx, backupset.KindConfig, backupset.ConfigDir+"/"+backupset.ConfigFile, bytes.NewReader(cfg), int64(len(cfg))); err != nil {
		t.Fatal(err)
	}
	if err := b.End(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := w.Commit(ctx, backupset.BackupInfo{Server: srv.Addr, CertsrvVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// takeIncremental appends a logs-only backup of srv to the set dir.
func takeIncremental(t testing.TB, srv *testserver.Server, c *certadm.Client, dir string) *backupset.Manifest {
	t.Helper()
	ctx := context.Background()
	name, sum, version := caIdentity(t, c)
	set, err := backupset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.BackupPrepare(ctx, certadm.BackupLogsOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort(ctx)
	locs, err := b.DatabaseLocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := b.BackupLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range logs {
		names = append(names, f.Name)
	}
	header := make([]byte, 0, 4096)
	first, err := b.OpenFile(ctx, logs[0].Name, certadm.MaxChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(first)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	header = append(header, all...)
	ap, err := set.AppendIncremental(ctx, backupset.Incremental{
		CAName: name, CACertSHA256: sum, RestoreMap: restoreMapOf(locs), Logs: names, FirstLogHeader: header,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ap.AddLog(ctx, logs[0].Name, bytes.NewReader(all), int64(len(all))); err != nil {
		t.Fatal(err)
	}
	copyListed(t, b, logs[1:], func(n string, r io.Reader, size int64) error {
		_, err := ap.AddLog(ctx, n, r, size)
		return err
	})
	if _, err := b.TruncateLogs(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.End(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := ap.Commit(ctx, backupset.BackupInfo{Server: srv.Addr, CertsrvVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// httpGet fetches a dynamic file from the test server's loopback
// publication endpoint.
func httpGet(t testing.TB, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture is the sets the tests share, built once.
type fixture struct {
	// base: a full backup taken while certificates were being issued,
	// after revocations and CRLs, then a logs-only backup taken the same
	// way; every revocation kind, full and delta CRLs, a revocation after
	// the last CRL.
	base string
	// foreign: a full backup of another CA of the same name.
	foreign string
	// later: a full backup of the base CA taken after base's incremental
	// (so that base's server truncated the generations between), with its
	// own logs-only backup appended: the logs-only backup does not
	// continue base's chain.
	later string
	// baseRequests is the number of requests the base CA had recorded by
	// the end of the base set's incremental.
	baseRequests int
	// baseCRLs and baseRevoked are the CRLs recorded and the certificates
	// revoked by then.
	baseCRLs, baseRevoked int
	err                   error
}

var (
	fixOnce sync.Once
	fix     fixture
)

// fixtures builds the shared sets on first use.
func fixtures(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		ft := &onceT{TB: t}
		buildFixtures(ft)
		if ft.failed != nil {
			fix.err = ft.failed
		}
	})
	if fix.err != nil {
		t.Fatalf("building the test sets: %v", fix.err)
	}
	return &fix
}

// onceT lets the fixture builder fail without ending the test that first
// asked for the fixtures with a half-built fixture for the others.
type onceT struct {
	testing.TB
	failed error
}

func (o *onceT) Fatal(args ...any) {
	o.failed = errors.New(fmt.Sprint(args...))
	o.TB.Fatal(args...)
}

func (o *onceT) Fatalf(format string, args ...any) {
	o.failed = fmt.Errorf(format, args...)
	o.TB.Fatalf(format, args...)
}

func buildFixtures(t testing.TB) {
	ctx := context.Background()
	srv, c := startCA(t)
	serials := issue(t, c, 120, "before")
	if _, err := c.Revoke(ctx, serials[0], "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, serials[1], "certificateHold"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, serials[2], ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishCRL(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unrevoke(ctx, serials[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishCRL(ctx, true); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(fixtureRoot, "base")
	stop := busy(t, c)
	takeFull(t, srv, c, base)
	stop()
	more := issue(t, c, 150, "after")
	if _, err := c.Revoke(ctx, more[0], "superseded"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishCRL(ctx, false); err != nil {
		t.Fatal(err)
	}
	// Revoked after the last CRL: the CRL must not be blamed for it.
	if _, err := c.Revoke(ctx, more[1], "cessationOfOperation"); err != nil {
		t.Fatal(err)
	}
	stop = busy(t, c)
	takeIncremental(t, srv, c, base)
	stop()
	set, err := backupset.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	d, err := srv.CA.Store().Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := set.Manifest().LastBackup().LastLSN
	for _, r := range d.Requests {
		if r.SubmittedLSN <= last {
			fix.baseRequests++
		}
	}
	for _, c := range d.CRLs {
		if c.LSN <= last {
			fix.baseCRLs++
		}
	}
	for _, st := range statesBefore(d.RevocationEvents, last+1) {
		if st.revoked {
			fix.baseRevoked++
		}
	}

	later := filepath.Join(fixtureRoot, "later")
	issue(t, c, 60, "between")
	takeFull(t, srv, c, later)
	issue(t, c, 60, "last")
	takeIncremental(t, srv, c, later)

	fsrv, fc := startCA(t)
	issue(t, fc, 60, "foreign")
	takeFull(t, fsrv, fc, filepath.Join(fixtureRoot, "foreign"))

	fix.base, fix.later, fix.foreign = base, later, filepath.Join(fixtureRoot, "foreign")
}

// copySet copies the set src into a new directory and returns it.
func copySet(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "set")
	if err := fsutil.CopyTree(dst, src); err != nil {
		t.Fatal(err)
	}
	return dst
}

// rewriteManifest edits the set's manifest and writes it back with a
// correct checksum (RFC 8785 form of the JSON with "checksum" empty), as
// a writer that lies would; it checks that backupset accepts the result.
func rewriteManifest(t testing.TB, dir string, edit func(m *backupset.Manifest)) {
	t.Helper()
	p := filepath.Join(dir, backupset.ManifestFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m backupset.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	m.Checksum = ""
	sum := sha256.Sum256(canonical(t, m))
	m.Checksum = hex.EncodeToString(sum[:])
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := backupset.Open(dir); err != nil {
		t.Fatalf("the rewritten manifest does not open: %v", err)
	}
}

// canonical serializes v as RFC 8785 JSON, for the ASCII content of a
// manifest: object members sorted, no insignificant white space, no HTML
// escaping, numbers as encoding/json writes integers.
func canonical(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var g any
	if err := dec.Decode(&g); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(g); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// problemFor returns the first problem of rep that matches target and
// concerns rel ("" matches any path), or nil.
func problemFor(rep *Report, target error, rel string) *Problem {
	for _, p := range rep.Problems {
		var pr *Problem
		if errors.As(p, &pr) && errors.Is(p, target) && (rel == "" || pr.Path == rel) {
			return pr
		}
	}
	return nil
}

// mustFail runs Verify on dir and checks that it fails with a problem
// matching target that names rel.
func mustFail(t *testing.T, dir string, target error, rel string) *Report {
	t.Helper()
	rep, err := Verify(context.Background(), dir, Options{TempDir: t.TempDir()})
	var fe *FailedError
	if !errors.As(err, &fe) || rep.OK() {
		t.Fatalf("Verify: %v; want a failure matching %v", err, target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("Verify: %v; want a problem matching %v", err, target)
	}
	if problemFor(rep, target, rel) == nil {
		t.Fatalf("no problem matching %v names %q; problems:\n%s", target, rel, problemList(rep))
	}
	return rep
}

// problemList formats a report's problems for a failure message.
func problemList(rep *Report) string {
	var b bytes.Buffer
	for _, p := range rep.Problems {
		var pr *Problem
		if errors.As(p, &pr) {
			fmt.Fprintf(&b, "  [%s] %q: %v\n", pr.Check, pr.Path, p)
		} else {
			fmt.Fprintf(&b, "  %v\n", p)
		}
	}
	return b.String()
}

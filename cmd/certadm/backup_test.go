package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/backupset"
)

// bgIssuer submits certificate requests in a loop until stopped.
type bgIssuer struct {
	c      *certadm.Client
	issued atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup
	err    error
}

func backupTestCSR(t testing.TB, name string) []byte {
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

// issueCerts issues n certificates and fails the test on any error.
func issueCerts(t *testing.T, c *certadm.Client, n int, prefix string) {
	t.Helper()
	for i := 0; i < n; i++ {
		r, err := c.Submit(context.Background(), backupTestCSR(t, fmt.Sprintf("%s%d.example.com", prefix, i)), "")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != certadm.StatusIssued {
			t.Fatalf("request %d: %s", r.ID, r.Status)
		}
	}
}

// startIssuing issues certificates from a goroutine until the returned
// function is called; it returns how many were issued.
func startIssuing(t *testing.T, c *certadm.Client) (stop func() int64) {
	is := &bgIssuer{c: c, stop: make(chan struct{})}
	csrs := make([][]byte, 32)
	for i := range csrs {
		csrs[i] = backupTestCSR(t, fmt.Sprintf("busy%d.example.com", i))
	}
	started := make(chan struct{})
	var once sync.Once
	is.wg.Add(1)
	go func() {
		defer is.wg.Done()
		defer once.Do(func() { close(started) })
		for i := 0; ; i++ {
			select {
			case <-is.stop:
				return
			default:
			}
			r, err := c.Submit(context.Background(), csrs[i%len(csrs)], "")
			if err != nil {
				is.err = err
				return
			}
			if r.Status == certadm.StatusIssued {
				is.issued.Add(1)
				once.Do(func() { close(started) })
			}
		}
	}()
	// Return once issuing is under way, so that it overlaps what follows.
	<-started
	return func() int64 {
		close(is.stop)
		is.wg.Wait()
		if is.err != nil {
			t.Errorf("issuing during the backup: %v", is.err)
		}
		return is.issued.Load()
	}
}

// setDirState records every file under dir with its digest.
func setDirState(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSetDirState(t *testing.T, what string, a, b map[string][32]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("%s: %d files before, %d after", what, len(a), len(b))
	}
	for p, d := range a {
		if b[p] != d {
			t.Errorf("%s: %s changed", what, p)
		}
	}
}

func TestBackupFullThenIncremental(t *testing.T) {
	isolate(t)
	srv := startServer(t)
	c := client(t, srv.Addr, srv.CredsDir)
	conn := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	issueCerts(t, c, 20, "before")
	issuedLSN := srv.CA.Store().LastLSN()
	dir := filepath.Join(t.TempDir(), "set")

	// A full backup while certificates keep being issued.
	stop := startIssuing(t, c)
	code, out, errOut := cli(t, append(conn, "backup", dir)...)
	during := stop()
	if code != 0 {
		t.Fatalf("full backup: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("full: %s", out)
	t.Logf("%d certificates issued while the full backup ran", during)
	if !strings.HasPrefix(out, "backup complete: full backup of ") || strings.Count(out, "\n") != 1 {
		t.Errorf("output (no progress bar off a terminal, one summary line): %q", out)
	}
	if !strings.Contains(out, "logs truncated: ") || !strings.Contains(out, " MB/s)") {
		t.Errorf("summary lacks truncation or rate: %q", out)
	}
	set, err := backupset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Verify(context.Background()); err != nil {
		t.Fatalf("the full set does not verify: %v", err)
	}
	m := set.Manifest()
	kinds := map[backupset.Kind]int{}
	for _, f := range m.Files {
		kinds[f.Kind]++
	}
	if kinds[backupset.KindConfig] != 1 || kinds[backupset.KindDynamic] == 0 || kinds[backupset.KindKey] != 0 {
		t.Errorf("files by kind: %v", kinds)
	}
	// The dynamic files are the server's publish/ files.
	for _, f := range m.Files {
		if f.Kind != backupset.KindDynamic {
			continue
		}
		want, err := os.ReadFile(filepath.Join(srv.Dir.PublishDir(), filepath.Base(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(want); fmt.Sprintf("%x", got) != f.SHA256 {
			t.Errorf("%s differs from the server's publish/ file", f.Path)
		}
	}
	// The snapshot (whose meta row Verify checked against the manifest)
	// reflects every certificate issued before the backup started.
	if full := m.Backups[0]; full.SnapshotLSN < issuedLSN || full.LastLSN < full.SnapshotLSN {
		t.Errorf("snapshot at LSN %d, logs through %d; the 20 certificates before the backup end at LSN %d",
			full.SnapshotLSN, full.LastLSN, issuedLSN)
	}
	rm, err := set.RestoreMap()
	if err != nil || rm.Database() == "" || !filepath.IsAbs(rm.LogDir()) {
		t.Errorf("restore map %+v, %v", rm, err)
	}

	// More issuance, then an incremental backup, again while issuing.
	issueCerts(t, c, 15, "after")
	issuedLSN = srv.CA.Store().LastLSN()
	stop = startIssuing(t, c)
	code, out, errOut = cli(t, append(conn, "backup", "--incremental", dir)...)
	stop()
	if code != 0 {
		t.Fatalf("incremental backup: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("incremental: %s", out)
	if !strings.HasPrefix(out, "backup complete: logs-only backup of ") {
		t.Errorf("output %q", out)
	}
	set, err = backupset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := set.Verify(context.Background())
	if err != nil {
		t.Fatalf("the set does not verify after the incremental: %v", err)
	}
	m2 := set.Manifest()
	full, inc := m2.Backups[0], m2.LastBackup()
	if rep.Backups != 2 || inc.FirstGen != full.LastGen+1 || inc.FirstLSN != full.LastLSN+1 {
		t.Fatalf("chain %+v", m2.Backups)
	}
	// Every certificate issued between the backups is a log record the
	// incremental holds.
	if inc.LastLSN-full.LastLSN < 15 || inc.LastLSN < issuedLSN {
		t.Errorf("the incremental holds LSNs %d..%d; the 15 issuances since the full backup end at LSN %d", inc.FirstLSN, inc.LastLSN, issuedLSN)
	}

	// A second full backup into the set is refused without --force and
	// changes nothing.
	before := setDirState(t, dir)
	code, _, errOut = cli(t, append(conn, "backup", dir)...)
	if code != exitError || !strings.Contains(errOut, "not empty") {
		t.Errorf("full backup into a set: exit %d %s", code, errOut)
	}
	sameSetDirState(t, "refused full backup", before, setDirState(t, dir))
	// So is a DIR that is a file, as an invalid argument.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = cli(t, append(conn, "backup", file)...)
	if code != exitError || !strings.Contains(errOut, "it is a file, not a directory") || !strings.Contains(errOut, "HRESULT 0x80070057") {
		t.Errorf("backup into a file: exit %d %s", code, errOut)
	}
	// An incremental backup into a directory that holds no set (here: none
	// at all) is refused before anything is copied, saying so.
	missing := filepath.Join(t.TempDir(), "absent")
	code, _, errOut = cli(t, append(conn, "backup", "--incremental", missing)...)
	if code != exitError || !strings.Contains(errOut, missing+" does not exist") || !strings.Contains(errOut, "take a full backup first") ||
		!strings.Contains(errOut, "HRESULT 0x80070057") {
		t.Errorf("incremental backup into a missing directory: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("the refused incremental backup made the directory")
	}
	// Refused before a session was prepared: a logs-only session can start.
	if b, err := c.BackupPrepare(context.Background(), certadm.BackupLogsOnly); err != nil {
		t.Errorf("a session was left behind: %v", err)
	} else {
		b.Abort(context.Background())
	}

	// With --force it replaces the set with a new full backup.
	code, out, errOut = cli(t, append(conn, "backup", "--force", dir)...)
	if code != 0 {
		t.Fatalf("forced full backup: exit %d\n%s%s", code, out, errOut)
	}
	set, err = backupset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := set.Verify(context.Background()); err != nil || rep.Backups != 1 {
		t.Fatalf("forced set: %+v %v", rep, err)
	}
}

func TestBackupIncrementalRefusesAnotherCA(t *testing.T) {
	isolate(t)
	a := startServer(t)
	b := startServer(t)
	dir := filepath.Join(t.TempDir(), "set")
	if code, out, errOut := cli(t, "--server", a.Addr, "--creds", a.CredsDir, "backup", dir); code != 0 {
		t.Fatalf("full backup of A: exit %d\n%s%s", code, out, errOut)
	}
	// B needs a full backup of its own before it allows a logs-only one.
	other := filepath.Join(t.TempDir(), "other")
	if code, out, errOut := cli(t, "--server", b.Addr, "--creds", b.CredsDir, "backup", other); code != 0 {
		t.Fatalf("full backup of B: exit %d\n%s%s", code, out, errOut)
	}
	issueCerts(t, client(t, b.Addr, b.CredsDir), 5, "b")
	before := setDirState(t, dir)
	code, _, errOut := cli(t, "--server", b.Addr, "--creds", b.CredsDir, "backup", "--incremental", dir)
	if code != exitError || !strings.Contains(errOut, backupset.ErrForeignSet.Error()) {
		t.Errorf("incremental of B into A's set: exit %d %s", code, errOut)
	}
	sameSetDirState(t, "refused incremental", before, setDirState(t, dir))
	// Nor does --force replace A's set with a full backup of B.
	code, _, errOut = cli(t, "--server", b.Addr, "--creds", b.CredsDir, "backup", "--force", dir)
	if code != exitError || !strings.Contains(errOut, backupset.ErrForeignSet.Error()) || !strings.Contains(errOut, "--force replaces a set of this CA only") {
		t.Errorf("forced full backup of B into A's set: exit %d %s", code, errOut)
	}
	sameSetDirState(t, "refused forced backup", before, setDirState(t, dir))
	// B's session was aborted, and B still has the logs: its own set takes
	// the incremental.
	if code, out, errOut := cli(t, "--server", b.Addr, "--creds", b.CredsDir, "backup", "--incremental", other); code != 0 {
		t.Fatalf("incremental of B into its set: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := backupset.Open(other); err != nil {
		t.Fatal(err)
	}
}

func TestBackupIncrementalRefusesGap(t *testing.T) {
	isolate(t)
	srv := startServer(t)
	conn := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	c := client(t, srv.Addr, srv.CredsDir)
	dir := filepath.Join(t.TempDir(), "set")
	if code, out, errOut := cli(t, append(conn, "backup", dir)...); code != 0 {
		t.Fatalf("full: exit %d\n%s%s", code, out, errOut)
	}
	// An incremental into another set moves the server's chain on.
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	if code, out, errOut := cli(t, append(conn, "backup", elsewhere)...); code != 0 {
		t.Fatalf("second full: exit %d\n%s%s", code, out, errOut)
	}
	issueCerts(t, c, 5, "gap")
	before := setDirState(t, dir)
	code, _, errOut := cli(t, append(conn, "backup", "--incremental", dir)...)
	if code != exitError || !strings.Contains(errOut, backupset.ErrChainGap.Error()) {
		t.Errorf("incremental across a gap: exit %d %s", code, errOut)
	}
	sameSetDirState(t, "refused incremental", before, setDirState(t, dir))
}

func TestBackupFailureLeavesNoManifest(t *testing.T) {
	isolate(t)
	srv := startServer(t)
	conn := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	c := client(t, srv.Addr, srv.CredsDir)
	injected := errors.New("injected failure")
	for _, at := range []string{"logs", "dynamic", "end"} {
		t.Run(at, func(t *testing.T) {
			backupFault = func(step string) error {
				if step == at {
					return injected
				}
				return nil
			}
			defer func() { backupFault = nil }()
			dir := filepath.Join(t.TempDir(), "set")
			code, _, errOut := cli(t, append(conn, "backup", "--keep-logs", dir)...)
			if code != exitError || !strings.Contains(errOut, injected.Error()) {
				t.Fatalf("exit %d %s", code, errOut)
			}
			if _, err := os.Stat(filepath.Join(dir, backupset.ManifestFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("manifest after a failed backup: %v", err)
			}
			if _, err := backupset.Open(dir); !errors.Is(err, backupset.ErrNoManifest) {
				t.Errorf("open: %v", err)
			}
			// The session was aborted (another can start) and nothing was
			// recorded (a logs-only backup still has no full one).
			if _, err := c.BackupPrepare(context.Background(), certadm.BackupLogsOnly); !errors.Is(err, certadm.ErrFullBackupNotTaken) {
				t.Errorf("after the failed backup: %v", err)
			}
		})
	}
	// Backing up into a failed backup's directory again says what is
	// there; --force replaces it.
	dir := filepath.Join(t.TempDir(), "set")
	backupFault = func(step string) error {
		if step == "dynamic" {
			return injected
		}
		return nil
	}
	code, _, errOut := cli(t, append(conn, "backup", "--keep-logs", dir)...)
	backupFault = nil
	if code != exitError {
		t.Fatalf("exit %d %s", code, errOut)
	}
	code, _, errOut = cli(t, append(conn, "backup", "--keep-logs", dir)...)
	if code != exitError || !strings.Contains(errOut, "holds no complete backup set") || !strings.Contains(errOut, "--force") {
		t.Errorf("backup into the failed backup's directory: exit %d %s", code, errOut)
	}
	if code, _, errOut = cli(t, append(conn, "backup", "--keep-logs", "--force", dir)...); code != exitOK {
		t.Errorf("backup --force over the failed backup: exit %d %s", code, errOut)
	}
	if _, err := backupset.Open(dir); err != nil {
		t.Errorf("the set written with --force: %v", err)
	}
}

// TestBackupFailureBeforeTruncationDeletesNothing: a backup that truncates
// (the default) fails at a step before its manifest is written (a dynamic
// file, a key export the server refuses): the server deletes no log and
// records nothing. A failure after the manifest (at truncation) leaves a
// complete set, says so, and deletes nothing; one at the session's end,
// after truncation recorded the backup, is only a warning.
func TestBackupFailureBeforeTruncationDeletesNothing(t *testing.T) {
	isolate(t)
	srv := startServer(t)
	conn := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	c := client(t, srv.Addr, srv.CredsDir)
	logs := func() int {
		m, err := filepath.Glob(filepath.Join(srv.Dir.LogDir(), "*.log"))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	nothingRecorded := func(t *testing.T) {
		t.Helper()
		if _, err := c.BackupPrepare(context.Background(), certadm.BackupLogsOnly); !errors.Is(err, certadm.ErrFullBackupNotTaken) {
			t.Errorf("after the failed backup: %v", err)
		}
	}
	injected := errors.New("injected failure")
	for _, at := range []string{"dynamic", "truncate"} {
		t.Run(at, func(t *testing.T) {
			issueCerts(t, c, 3, "fail-"+at)
			backupFault = func(step string) error {
				if step == at {
					return injected
				}
				return nil
			}
			defer func() { backupFault = nil }()
			before := logs()
			dir := filepath.Join(t.TempDir(), "set")
			code, _, errOut := cli(t, append(conn, "backup", dir)...)
			if code != exitError || !strings.Contains(errOut, injected.Error()) {
				t.Fatalf("exit %d %s", code, errOut)
			}
			// The backup listed logs, which rolls a new generation.
			if after := logs(); after < before {
				t.Errorf("%d log generations before the failed backup, %d after", before, after)
			}
			nothingRecorded(t)
			_, err := backupset.Open(dir)
			switch at {
			case "dynamic":
				if !errors.Is(err, backupset.ErrNoManifest) {
					t.Errorf("open the set of a backup that failed before its manifest: %v", err)
				}
			case "truncate":
				if err != nil || !strings.Contains(errOut, "complete and restorable") || !strings.Contains(errOut, "the next backup must be a full one") {
					t.Errorf("a failure after the manifest: open %v, message %s", err, errOut)
				}
			}
		})
	}
	t.Run("key refused", func(t *testing.T) {
		short := filepath.Join(t.TempDir(), "short")
		if err := os.WriteFile(short, []byte("short\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		issueCerts(t, c, 3, "key-refused")
		before := logs()
		dir := filepath.Join(t.TempDir(), "set")
		code, _, errOut := cli(t, append(conn, "backup", "--with-key", "--password-file", short, dir)...)
		if code != exitError || !strings.Contains(errOut, "8 characters") {
			t.Fatalf("a key backup the server refuses: exit %d %s", code, errOut)
		}
		if after := logs(); after < before {
			t.Errorf("%d log generations before the refused key backup, %d after", before, after)
		}
		nothingRecorded(t)
	})
	t.Run("end", func(t *testing.T) {
		backupFault = func(step string) error {
			if step == "end" {
				return injected
			}
			return nil
		}
		defer func() { backupFault = nil }()
		dir := filepath.Join(t.TempDir(), "set")
		code, out, errOut := cli(t, append(conn, "backup", dir)...)
		if code != 0 || !strings.Contains(errOut, "warning: ending the backup session") || !strings.Contains(out, "backup complete") {
			t.Fatalf("a failure at the end after truncation: exit %d\n%s%s", code, out, errOut)
		}
		if _, err := backupset.Open(dir); err != nil {
			t.Fatal(err)
		}
		// Truncation recorded it: a logs-only backup may follow.
		b, err := c.BackupPrepare(context.Background(), certadm.BackupLogsOnly)
		if err != nil {
			t.Fatalf("logs-only after the recorded backup: %v", err)
		}
		b.Abort(context.Background())
	})
}

func TestBackupWithKeyAndFlags(t *testing.T) {
	isolate(t)
	srv := startServer(t)
	conn := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("correct horse\n"), 0o600)
	for _, args := range [][]string{
		{"backup"},
		{"backup", "a", "b"},
		{"backup", "--with-key", "x"},
		{"backup", "--password-file", pw, "x"},
		{"backup", "--incremental", "--force", "x"},
		{"backup", "--incremental", "--with-key", "--password-file", pw, "x"},
	} {
		if code, _, errOut := cli(t, append(conn, args...)...); code != exitUsage {
			t.Errorf("%v: exit %d %s", args, code, errOut)
		}
	}
	dir := filepath.Join(t.TempDir(), "set")
	code, out, errOut := cli(t, append(conn, "backup", "--with-key", "--password-file", pw, "--keep-logs", dir)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "logs truncated: none (--keep-logs)") {
		t.Errorf("summary %q", out)
	}
	set, err := backupset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	var key string
	for _, f := range set.Files() {
		if f.Kind == backupset.KindKey {
			key = f.Path
		}
	}
	p12, err := os.ReadFile(filepath.Join(dir, key))
	if key == "" || err != nil {
		t.Fatalf("no key file: %q %v", key, err)
	}
	priv, cert, _, err := pkcs12.DecodeChain(p12, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	caCert, _, err := client(t, srv.Addr, srv.CredsDir).CACertificate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(caCert) || priv == nil {
		t.Error("the key file does not hold the CA certificate and key")
	}
	if fmt.Sprintf("%x", sha256.Sum256(caCert.Raw)) != set.Manifest().CA.CertSHA256 {
		t.Error("manifest CA certificate digest differs")
	}
}

func TestProgressReaderCountsWhatPasses(t *testing.T) {
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	for _, viaWriteTo := range []bool{true, false} {
		p := newProgressLine(io.Discard, 80, time.Now)
		p.expect(int64(len(data)))
		var src io.Reader = bytes.NewReader(data)
		if !viaWriteTo {
			src = io.LimitReader(src, int64(len(data))) // no WriteTo
		}
		var out bytes.Buffer
		if _, err := io.Copy(&out, progress(src, p)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Errorf("WriteTo %v: bytes changed on the way", viaWriteTo)
		}
		if p.done != int64(len(data)) {
			t.Errorf("WriteTo %v: progress at %d of %d", viaWriteTo, p.done, len(data))
		}
	}
	// Off a terminal there is no progress line, and the source is passed
	// as it is.
	p := newBackupProgress(&bytes.Buffer{})
	if p != nil || progress(os.Stdin, p) != io.Reader(os.Stdin) {
		t.Error("a progress line off a terminal")
	}
	p.expect(1)
	p.file("x")
	p.add(1)
	p.clearLine()
	p.close()
}

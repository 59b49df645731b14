package certadm_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/certadm/internal/wiretest"
	"github.com/certsrv/certsrv/internal/testserver"
)

// issue submits n fresh requests, so the log has records to back up.
func issue(t *testing.T, c *certadm.Client, prefix string, n int) []*certadm.Request {
	t.Helper()
	var out []*certadm.Request
	for i := range n {
		r, err := c.Submit(context.Background(), wiretest.NewCSR(t, prefix+string(rune('a'+i))+".test"), "")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != certadm.StatusIssued {
			t.Fatalf("request %d: %v", r.ID, r.Status)
		}
		out = append(out, r)
	}
	return out
}

// serverWithRecords starts a server, dials it with its admin credential
// (closed when the test ends) and issues n certificates, so the log has
// records to back up.
func serverWithRecords(t *testing.T, prefix string, n int) (*testserver.Server, certadm.Option, *certadm.Client) {
	t.Helper()
	srv := startServer(t)
	opt := certadm.WithCredentials(srv.CredsDir)
	c, err := certadm.Dial(context.Background(), srv.Addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	issue(t, c, prefix, n)
	return srv, opt, c
}

// copyFiles reads every file of the session into dir and checks that each
// arrived whole. It returns the local paths.
func copyFiles(t *testing.T, b *certadm.BackupContext, files []certadm.File, dir string, readHint int) []string {
	t.Helper()
	var paths []string
	for _, f := range files {
		src, err := b.OpenFile(context.Background(), f.Name, readHint)
		if err != nil {
			t.Fatalf("open %s: %v", f.Name, err)
		}
		path := filepath.Join(dir, filepath.Base(f.Name))
		dst, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(dst, src)
		if err != nil {
			t.Fatalf("copy %s: %v", f.Name, err)
		}
		if n != src.Size() {
			t.Fatalf("%s: copied %d of %d bytes", f.Name, n, src.Size())
		}
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
		if err := src.Close(); err != nil {
			t.Fatalf("close %s: %v", f.Name, err)
		}
		paths = append(paths, path)
	}
	return paths
}

func TestRealFullThenIncrementalBackup(t *testing.T) {
	srv, opt, c := serverWithRecords(t, "full-", 5)
	ctx := context.Background()

	online, err := certadm.IsServerOnline(ctx, srv.Addr, opt)
	if err != nil || !online {
		t.Fatalf("online: %v %v", online, err)
	}
	b, err := certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupFull, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort(ctx)

	locs, err := b.DatabaseLocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []certadm.FileType{certadm.FileDatabase, certadm.FileLogDirectory, certadm.FileCheckpointDirectory}
	if len(locs) != len(wantTypes) {
		t.Fatalf("restore map %v", locs)
	}
	for i, f := range locs {
		if f.Type != wantTypes[i] || !strings.HasPrefix(f.Name, srv.DataDir) {
			t.Errorf("restore map entry %d: %q", i, f.String())
		}
	}

	dbs, err := b.DatabaseNames(ctx)
	if err != nil || len(dbs) != 1 || dbs[0].Type != certadm.FileDatabase {
		t.Fatalf("database names %v %v", dbs, err)
	}
	logs, err := b.BackupLogs(ctx)
	if err != nil || len(logs) == 0 {
		t.Fatalf("logs %v %v", logs, err)
	}
	for _, f := range logs {
		if f.Type != certadm.FileLog || !strings.HasSuffix(f.Name, ".log") {
			t.Errorf("log entry %q", f.String())
		}
	}
	if _, err := b.TruncateLogs(ctx); !errors.Is(err, certadm.ErrInvalidBackupSequence) || certadm.HRESULT(err) != 0xC8000209 {
		t.Fatalf("truncate before copying: %v", err)
	}

	dir := t.TempDir()
	dbCopy := copyFiles(t, b, dbs, dir, certadm.MinChunkSize)[0]
	head := make([]byte, 16)
	fh, err := os.Open(dbCopy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(fh, head); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	if string(head) != "SQLite format 3\x00" {
		t.Fatalf("database copy starts with %q", head)
	}
	logCopies := copyFiles(t, b, logs, dir, 0)
	// A listed log is a closed generation: the copy equals the file on
	// the server byte for byte.
	for i, p := range logCopies {
		got, _ := os.ReadFile(p)
		want, err := os.ReadFile(logs[i].Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the server's file", logs[i].Name)
		}
	}

	res, err := b.TruncateLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted < 0 || (res.Deleted > 0) != (res.FirstGeneration > 0) || res.FirstGeneration > res.LastGeneration {
		t.Fatalf("truncate result %+v", res)
	}
	if res.Deleted == 0 && res.Reason == "" {
		t.Fatal("nothing deleted and no reason given")
	}

	dyn, err := b.DynamicFiles(ctx)
	if err != nil || len(dyn) == 0 {
		t.Fatalf("dynamic files %v %v", dyn, err)
	}
	for _, f := range dyn {
		body := fetch(t, f.URL)
		if strings.HasSuffix(f.Name, ".crt") {
			if _, err := x509.ParseCertificate(body); err != nil {
				t.Errorf("%s: %v", f.URL, err)
			}
		}
	}

	if err := b.End(ctx); err != nil {
		t.Fatal(err)
	}
	full := b.EndInfo()
	if !b.Recorded() || !full.Recorded || full.FirstGeneration > full.LastGeneration || full.FirstLSN > full.LastLSN {
		t.Fatalf("end %+v", full)
	}

	// An incremental backup continues after the full one.
	issue(t, c, "incr-", 3)
	inc, err := certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupLogsOnly, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer inc.Abort(ctx)
	if dbs, err := inc.DatabaseNames(ctx); err != nil || len(dbs) != 0 {
		t.Fatalf("logs-only database names %v %v", dbs, err)
	}
	incLogs, err := inc.BackupLogs(ctx)
	if err != nil || len(incLogs) == 0 {
		t.Fatalf("incremental logs %v %v", incLogs, err)
	}
	copyFiles(t, inc, incLogs, t.TempDir(), certadm.MaxChunkSize)
	if err := inc.End(ctx); err != nil {
		t.Fatal(err)
	}
	if got := inc.EndInfo(); !got.Recorded || got.FirstGeneration != full.LastGeneration+1 {
		t.Fatalf("incremental %+v after full %+v", got, full)
	}
}

func fetch(t *testing.T, url string) []byte {
	t.Helper()
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("URL %q is not on the loopback endpoint", url)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("GET %s: %d, %d bytes, %v", url, resp.StatusCode, len(body), err)
	}
	return body
}

func TestRealEndWithoutCopyingRecordsNothing(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	b, err := certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupFull, certadm.WithCredentials(srv.CredsDir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.DatabaseNames(ctx); err != nil {
		t.Fatal(err)
	}
	err = b.End(ctx)
	if !errors.Is(err, certadm.ErrInvalidBackupSequence) || b.Recorded() {
		t.Fatalf("end without copying: %v, recorded %v", err, b.Recorded())
	}
	// Nothing recorded: a logs-only backup still needs a full one.
	_, err = certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupLogsOnly, certadm.WithCredentials(srv.CredsDir))
	if !errors.Is(err, certadm.ErrFullBackupNotTaken) || certadm.HRESULT(err) != 0xC7FF000E {
		t.Fatalf("logs-only without a full backup: %v", err)
	}
}

func TestRealOneSessionAtATime(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	opt := certadm.WithCredentials(srv.CredsDir)
	first, err := certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupFull, opt)
	if err != nil {
		t.Fatal(err)
	}
	_, err = certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupFull, opt)
	if !errors.Is(err, certadm.ErrBackupInProgress) || certadm.HRESULT(err) != 0xC80001F9 {
		t.Fatalf("second session: %v", err)
	}
	if err := first.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupFull, opt)
	if err != nil {
		t.Fatalf("after abort: %v", err)
	}
	second.Abort(ctx)
}

func TestRealRolesAndIdentity(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	reader, err := srv.Grant("reader", certadm.RoleReader)
	if err != nil {
		t.Fatal(err)
	}
	// Ping needs no role; a backup needs Operator.
	if ok, err := certadm.IsServerOnline(ctx, srv.Addr, certadm.WithCredentials(reader)); err != nil || !ok {
		t.Fatalf("reader ping: %v %v", ok, err)
	}
	_, err = certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupFull, certadm.WithCredentials(reader))
	if !errors.Is(err, certadm.ErrAccessDenied) || certadm.HRESULT(err) != 0x80070005 {
		t.Fatalf("reader backup: %v", err)
	}
	err = certadm.ServerControl(ctx, srv.Addr, certadm.ControlShutdown, certadm.WithCredentials(reader))
	if !errors.Is(err, certadm.ErrAccessDenied) {
		t.Fatalf("reader shutdown: %v", err)
	}
	// A certificate from the right anchor for a principal the CA does not
	// know passes TLS but no call.
	ghost, err := srv.Unregistered("ghost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certadm.IsServerOnline(ctx, srv.Addr, certadm.WithCredentials(ghost)); !errors.Is(err, certadm.ErrAccessDenied) {
		t.Fatalf("unregistered: %v", err)
	}
	// A credential from another anchor fails the handshake.
	foreign := t.TempDir()
	wiretest.NewPKI(t, "another anchor").WriteCreds(t, foreign, "admin", "")
	_, err = certadm.IsServerOnline(ctx, srv.Addr, certadm.WithCredentials(foreign))
	if !errors.Is(err, certadm.ErrUnavailable) && !errors.Is(err, certadm.ErrAccessDenied) {
		t.Fatalf("foreign credential: %v", err)
	}
	// The server certificate names localhost as well as 127.0.0.1.
	_, port, _ := net.SplitHostPort(srv.Addr)
	c, err := certadm.Dial(ctx, "localhost:"+port, certadm.WithCredentials(srv.CredsDir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Ping(ctx)
	if err != nil || info.Principal != "admin" || info.CAName == "" || len(info.Roles) != 6 {
		t.Fatalf("ping %+v %v", info, err)
	}
}

func TestRealSuspendedServer(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	opt := certadm.WithCredentials(srv.CredsDir)
	srv.Server.SetSuspended(true)
	online, err := certadm.IsServerOnline(ctx, srv.Addr, opt)
	if err != nil || online {
		t.Fatalf("suspended: online %v, %v", online, err)
	}
	_, err = certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupFull, opt)
	if !errors.Is(err, certadm.ErrServerSuspended) || certadm.HRESULT(err) != 0x80094006 {
		t.Fatalf("backup while suspended: %v", err)
	}
	srv.Server.SetSuspended(false)
	if online, err := certadm.IsServerOnline(ctx, srv.Addr, opt); err != nil || !online {
		t.Fatalf("resumed: %v %v", online, err)
	}
}

func TestRealServerControlShutdown(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	opt := certadm.WithCredentials(srv.CredsDir)
	if err := certadm.ServerControl(ctx, srv.Addr, certadm.Control(2), opt); !errors.Is(err, certadm.ErrInvalidArg) {
		t.Fatalf("unknown control: %v", err)
	}
	if err := certadm.ServerControl(ctx, srv.Addr, certadm.ControlShutdown, opt); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(10 * time.Second); err != nil {
		t.Fatalf("server after shutdown: %v", err)
	}
	_, err := certadm.IsServerOnline(ctx, srv.Addr, opt, certadm.WithDialTimeout(2*time.Second))
	if !errors.Is(err, certadm.ErrUnavailable) || certadm.HRESULT(err) != 0xC7FF0007 {
		t.Fatalf("after shutdown: %v (0x%08X)", err, certadm.HRESULT(err))
	}
}

// fullSession prepares a full backup and lists its database and its logs.
func fullSession(t *testing.T, addr string, opt certadm.Option) (*certadm.BackupContext, []certadm.File, []certadm.File) {
	t.Helper()
	ctx := context.Background()
	b, err := certadm.BackupPrepare(ctx, addr, certadm.BackupFull, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	dbs, err := b.DatabaseNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := b.BackupLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b, dbs, logs
}

// logCount is the number of log generations in the server's log directory.
func logCount(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestRealPartlyReadSmallFileIsNotCopied: a small file reaches the client
// whole in the first read, but a client that keeps one byte and closes it
// has not copied it: TruncateLogs is refused and deletes nothing, End
// records nothing. This holds for the database and for a log.
func TestRealPartlyReadSmallFileIsNotCopied(t *testing.T) {
	srv, opt, _ := serverWithRecords(t, "partial", 3)
	ctx := context.Background()
	for _, which := range []string{"database", "log"} {
		b, dbs, logs := fullSession(t, srv.Addr, opt)
		files := append(dbs, logs...)
		short := dbs[0].Name
		if which == "log" {
			short = logs[len(logs)-1].Name
		}
		for _, f := range files {
			src, err := b.OpenFile(ctx, f.Name, 0)
			if err != nil {
				t.Fatal(err)
			}
			if f.Name == short {
				if src.Size() > 4<<20 {
					t.Fatalf("%s has %d bytes; the test wants a file that fits in one read", f.Name, src.Size())
				}
				one := make([]byte, 1)
				if _, err := io.ReadFull(src, one); err != nil {
					t.Fatal(err)
				}
				// Give the server time to stream the whole file.
				time.Sleep(100 * time.Millisecond)
			} else if _, err := io.Copy(io.Discard, src); err != nil {
				t.Fatal(err)
			}
			if err := src.Close(); err != nil {
				t.Fatalf("close %s: %v", f.Name, err)
			}
		}
		before := logCount(t, srv.Dir.LogDir())
		_, err := b.TruncateLogs(ctx)
		if !errors.Is(err, certadm.ErrInvalidBackupSequence) || !strings.Contains(err.Error(), short) {
			t.Fatalf("%s kept 1 byte: TruncateLogs = %v, want the invalid-sequence error naming %s", which, err, short)
		}
		if after := logCount(t, srv.Dir.LogDir()); after != before {
			t.Fatalf("%s kept 1 byte: %d log generations before the refused TruncateLogs, %d after", which, before, after)
		}
		if err := b.End(ctx); !errors.Is(err, certadm.ErrInvalidBackupSequence) || b.Recorded() {
			t.Fatalf("%s kept 1 byte: End = %v, recorded %v", which, err, b.Recorded())
		}
	}
	_, err := certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupLogsOnly, opt)
	if !errors.Is(err, certadm.ErrFullBackupNotTaken) {
		t.Fatalf("a backup was recorded after partial reads: logs-only prepare = %v", err)
	}
}

// TestRealAbortAfterTruncateKeepsTheChain: TruncateLogs records the backup
// before it deletes, so an Abort after it leaves the backup recorded and
// the next logs-only backup continues the chain without a gap.
func TestRealAbortAfterTruncateKeepsTheChain(t *testing.T) {
	srv, opt, c := serverWithRecords(t, "trunc", 2)
	ctx := context.Background()
	b, dbs, logs := fullSession(t, srv.Addr, opt)
	copyFiles(t, b, append(dbs, logs...), t.TempDir(), 0)
	res, err := b.TruncateLogs(ctx)
	if err != nil || res.Deleted == 0 {
		t.Fatalf("TruncateLogs = %+v, %v; want generations deleted", res, err)
	}
	if err := b.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.Recorded() || b.EndInfo().LastGeneration != res.LastGeneration {
		t.Fatalf("after TruncateLogs and Abort: recorded %v, %+v; want the backup recorded through generation %d",
			b.Recorded(), b.EndInfo(), res.LastGeneration)
	}
	issue(t, c, "after", 2)
	inc, err := certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupLogsOnly, opt)
	if err != nil {
		t.Fatalf("logs-only backup after an aborted, truncated full backup: %v", err)
	}
	incLogs, err := inc.BackupLogs(ctx)
	if err != nil {
		t.Fatalf("logs-only backup lists its logs: %v", err)
	}
	if len(incLogs) == 0 {
		t.Fatal("the logs-only backup lists no generation")
	}
	copyFiles(t, inc, incLogs, t.TempDir(), 0)
	if err := inc.End(ctx); err != nil || !inc.Recorded() || inc.EndInfo().FirstGeneration != res.LastGeneration+1 {
		t.Fatalf("logs-only End = %v, %+v; want it recorded from generation %d", err, inc.EndInfo(), res.LastGeneration+1)
	}
}

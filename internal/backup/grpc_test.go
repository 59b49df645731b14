package backup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/testserver"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// startServer starts a real server on 127.0.0.1 with this package's
// Backup service plugged in.
func startServer(t testing.TB, lease time.Duration) *testserver.Server {
	t.Helper()
	return testserver.Start(t, testserver.WithLogger(testLogger(t)), testserver.WithBackup(func(c *service.CA) certsrvv1.BackupServer {
		s, err := ForCA(c, Options{Principal: server.PrincipalFrom, ConnClosed: server.ConnClosed, Lease: lease, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("ForCA: %v", err)
		}
		return s
	}))
}

// client dials the server with the credential in credsDir.
func client(t testing.TB, ts *testserver.Server, credsDir string) (certsrvv1.BackupClient, *grpc.ClientConn) {
	t.Helper()
	conn, err := ts.Dial(credsDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return certsrvv1.NewBackupClient(conn), conn
}

// wantStatus fails unless err is a gRPC status carrying code c.
func wantStatus(t testing.TB, err error, c apierr.Code, what string) *apierr.Error {
	t.Helper()
	e := apierr.FromStatus(err)
	if e == nil || !errors.Is(e, &apierr.Error{Code: c}) || e.Code.HRESULT != c.HRESULT {
		t.Fatalf("%s: got %v, want %s (0x%08X)", what, err, c.Reason, c.HRESULT)
	}
	return e
}

// readStream opens name and streams it whole.
func readStream(t *testing.T, ctx context.Context, cl certsrvv1.BackupClient, id, name string, chunk int32) []byte {
	t.Helper()
	open, err := cl.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: id, Name: name})
	if err != nil {
		t.Fatalf("OpenFile(%s): %v", name, err)
	}
	st, err := cl.ReadFile(ctx, &certsrvv1.ReadFileRequest{SessionId: id, ChunkSize: chunk})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for {
		c, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("ReadFile(%s): %v", name, err)
		}
		if c.Offset != int64(buf.Len()) {
			t.Fatalf("chunk at offset %d, want %d", c.Offset, buf.Len())
		}
		buf.Write(c.Data)
	}
	if int64(buf.Len()) != open.Size {
		t.Fatalf("%s: read %d bytes, OpenFile said %d", name, buf.Len(), open.Size)
	}
	if _, err := cl.CloseFile(ctx, &certsrvv1.CloseFileRequest{SessionId: id, Consumed: int64(buf.Len())}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGRPCFullBackup runs the seed scenario's steps over real gRPC and TLS:
// prepare, restore map, database names, read the database, logs, truncate,
// dynamic files (fetched over HTTP, refused by OpenFile), end.
func TestGRPCFullBackup(t *testing.T) {
	ts := startServer(t, 0)
	db := ts.CA.Store()
	write(t, db, 300)
	cl, _ := client(t, ts, ts.CredsDir)
	ctx := context.Background()

	prep, err := cl.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	if err != nil {
		t.Fatal(err)
	}
	if prep.LeaseSeconds != int64(DefaultLease.Seconds()) {
		t.Fatalf("lease %d s, want the configuration's %v", prep.LeaseSeconds, DefaultLease)
	}
	sid := &certsrvv1.SessionRequest{SessionId: prep.SessionId}
	locs, err := cl.GetDatabaseLocations(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	tags := []uint32{TagDatabase, TagLogDir, TagCheckpointDir}
	if len(locs.Files) != 3 {
		t.Fatalf("restore map %v", locs.Files)
	}
	for i, f := range locs.Files {
		if f.Tag != tags[i] || !strings.HasPrefix(f.Name, ts.DataDir) {
			t.Fatalf("restore map entry %d: %v", i, f)
		}
	}
	names, err := cl.GetDatabaseNames(ctx, sid)
	if err != nil || len(names.Files) != 1 || names.Files[0].Tag != TagDatabase || names.Files[0].Name != locs.Files[0].Name {
		t.Fatalf("GetDatabaseNames = %v, %v", names, err)
	}
	snap := readStream(t, ctx, cl, prep.SessionId, names.Files[0].Name, 8<<20) // clamped below 4 MiB
	write(t, db, 100)
	logs, err := cl.GetBackupLogs(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range logs.Files {
		if f.Tag != TagLog {
			t.Fatalf("log listed with tag %#x", f.Tag)
		}
		readStream(t, ctx, cl, prep.SessionId, f.Name, 0)
	}
	tr, err := cl.TruncateLogs(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Deleted <= 0 || tr.LastGeneration-tr.FirstGeneration+1 != uint32(tr.Deleted) || tr.Reason == "" {
		t.Fatalf("TruncateLogs = %v", tr)
	}
	dyn, err := cl.GetDynamicFiles(ctx, sid)
	if err != nil || len(dyn.Files) == 0 {
		t.Fatalf("GetDynamicFiles = %v, %v", dyn, err)
	}
	for _, f := range dyn.Files {
		u, err := url.Parse(f.Url)
		if err != nil || u.Host != ts.HTTPAddr || f.Tag != TagDynamic {
			t.Fatalf("dynamic file %v: URL not on the publication endpoint %s", f, ts.HTTPAddr)
		}
		resp, err := http.Get(f.Url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || int64(len(body)) != f.Size {
			t.Fatalf("GET %s: %s, %d bytes; listed %d", f.Url, resp.Status, len(body), f.Size)
		}
		_, err = cl.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: prep.SessionId, Name: f.Name})
		e := wantStatus(t, err, apierr.InvalidArg, "OpenFile of a dynamic file")
		if !strings.Contains(e.Msg, f.Url) {
			t.Fatalf("message %q does not say where to fetch the file", e.Msg)
		}
	}
	end, err := cl.End(ctx, &certsrvv1.EndRequest{SessionId: prep.SessionId})
	if err != nil || !end.Recorded {
		t.Fatalf("End = %v, %v", end, err)
	}
	integrity, applied, _ := sqliteMeta(t, snap)
	if integrity != "ok" || applied != end.FirstLsn {
		t.Fatalf("snapshot: integrity %q, applied_lsn %d; End says S = %d", integrity, applied, end.FirstLsn)
	}
	if full, _ := db.LastBackups(); full == nil || full.LastGen != end.LastGeneration || full.FirstLSN != end.FirstLsn {
		t.Fatalf("store recorded %+v, End said %v", full, end)
	}
	_, err = cl.GetDatabaseNames(ctx, sid)
	wantStatus(t, err, apierr.BackupSequence, "call after End")
}

// TestGRPCRolesAndOwnership: a Reader may not prepare a backup; another
// Operator may neither use nor end someone else's session, nor start a
// second one.
func TestGRPCRolesAndOwnership(t *testing.T) {
	ts := startServer(t, 0)
	ctx := context.Background()
	readerDir, err := ts.Grant("reader-one", string(service.RoleReader))
	if err != nil {
		t.Fatal(err)
	}
	opDir, err := ts.Grant("operator-two", string(service.RoleOperator))
	if err != nil {
		t.Fatal(err)
	}
	reader, _ := client(t, ts, readerDir)
	_, err = reader.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	wantStatus(t, err, apierr.AccessDenied, "BackupPrepare by a Reader")

	admin, _ := client(t, ts, ts.CredsDir)
	prep, err := admin.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := client(t, ts, opDir)
	_, err = other.GetDatabaseNames(ctx, &certsrvv1.SessionRequest{SessionId: prep.SessionId})
	wantStatus(t, err, apierr.AccessDenied, "another Operator using the session id")
	_, err = other.End(ctx, &certsrvv1.EndRequest{SessionId: prep.SessionId, Abort: true})
	wantStatus(t, err, apierr.AccessDenied, "another Operator aborting the session")
	_, err = other.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	wantStatus(t, err, apierr.BackupInProgress, "a second BackupPrepare")
	_, err = other.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_LOGS_ONLY})
	wantStatus(t, err, apierr.BackupInProgress, "a second BackupPrepare (logs-only)")
	if _, err := admin.End(ctx, &certsrvv1.EndRequest{SessionId: prep.SessionId, Abort: true}); err != nil {
		t.Fatal(err)
	}
	_, err = other.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_LOGS_ONLY})
	wantStatus(t, err, apierr.FullBackupNotTaken, "logs-only before any full backup")
}

// TestGRPCClientVanishes: a client that disappears mid-stream (its
// connection closed, or its stream cancelled and never resumed) leaves a
// session that ends with its lease; nothing is recorded and the next backup
// works.
func TestGRPCClientVanishes(t *testing.T) {
	const lease = 300 * time.Millisecond
	ts := startServer(t, lease)
	db := ts.CA.Store()
	write(t, db, 600)
	ctx := context.Background()
	for _, how := range []string{"connection closed", "stream cancelled"} {
		cl, conn := client(t, ts, ts.CredsDir)
		prep, err := cl.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		names, err := cl.GetDatabaseNames(ctx, &certsrvv1.SessionRequest{SessionId: prep.SessionId})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: prep.SessionId, Name: names.Files[0].Name}); err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		st, err := cl.ReadFile(sctx, &certsrvv1.ReadFileRequest{SessionId: prep.SessionId, ChunkSize: MinChunk})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
		if how == "connection closed" {
			conn.Close()
		}
		cancel()

		// Another client waits for the session to go.
		cl2, _ := client(t, ts, ts.CredsDir)
		deadline := time.Now().Add(10 * time.Second)
		var prep2 *certsrvv1.BackupPrepareResponse
		for {
			prep2, err = cl2.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
			if err == nil {
				break
			}
			wantStatus(t, err, apierr.BackupInProgress, how+": BackupPrepare while the abandoned session lives")
			if time.Now().After(deadline) {
				t.Fatalf("%s: the abandoned session never ended", how)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if full, _ := db.LastBackups(); full != nil {
			t.Fatalf("%s: the abandoned session recorded %+v", how, full)
		}
		_, err = cl2.GetDatabaseNames(ctx, &certsrvv1.SessionRequest{SessionId: prep.SessionId})
		wantStatus(t, err, apierr.BackupSequence, how+": the abandoned session's id")
		if _, err := cl2.End(ctx, &certsrvv1.EndRequest{SessionId: prep2.SessionId, Abort: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGRPCClientConnectionClosed: a session whose client's connection
// closes ends after the short GoneGrace, not after the (long) lease, so a
// backup retried at once after its client was killed works; while the
// client keeps a connection open, or came back on a new one, the session
// lives on.
func TestGRPCClientConnectionClosed(t *testing.T) {
	const grace = 200 * time.Millisecond
	ts := testserver.Start(t, testserver.WithLogger(testLogger(t)), testserver.WithBackup(func(c *service.CA) certsrvv1.BackupServer {
		s, err := ForCA(c, Options{Principal: server.PrincipalFrom, ConnClosed: server.ConnClosed,
			Lease: time.Hour, GoneGrace: grace, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("ForCA: %v", err)
		}
		return s
	}))
	write(t, ts.CA.Store(), 50)
	ctx := context.Background()
	full := &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL}

	// An idle client with an open connection keeps its session.
	a, aConn := client(t, ts, ts.CredsDir)
	prep, err := a.BackupPrepare(ctx, full)
	if err != nil {
		t.Fatal(err)
	}
	b, bConn := client(t, ts, ts.CredsDir)
	time.Sleep(5 * grace)
	_, err = b.BackupPrepare(ctx, full)
	wantStatus(t, err, apierr.BackupInProgress, "prepare while an idle client's connection is open")

	// The client moves to connection b; a closes; the session lives on.
	if _, err := b.GetDatabaseNames(ctx, &certsrvv1.SessionRequest{SessionId: prep.SessionId}); err != nil {
		t.Fatal(err)
	}
	aConn.Close()
	time.Sleep(5 * grace)
	if _, err := b.GetDatabaseLocations(ctx, &certsrvv1.SessionRequest{SessionId: prep.SessionId}); err != nil {
		t.Fatalf("the session died with a connection its client had left: %v", err)
	}

	// b closes too: the session ends within a few graces, recording
	// nothing, and a new backup starts.
	bConn.Close()
	c, _ := client(t, ts, ts.CredsDir)
	deadline := time.Now().Add(20 * grace)
	for {
		p, err := c.BackupPrepare(ctx, full)
		if err == nil {
			if _, err := c.End(ctx, &certsrvv1.EndRequest{SessionId: p.SessionId, Abort: true}); err != nil {
				t.Fatal(err)
			}
			break
		}
		wantStatus(t, err, apierr.BackupInProgress, "prepare after the client's connection closed")
		if time.Now().After(deadline) {
			t.Fatal("the session of a client whose connection closed did not end")
		}
		time.Sleep(grace / 4)
	}
	if rec, _ := ts.CA.Store().LastBackups(); rec != nil {
		t.Fatalf("the vanished client's session recorded %+v", rec)
	}
}

package certadm

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/certsrv/certsrv/certadm/internal/wiretest"
	"github.com/certsrv/certsrv/internal/apierr"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

func TestBackupSessionSequence(t *testing.T) {
	s, b := startBackup(t)
	ctx := context.Background()
	s.Backup.Locations = []*certsrvv1.File{{Tag: 0x44, Name: "/d/db/CA.db"}, {Tag: 0x82, Name: "/d/log"}, {Tag: 0x83, Name: "/d/sys"}}
	s.Backup.Databases = []*certsrvv1.File{{Tag: 0x44, Name: "CA.db", Size: 5}}
	s.Backup.Logs = []*certsrvv1.File{{Tag: 0x21, Name: "ca00000003.log", Size: 3}}
	s.Backup.Dynamic = []*certsrvv1.File{{Tag: 0, Name: "CA.crt", Url: "http://127.0.0.1:8080/CertEnroll/CA.crt"}}
	s.Backup.TruncateAnswer = &certsrvv1.TruncateLogsResponse{Deleted: 2, FirstGeneration: 1, LastGeneration: 2, Reason: "generation 3 holds the checkpoint"}

	if b.SessionID() != wiretest.SessionID || b.Lease() != time.Minute || b.Type() != BackupFull {
		t.Fatalf("session %q lease %v type %v", b.SessionID(), b.Lease(), b.Type())
	}
	locs, err := b.DatabaseLocations(ctx)
	if err != nil || len(locs) != 3 || locs[1].Type != FileLogDirectory || locs[2].String() != "\u0083/d/sys" {
		t.Fatalf("locations %v, %v", locs, err)
	}
	dbs, err := b.DatabaseNames(ctx)
	if err != nil || len(dbs) != 1 || dbs[0].String() != "DCA.db" || dbs[0].Size != 5 {
		t.Fatalf("database names %v, %v", dbs, err)
	}
	logs, err := b.BackupLogs(ctx)
	if err != nil || len(logs) != 1 || logs[0].String() != "!ca00000003.log" {
		t.Fatalf("logs %v, %v", logs, err)
	}
	dyn, err := b.DynamicFiles(ctx)
	if err != nil || len(dyn) != 1 || dyn[0].URL == "" || dyn[0].Type != FileDynamic {
		t.Fatalf("dynamic %v, %v", dyn, err)
	}
	res, err := b.TruncateLogs(ctx)
	if err != nil || res != (TruncateResult{2, 1, 2, "generation 3 holds the checkpoint"}) {
		t.Fatalf("truncate %+v, %v", res, err)
	}
	if b.Recorded() {
		t.Fatal("recorded before End")
	}
	if err := b.End(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.Recorded() || b.EndInfo() != (EndInfo{true, 3, 5, 100, 250}) {
		t.Fatalf("end info %+v", b.EndInfo())
	}
	end := s.Backup.Last("End").(*certsrvv1.EndRequest)
	if end.GetAbort() || end.GetSessionId() != wiretest.SessionID {
		t.Fatalf("End request %v", end)
	}

	// After End: local sequence errors, no calls reach the server.
	before := len(s.Backup.Methods())
	if _, err := b.DatabaseNames(ctx); !errors.Is(err, ErrInvalidBackupSequence) || HRESULT(err) != 0xC8000209 {
		t.Fatalf("after End: %v", err)
	}
	if _, err := b.OpenFile(ctx, "CA.db", 0); !errors.Is(err, ErrInvalidBackupSequence) {
		t.Fatalf("open after End: %v", err)
	}
	if err := b.End(ctx); !errors.Is(err, ErrInvalidBackupSequence) {
		t.Fatalf("second End: %v", err)
	}
	if err := b.Abort(ctx); err != nil {
		t.Fatalf("Abort after End: %v", err)
	}
	if after := len(s.Backup.Methods()); after != before {
		t.Fatalf("%d calls reached the server after End", after-before)
	}
	// The connection was released with the session.
	if _, err := b.Client().Ping(ctx); err == nil {
		t.Fatal("connection still usable after End")
	}
}

func TestAbortRecordsNothingAndClosesOpenFile(t *testing.T) {
	s, b := startBackup(t)
	ctx := context.Background()
	s.Backup.Files["CA.db"] = &wiretest.FileScript{Size: 4, Data: []byte("abcd")}
	if _, err := b.OpenFile(ctx, "CA.db", 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Recorded() {
		t.Fatal("abort recorded a backup")
	}
	m := s.Backup.Methods()
	if !slices.Equal(m[len(m)-2:], []string{"CloseFile", "End"}) {
		t.Fatalf("calls %v: want CloseFile then End", m)
	}
	if !s.Backup.Last("End").(*certsrvv1.EndRequest).GetAbort() {
		t.Fatal("End without abort flag")
	}
}

func TestCloseAbortsARunningSession(t *testing.T) {
	s, b := startBackup(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	end, ok := s.Backup.Last("End").(*certsrvv1.EndRequest)
	if !ok || !end.GetAbort() {
		t.Fatalf("Close did not abort: %v", s.Backup.Methods())
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestSuspendedAsPingErrorIsOffline(t *testing.T) {
	clearEnv(t)
	p := wiretest.NewPKI(t, "anchor")
	s := wiretest.Start(t, p)
	dir := t.TempDir()
	p.WriteCreds(t, dir, "reader", "")
	ctx := context.Background()
	// A server may answer Ping with the suspended error instead of the
	// suspended state; both mean offline, not failure.
	s.Admin.FailNext("Ping", wiretest.Fail(apierr.ServerSuspended, "restore pending"))
	ok, err := IsServerOnline(ctx, s.Addr, WithCredentials(dir))
	if err != nil || ok {
		t.Fatalf("suspended by error: %v %v", ok, err)
	}
	if _, err := BackupPrepare(ctx, s.Addr, BackupType(3), WithCredentials(dir)); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("backup type 3: %v", err)
	}
	if m := s.Backup.Methods(); len(m) != 0 {
		t.Fatalf("a bad backup type reached the server: %v", m)
	}
}

func TestUnreachableServer(t *testing.T) {
	clearEnv(t)
	p := wiretest.NewPKI(t, "anchor")
	dir := t.TempDir()
	p.WriteCreds(t, dir, "op", "")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	start := time.Now()
	_, err = IsServerOnline(context.Background(), addr, WithCredentials(dir), WithDialTimeout(5*time.Second))
	if !errors.Is(err, ErrUnavailable) || HRESULT(err) != 0xC7FF0007 {
		t.Fatalf("got %v (0x%08X)", err, HRESULT(err))
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("refused connection took %v", time.Since(start))
	}

	// A listener that accepts but never speaks TLS: the dial timeout ends it.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	_, err = Dial(context.Background(), silent.Addr().String(), WithCredentials(dir), WithDialTimeout(300*time.Millisecond))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("silent server: %v", err)
	}
}

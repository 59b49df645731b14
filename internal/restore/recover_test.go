package restore

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/store"
)

// TestRestoreNewHostRoundTrip restores a full backup and two incrementals
// into an empty directory: the database replayed to the last backup's end
// equals the source's dump at that LSN, the restored CA opens, needs a full
// backup, issues, publishes a CRL numbered above every earlier one, and has
// a new admin credential.
func TestRestoreNewHostRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	set := filepath.Join(t.TempDir(), "set")
	src.workload(20)
	full := src.fullBackup(set, backupOptions{withKey: true})
	src.workload(15)
	src.incrementalBackup(set)
	src.workload(15)
	want := src.dump()
	m := src.incrementalBackup(set)
	if got := m.LastBackup().LastLSN; got != want.Meta.AppliedLSN {
		t.Fatalf("last backup ends at LSN %d, the source was at %d", got, want.Meta.AppliedLSN)
	}
	src.workload(5) // after the last backup: not in the set

	target := newTarget(t)
	var status Status
	rep, err := Restore(ctx, Options{SetDir: set, Dir: target, Password: testPassword, Logger: testLogger(t), Status: &status})
	must(t, err, "restore")
	// The status followed the restore: every digested byte hashed, the
	// last stage the installation.
	if hashed, total := status.Verified(); total != rep.Verify.Bytes || hashed != total || status.Stage() != StageInstall {
		t.Errorf("status: hashed %d of %d bytes (the set holds %d), stage %q", hashed, total, rep.Verify.Bytes, status.Stage())
	}
	if !rep.NewHost || !rep.KeyRestored || rep.Record.State != StateComplete || rep.Record.SnapshotLSN != full.Backups[0].SnapshotLSN {
		t.Fatalf("report: new host %v, key restored %v, record %+v", rep.NewHost, rep.KeyRestored, rep.Record)
	}
	for _, f := range src.ca.DynamicFiles() {
		want, _ := os.ReadFile(f.Path)
		got, err := os.ReadFile(filepath.Join(target.PublishDir(), f.Name))
		if err != nil || len(got) == 0 || (f.Name == src.name+".crt" && string(got) != string(want)) {
			t.Fatalf("dynamic file %s not restored into publish/: %v", f.Name, err)
		}
	}
	rec, err := Pending(target)
	if err != nil || rec == nil || rec.State != StateComplete || !rec.NewCredentials || !rec.CatchUp {
		t.Fatalf("Pending after restore = %+v, %v", rec, err)
	}

	_, err = Recover(ctx, target, RecoverOptions{Logger: testLogger(t), afterSave: stopAt(StateReplayed)})
	if !errors.Is(err, errStopped) {
		t.Fatalf("recover stopped after the replay: %v", err)
	}
	dbPath := target.DBPath(src.name)
	if got := dumpOf(t, dbPath); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored dump differs from the source at LSN %d:\n got meta %+v, %d requests, %d CRLs\nwant meta %+v, %d requests, %d CRLs",
			want.Meta.AppliedLSN, got.Meta, len(got.Requests), len(got.CRLs), want.Meta, len(want.Requests), len(want.CRLs))
	}

	var phases []Phase
	res, err := Recover(ctx, target, RecoverOptions{Logger: testLogger(t), OnProgress: func(e Event) { phases = append(phases, e.Phase) }})
	must(t, err, "resume recovery")
	s := full.Backups[0].SnapshotLSN
	if !res.Resumed || res.LastLSN != want.Meta.AppliedLSN || res.BackupRecords != int(want.Meta.AppliedLSN-s) || res.LiveRecords != 0 {
		t.Fatalf("result %+v; want resumed, LSN %d, %d backup records", res, want.Meta.AppliedLSN, want.Meta.AppliedLSN-s)
	}
	if res.CatchUpSkipped == "" {
		t.Fatal("an empty live log directory should be reported as the reason catch-up was skipped")
	}
	if !slices.Contains(phases, PhaseInstallLogs) || phases[len(phases)-1] != PhaseDone {
		t.Fatalf("phases %v", phases)
	}
	if rec, err := Pending(target); rec != nil || err != nil {
		t.Fatalf("Pending after recovery = %+v, %v", rec, err)
	}
	if _, err := os.Stat(filepath.Join(target.RestoreDir(), BackupLogsDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the copy of the backup's logs is still there: %v", err)
	}

	c := openRestored(t, target)
	db := c.Store()
	if !db.NeedFullBackup() {
		t.Fatal("the restored database does not require a full backup")
	}
	r, err := c.Submit(ctx, "tester", csrFor(t, src.key, "after-restore"), "tls-server")
	must(t, err, "issue after restore")
	if r.Certificate == nil {
		t.Fatal("no certificate issued after restore")
	}
	crl, err := c.PublishCRL(ctx, false)
	must(t, err, "publish CRL")
	var maxCRL uint64
	for _, x := range want.CRLs {
		maxCRL = max(maxCRL, x.Number)
	}
	if !crl.Number.IsUint64() || crl.Number.Uint64() <= maxCRL {
		t.Fatalf("CRL number %d after restore, the backup had %d", crl.Number, maxCRL)
	}
	checkNewCredential(t, src.dir.TLSDir(), target, db)
}

// checkNewCredential checks that the restored directory has its own trust
// anchor (not the source's) and that its admin credential is registered.
func checkNewCredential(t *testing.T, srcTLS string, target interface {
	TLSDir() string
	AdminDir() string
}, db *store.DB) {
	t.Helper()
	a, err := os.ReadFile(filepath.Join(srcTLS, "trust.crt"))
	must(t, err, "source trust anchor")
	b, err := os.ReadFile(filepath.Join(target.TLSDir(), "trust.crt"))
	must(t, err, "restored trust anchor")
	if string(a) == string(b) {
		t.Fatal("the restored CA reuses the source's trust anchor")
	}
	pemBytes, err := os.ReadFile(filepath.Join(target.AdminDir(), "client.crt"))
	must(t, err, "admin credential")
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatal("admin/client.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	must(t, err, "parse admin credential")
	p, err := db.Principal(context.Background(), service.AdminPrincipal)
	must(t, err, "admin principal")
	if !slices.Contains(p.Fingerprints, service.Fingerprint(cert.Raw)) {
		t.Fatalf("the new admin credential %s is not registered (%v)", service.Fingerprint(cert.Raw), p.Fingerprints)
	}
}

package restore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backup"
	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/backuptest"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/testserver"
	"github.com/certsrv/certsrv/internal/wal"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// hookedBackup is the real backup service with one seam: beforeLogs runs
// inside GetBackupLogs before the service rolls the log and lists the
// generations, so a test can write records between the snapshot and the
// end of the backup at a point it knows.
type hookedBackup struct {
	*backup.Service
	beforeLogs func(ctx context.Context) error
}

// GetBackupLogs runs the hook, then the service's GetBackupLogs.
func (h *hookedBackup) GetBackupLogs(ctx context.Context, r *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
	if err := h.beforeLogs(ctx); err != nil {
		return nil, err
	}
	return h.Service.GetBackupLogs(ctx, r)
}

// buildScenario builds examples/backup-scenario into dir and returns the
// program's path.
func buildScenario(t *testing.T, dir string) string {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	bin := filepath.Join(dir, "backup-scenario")
	cmd := exec.Command(goTool, "build", "-o", bin, "./examples/backup-scenario")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/backup-scenario: %v\n%s", err, out)
	}
	return bin
}

// exampleSet is a set the example backup program wrote from a running CA,
// with the CA's key added the way `certadm key backup SET` adds it.
type exampleSet struct {
	srv  *testserver.Server
	dir  string      // the set
	want *store.Dump // the CA's database at the end of the backup's logs
	gens []uint32    // the set's log generations, ascending
}

// writeExampleSet starts a CA with the backup service, gives it some
// history, runs the example program against it and adds the key file. While
// the program's session lists the logs, the hook issues, revokes and
// publishes across at least three log generations, then dumps the database:
// those records follow the snapshot and end the backup's logs.
func writeExampleSet(t *testing.T) *exampleSet {
	t.Helper()
	ctx := context.Background()
	bin := buildScenario(t, t.TempDir())
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err, "request key")
	dumped := make(chan *store.Dump, 1)
	// An Ed25519 CA: a set without configuration must not restore into a
	// configuration that names the default key type.
	srv := testserver.Start(t,
		testserver.WithKeyType(ca.KeyEd25519),
		testserver.WithConfig(func(c *datadir.Config) { c.LogSegmentSize = 64 << 10 }),
		testserver.WithBackup(func(c *service.CA) certsrvv1.BackupServer {
			s, err := backuptest.New(c)
			if err != nil {
				t.Fatalf("backup service: %v", err)
			}
			var once sync.Once
			return &hookedBackup{Service: s, beforeLogs: func(ctx context.Context) (err error) {
				once.Do(func() { err = writeDuringBackup(ctx, c, key, dumped) })
				return err
			}}
		}))
	for i := 0; i < 12; i++ {
		must(t, history(ctx, srv.CA, key, i), "history before the backup")
	}

	dir := filepath.Join(t.TempDir(), "set")
	cmd := exec.Command(bin, "--creds", srv.CredsDir, srv.Addr, dir)
	cmd.Env = append(os.Environ(), "CERTADM_SERVER=", "CERTADM_CREDS=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("backup-scenario: %v\n%s", err, out.String())
	}
	t.Logf("backup-scenario:\n%s", out.String())
	var want *store.Dump
	select {
	case want = <-dumped:
	default:
		t.Fatal("the program's session never listed the logs")
	}

	// `certadm key backup SET`: the key over the admin API, written as
	// the server names it.
	conn, err := testserver.Dial(srv.Addr, srv.CredsDir)
	must(t, err, "dial")
	defer conn.Close()
	kr, err := certsrvv1.NewAdminClient(conn).BackupKey(ctx, &certsrvv1.BackupKeyRequest{Password: testPassword})
	must(t, err, "BackupKey")
	must(t, fsutil.WriteFileAtomic(filepath.Join(dir, kr.GetFileName()), kr.GetPkcs12(), 0o600), "write key file")

	es := &exampleSet{srv: srv, dir: dir, want: want}
	ents, err := os.ReadDir(filepath.Join(dir, backupset.DatabaseDir))
	must(t, err, "list the set")
	for _, e := range ents {
		if g, ok := wal.ParseFileName(wal.DefaultBase, e.Name()); ok {
			es.gens = append(es.gens, g)
		}
	}
	slices.Sort(es.gens)
	if len(es.gens) < 3 {
		t.Fatalf("the set holds generations %v; the cases need at least 3", es.gens)
	}
	if _, err := os.Stat(filepath.Join(dir, backupset.ManifestFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the example program wrote a manifest: %v", err)
	}
	return es
}

// writeDuringBackup issues, revokes and publishes on c until its log has
// advanced three generations, then sends the database's dump: the state at
// the end of the backup's logs, since the service rolls the log right
// after.
func writeDuringBackup(ctx context.Context, c *service.CA, key *ecdsa.PrivateKey, dumped chan<- *store.Dump) error {
	last := func() uint32 { g := c.Store().Generations(); return g[len(g)-1].Gen }
	start := last()
	for i := 0; last() < start+3; i++ {
		if i == 2000 {
			return errors.New("the log did not advance three generations")
		}
		if err := history(ctx, c, key, 1000+i); err != nil {
			return err
		}
	}
	d, err := c.Store().Dump(ctx)
	if err != nil {
		return err
	}
	dumped <- d
	return nil
}

// history issues one certificate (request n) on c, revokes every third
// and holds every fifth, and publishes a CRL every seventh.
func history(ctx context.Context, c *service.CA, key *ecdsa.PrivateKey, n int) error {
	csr, err := newCSR(key, fmt.Sprintf("example%d", n))
	if err != nil {
		return err
	}
	r, err := c.Submit(ctx, "tester", csr, "tls-server")
	if err != nil {
		return err
	}
	if r.Certificate == nil {
		return fmt.Errorf("request %d not issued", r.ID)
	}
	switch {
	case n%3 == 0:
		_, err = c.Revoke(ctx, r.Certificate.Serial, "keyCompromise", time.Time{})
	case n%5 == 0:
		_, err = c.Revoke(ctx, r.Certificate.Serial, "certificateHold", time.Time{})
	}
	if err == nil && n%7 == 6 {
		_, err = c.PublishCRL(ctx, false)
	}
	return err
}

// TestRestoreSetWithoutManifest restores a set the example backup program
// (examples/backup-scenario, over the public certadm library) wrote, which
// has no manifest.json: into a new directory, where it recovers to exactly
// the source's database at the end of the backup's logs; refused before
// anything changes when it is damaged; and over the CA's own directory
// with the key the directory holds, catching up through its live log.
func TestRestoreSetWithoutManifest(t *testing.T) {
	ctx := context.Background()
	es := writeExampleSet(t)
	name := es.srv.CA.Name()
	meta, err := backupset.ReadDBMeta(ctx, filepath.Join(es.dir, backupset.DatabaseDir, name+".db"))
	must(t, err, "read the set's database")
	if meta.AppliedLSN >= es.want.Meta.AppliedLSN {
		t.Fatalf("the snapshot is at LSN %d, the backup's end at %d: no record to replay", meta.AppliedLSN, es.want.Meta.AppliedLSN)
	}

	t.Run("new host", func(t *testing.T) {
		target := newTarget(t)
		rep, err := Restore(ctx, Options{SetDir: es.dir, Dir: target, Password: testPassword, Logger: testLogger(t)})
		must(t, err, "restore")
		v := rep.Verify
		if v.HasManifest || !slices.Contains(rep.Notes, backupset.NoManifestNote) || v.LastLSN != es.want.Meta.AppliedLSN ||
			v.SnapshotLSN != meta.AppliedLSN || v.FirstGen != es.gens[0] || v.LastGen != es.gens[len(es.gens)-1] {
			t.Fatalf("verification report %+v, notes %q", v, rep.Notes)
		}
		rec := rep.Record
		if rep.CAName != name || !rep.NewHost || !rep.KeyRestored || rep.ConfigNote == "" || rec.SnapshotLSN != meta.AppliedLSN ||
			rec.LowGen != es.gens[0] || rec.HighGen != es.gens[len(es.gens)-1] || rec.State != StateComplete {
			t.Fatalf("report: CA %q, new host %v, key restored %v, config note %q, record %+v",
				rep.CAName, rep.NewHost, rep.KeyRestored, rep.ConfigNote, rec)
		}
		if cfg, err := target.LoadConfig(); err != nil || cfg.KeyType != string(ca.KeyEd25519) {
			t.Fatalf("the configuration written for the restored Ed25519 CA: %+v, %v", cfg, err)
		}
		_, err = Recover(ctx, target, RecoverOptions{Logger: testLogger(t), afterSave: stopAt(StateReplayed)})
		if !errors.Is(err, errStopped) {
			t.Fatalf("recover stopped after the replay: %v", err)
		}
		if got := dumpOf(t, target.DBPath(name)); !reflect.DeepEqual(got, es.want) {
			t.Fatalf("restored dump differs from the source at LSN %d:\n got meta %+v, %d requests, %d CRLs\nwant meta %+v, %d requests, %d CRLs",
				es.want.Meta.AppliedLSN, got.Meta, len(got.Requests), len(got.CRLs), es.want.Meta, len(es.want.Requests), len(es.want.CRLs))
		}
		res, err := Recover(ctx, target, RecoverOptions{Logger: testLogger(t)})
		must(t, err, "finish recovery")
		if res.LastLSN != es.want.Meta.AppliedLSN || res.BackupRecords != int(es.want.Meta.AppliedLSN-meta.AppliedLSN) {
			t.Fatalf("recovery %+v; want LSN %d after %d records", res, es.want.Meta.AppliedLSN, es.want.Meta.AppliedLSN-meta.AppliedLSN)
		}
		c := openRestored(t, target)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, err, "key")
		r, err := c.Submit(ctx, "tester", csrFor(t, key, "after-restore"), "tls-server")
		if err != nil || r.Certificate == nil {
			t.Fatalf("issue after restore: %+v, %v", r, err)
		}
		if !c.Store().NeedFullBackup() {
			t.Fatal("the restored CA does not require a full backup")
		}
	})

	other := newSource(t)
	other.workload(3)
	otherLog := other.ca.Store().Generations()[0].Path
	mid := es.gens[len(es.gens)/2]
	midRel := filepath.Join(backupset.DatabaseDir, wal.FileName(wal.DefaultBase, mid))
	dbRel := filepath.Join(backupset.DatabaseDir, name+".db")
	rmRel := filepath.Join(backupset.DatabaseDir, backupset.RestoreMapFile)
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []error
	}{
		{"middle log removed", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, midRel)), "remove")
		}, []error{backupset.ErrChainGap, backupset.ErrMissingFile}},
		{"log from another log set", func(t *testing.T, dir string) {
			b, err := os.ReadFile(otherLog)
			must(t, err, "read the other CA's log")
			must(t, os.WriteFile(filepath.Join(dir, midRel), b, 0o600), "write")
		}, []error{backupset.ErrForeignLog}},
		{"restore map pointing at another database", func(t *testing.T, dir string) {
			m, err := backupset.ReadRestoreMap(filepath.Join(dir, rmRel))
			must(t, err, "read restore map")
			for i := range m.Entries {
				if m.Entries[i].Tag == backupset.TagDatabase {
					m.Entries[i].Path = "/var/lib/certsrv/db/Other CA.db"
				}
			}
			b, err := m.Marshal()
			must(t, err, "marshal restore map")
			must(t, os.WriteFile(filepath.Join(dir, rmRel), b, 0o600), "write")
		}, []error{backupset.ErrBadRestoreMap}},
		{"truncated database", func(t *testing.T, dir string) {
			p := filepath.Join(dir, dbRel)
			fi, err := os.Stat(p)
			must(t, err, "stat")
			must(t, os.Truncate(p, fi.Size()/2), "truncate")
		}, []error{backupset.ErrTruncated}},
		{"no CA certificate", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, backupset.DynamicDir, name+".crt")), "remove")
		}, []error{ErrNoCACert}},
		{"configuration of another CA", func(t *testing.T, dir string) {
			b, err := json.Marshal(datadir.DefaultConfig("Other CA"))
			must(t, err, "config")
			must(t, os.MkdirAll(filepath.Join(dir, backupset.ConfigDir), 0o700), "mkdir")
			must(t, os.WriteFile(filepath.Join(dir, backupset.ConfigDir, backupset.ConfigFile), b, 0o600), "write")
		}, []error{backupset.ErrConfig}},
		{"left-over part file", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, midRel+backupset.PartSuffix), []byte("half"), 0o600), "write")
		}, []error{backupset.ErrIncomplete}},
	}
	for _, tc := range cases {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "set")
			copyTree(t, dir, es.dir)
			tc.damage(t, dir)
			target := newTarget(t)
			_, err := Restore(ctx, Options{SetDir: dir, Dir: target, Password: testPassword, RecoverNow: true})
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Fatalf("restore of a set with %s: %v, want %v", tc.name, err, w)
				}
			}
			t.Logf("refused: %v", err)
			if what := leftover(t, target); what != "" {
				t.Fatalf("the refused restore left %s in the target", what)
			}
			if rec, err := Pending(target); rec != nil || err != nil {
				t.Fatalf("a refused restore left a record: %+v, %v", rec, err)
			}
		})
	}

	t.Run("own directory with its key", func(t *testing.T) {
		// The CA stops and loses its database file; the set restores over
		// its directory with the key the directory holds, and catch-up
		// replays the live log to where the CA stopped.
		es.srv.Stop()
		dir := es.srv.Dir
		dbPath := dir.DBPath(name)
		last := dumpOf(t, dbPath)
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
		rep, err := Restore(ctx, Options{SetDir: es.dir, Dir: dir, Force: true, Logger: testLogger(t)})
		must(t, err, "restore over the CA's own directory")
		if rep.KeyRestored || rep.NewHost || rep.Verify.HasManifest {
			t.Fatalf("report: key restored %v, new host %v, manifest %v", rep.KeyRestored, rep.NewHost, rep.Verify.HasManifest)
		}
		_, err = Recover(ctx, dir, RecoverOptions{Logger: testLogger(t), afterSave: stopAt(StateReplayed)})
		if !errors.Is(err, errStopped) {
			t.Fatalf("recover: %v", err)
		}
		if got := dumpOf(t, dbPath); !reflect.DeepEqual(got, last) {
			t.Fatalf("after catch-up the database (LSN %d, %d requests) differs from the lost one (LSN %d, %d requests)",
				got.Meta.AppliedLSN, len(got.Requests), last.Meta.AppliedLSN, len(last.Requests))
		}
		res, err := Recover(ctx, dir, RecoverOptions{Logger: testLogger(t)})
		must(t, err, "finish recovery")
		if res.LiveRecords == 0 || res.CatchUpSkipped != "" || res.LastLSN != last.Meta.AppliedLSN {
			t.Fatalf("recovery %+v; want catch-up through LSN %d", res, last.Meta.AppliedLSN)
		}
	})
}

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/testserver"
	"github.com/certsrv/certsrv/internal/wal"
)

// issueSome issues n certificates through the CA, so the backup has
// content, and publishes a CRL, so there are several dynamic files.
func issueSome(t testing.TB, srv *testserver.Server, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("host%d.example", i)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject:  pkix.Name{CommonName: name},
			DNSNames: []string{name},
		}, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.CA.Submit(ctx, "test", der, srv.CA.DefaultProfile()); err != nil {
			t.Fatalf("submit %s: %v", name, err)
		}
	}
	if _, err := srv.CA.PublishCRL(ctx, false); err != nil {
		t.Fatalf("publish CRL: %v", err)
	}
}

// checkScenarioSet checks the set backup_scenario wrote into dir against
// the server it was taken from.
func checkScenarioSet(t *testing.T, srv *testserver.Server, dir string) {
	t.Helper()
	ctx := context.Background()
	dbDir := filepath.Join(dir, "DataBase")

	// Nothing but the expected files; no .part left behind.
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
			if fi, err := d.Info(); err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", rel, fi.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	t.Logf("set files: %v", names)

	// The restore map: backupset's parser accepts it (version line,
	// entries, SHA-256 line) and it names this server's files.
	m, err := backupset.ReadRestoreMap(filepath.Join(dbDir, backupset.RestoreMapFile))
	if err != nil {
		t.Fatalf("certbkxp.dat: %v", err)
	}
	caName := srv.CA.Name()
	want := map[string]string{
		"database": srv.Dir.DBPath(caName),
		"log":      srv.Dir.LogDir(),
		"sys":      srv.Dir.SysDir(),
	}
	got := map[string]string{"database": m.Database(), "log": m.LogDir(), "sys": m.CheckpointDir()}
	for k := range want {
		if !samePath(got[k], want[k]) {
			t.Errorf("restore map %s = %q, want %q", k, got[k], want[k])
		}
	}

	// The database snapshot belongs to this CA.
	dbFile := filepath.Join(dbDir, caName+".db")
	meta, err := backupset.ReadDBMeta(ctx, dbFile)
	if err != nil {
		t.Fatalf("database snapshot: %v", err)
	}
	live := srv.CA.Store().Meta()
	if meta.DBSignature != [16]byte(live.Database) || meta.LogSignature != live.Log {
		t.Errorf("snapshot signatures %x/%x, CA has %x/%x", meta.DBSignature, meta.LogSignature, live.Database, live.Log)
	}

	// The logs form a chain that continues the snapshot.
	var logs []string
	for _, n := range names {
		if strings.HasPrefix(n, "DataBase"+string(filepath.Separator)) && strings.HasSuffix(n, ".log") {
			logs = append(logs, filepath.Join(dir, n))
		}
	}
	if len(logs) == 0 {
		t.Fatal("no log generation in the set")
	}
	var prev *wal.GenInfo
	var lastLSN uint64
	for _, p := range logs {
		if prev == nil {
			// The first generation chains to one the set does not hold:
			// check it on its own.
			g, err := wal.VerifyGeneration(p, nil)
			if err != nil {
				t.Fatalf("log %s: %v", p, err)
			}
			if g.BaseLSN > meta.AppliedLSN+1 {
				t.Errorf("first log starts at LSN %d, after the snapshot's %d+1", g.BaseLSN, meta.AppliedLSN)
			}
			prev = &g
		} else {
			g, err := wal.VerifyGeneration(p, prev)
			if err != nil {
				t.Fatalf("log %s does not continue the chain: %v", p, err)
			}
			prev = &g
		}
		if prev.Signature != live.Log {
			t.Errorf("log %s has signature %x, CA has %x", p, prev.Signature, live.Log)
		}
		lastLSN = max(lastLSN, uint64(prev.LastLSN))
	}
	if lastLSN < meta.AppliedLSN {
		t.Errorf("logs end at LSN %d, before the snapshot's %d", lastLSN, meta.AppliedLSN)
	}

	// The dynamic files are the server's, byte for byte.
	dyn := srv.CA.DynamicFiles()
	if len(dyn) < 2 {
		t.Fatalf("the CA publishes %d dynamic files; the test wants the certificate and a CRL", len(dyn))
	}
	for _, f := range dyn {
		want, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "Dynamic", f.Name))
		if err != nil {
			t.Errorf("dynamic file %s: %v", f.Name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("dynamic file %s differs from the server's", f.Name)
		}
	}
	wantCount := 1 + 1 + len(logs) + len(dyn) // database, restore map, logs, dynamic
	if len(names) != wantCount {
		t.Errorf("the set holds %d files, want %d: %v", len(names), wantCount, names)
	}
}

// samePath compares two absolute paths after resolving symbolic links
// (the temporary directory may be reached through one).
func samePath(a, b string) bool {
	if a == b {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// benchMB is the database size BenchmarkVerify builds, in MiB:
// CERTSRV_VERIFY_BENCH_MB, default 256.
func benchMB(b *testing.B) int64 {
	s := os.Getenv("CERTSRV_VERIFY_BENCH_MB")
	if s == "" {
		return 256
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("CERTSRV_VERIFY_BENCH_MB=%q: want a positive number of MiB", s)
	}
	return n
}

// BenchmarkVerify builds a backup set whose database holds about
// CERTSRV_VERIFY_BENCH_MB MiB of real, CA-signed certificates (plus
// revocations, a CRL and the logs written after the snapshot) with the
// store engine and internal/backupset, then measures, on the same files:
//
//   - cat: `cat <every file of the set> > /dev/null`, the reference;
//   - files: the file checks (manifest, sizes, SHA-256 digests, restore
//     map, database meta, log chain), which read every byte of the set;
//   - files-cold: the same after evicting the set from the page cache
//     (posix_fadvise DONTNEED), against a cold cat;
//   - files-no-manifest: the file checks of the same files without
//     manifest.json (backupset.Derive and the derived set's Verify: no
//     digests, but SQLite's quick_check of the database and every log
//     record);
//   - full: Verify, trial restore and CA checks included.
//
// Each sub-benchmark reports MB/s of set bytes and "x-cat", its speed as a
// fraction of cat's measured in the same iterations (1.0 = as fast as cat).
func BenchmarkVerify(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "set")
	start := time.Now()
	buildBenchSet(b, dir, benchMB(b)<<20)
	files, total := setFileList(b, dir)
	b.Logf("built a set of %d files, %.1f MiB, in %s", len(files), float64(total)/(1<<20), time.Since(start).Round(time.Millisecond))

	cat := func(cold bool) time.Duration {
		if cold {
			evict(b, files)
		}
		t0 := time.Now()
		cmd := exec.Command("cat", files...)
		devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer devNull.Close()
		cmd.Stdout = devNull
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	measure := func(b *testing.B, cold bool, run func() error) {
		b.SetBytes(total)
		var catTime, runTime time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			catTime += cat(cold)
			if cold {
				evict(b, files)
			}
			b.StartTimer()
			t0 := time.Now()
			if err := run(); err != nil {
				b.Fatal(err)
			}
			runTime += time.Since(t0)
		}
		b.ReportMetric(float64(catTime)/float64(runTime), "x-cat")
		b.ReportMetric(float64(total)/1e6*float64(b.N)/catTime.Seconds(), "cat-MB/s")
	}
	b.Run("cat", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			cat(false)
		}
	})
	files1 := func() error {
		set, err := backupset.Open(dir)
		if err != nil {
			return err
		}
		info, err := fromSet(dir, set)
		if err != nil {
			return err
		}
		cs := newChecks()
		if err := verifySet(context.Background(), info, cs); err != nil {
			return err
		}
		if cs.failed(layerChecks...) {
			var r Report
			cs.fill(&r)
			return &FailedError{Dir: dir, Problems: r.Problems}
		}
		return nil
	}
	b.Run("files", func(b *testing.B) { measure(b, false, files1) })
	b.Run("files-cold", func(b *testing.B) { measure(b, true, files1) })
	raw := linkWithoutManifest(b, dir)
	b.Run("files-no-manifest", func(b *testing.B) {
		measure(b, false, func() error {
			set, err := backupset.Derive(context.Background(), raw)
			if err != nil {
				return err
			}
			info, err := fromSet(raw, set)
			if err != nil {
				return err
			}
			cs := newChecks()
			if err := verifySet(context.Background(), info, cs); err != nil {
				return err
			}
			if cs.failed(layerChecks...) {
				var r Report
				cs.fill(&r)
				return &FailedError{Dir: raw, Problems: r.Problems}
			}
			return nil
		})
	})
	b.Run("full", func(b *testing.B) {
		measure(b, false, func() error {
			rep, err := Verify(context.Background(), dir, Options{TempDir: b.TempDir()})
			if err == nil {
				b.ReportMetric(float64(rep.Counts.Certificates), "certs")
			}
			return err
		})
	})
}

// evict drops the files from the page cache, so the next read comes from
// the disk.
func evict(b *testing.B, files []string) {
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// setFileList returns every file of the set and their total size.
func setFileList(b *testing.B, dir string) ([]string, int64) {
	var files []string
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, p)
		total += fi.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return files, total
}

// buildBenchSet makes a CA database of about size bytes with the store
// engine — real certificates signed by a fresh CA, one in a hundred
// revoked, a full CRL — and writes a full backup of it into dir: the
// snapshot, the log generations written after it (some more issuance),
// the restore map and the CA certificate and CRL as dynamic files.
func buildBenchSet(b *testing.B, dir string, size int64) {
	ctx := context.Background()
	data := b.TempDir()
	const name = "Bench CA"
	lay := store.Layout{DBPath: filepath.Join(data, "db", name+".db"), LogDir: filepath.Join(data, "log"), SysDir: filepath.Join(data, "sys")}
	for _, d := range []string{filepath.Dir(lay.DBPath), lay.LogDir, lay.SysDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	db, err := store.Create(ctx, store.Options{Layout: lay})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	key, err := ca.GenerateKey(ca.KeyECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	cert, err := ca.NewRoot(name, key, 10*365*24*time.Hour, now)
	if err != nil {
		b.Fatal(err)
	}
	auth, err := ca.NewAuthority(name, cert, key, nil, "")
	if err != nil {
		b.Fatal(err)
	}
	subjKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "bench.example.com"}, DNSNames: []string{"bench.example.com"}}, subjKey)
	if err != nil {
		b.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		b.Fatal(err)
	}
	profile := ca.DefaultProfiles()[0]

	var (
		mu      sync.Mutex
		revoke  []string
		failure error
		issued  atomic.Int64
	)
	enroll := func(limit func() bool, stored *atomic.Int64) {
		var wg sync.WaitGroup
		for range 32 * runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for limit() {
					serial, err := ca.NewSerial()
					if err != nil {
						failure = err
						return
					}
					der, err := auth.Issue(csr, profile, serial, now)
					if err != nil {
						failure = err
						return
					}
					x, err := x509.ParseCertificate(der)
					if err != nil {
						failure = err
						return
					}
					s := ca.SerialString(serial)
					if _, _, err := db.Enroll(ctx, store.NewRequest{CSR: csrDER, Subject: x.Subject.String(), Profile: profile.Name, Requester: "bench"},
						store.NewCertificate{Serial: s, DER: der, Subject: x.Subject.String(), NotBefore: x.NotBefore, NotAfter: x.NotAfter}); err != nil {
						failure = err
						return
					}
					stored.Add(int64(len(csrDER) + len(der) + 200))
					if n := issued.Add(1); n%100 == 0 {
						mu.Lock()
						revoke = append(revoke, s)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if failure != nil {
			b.Fatal(failure)
		}
	}
	// Each request stores the CSR and the certificate, and some 200 bytes
	// more in rows and indexes; stop when that adds up to size.
	var stored atomic.Int64
	enroll(func() bool { return stored.Load() < size }, &stored)
	var entries []ca.RevokedEntry
	for _, s := range revoke {
		if _, err := db.Revoke(ctx, s, ca.ReasonKeyCompromise, now); err != nil {
			b.Fatal(err)
		}
		n, _ := ca.ParseSerial(s)
		entries = append(entries, ca.RevokedEntry{Serial: n, RevokedAt: now, Reason: ca.ReasonKeyCompromise})
	}
	crlNow := time.Now()
	crl, err := auth.CRL(entries, big.NewInt(1), nil, crlNow, crlNow.Add(24*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.RecordCRL(ctx, store.CRL{Number: 1, ThisUpdate: crlNow, NextUpdate: crlNow.Add(24 * time.Hour), DER: crl}); err != nil {
		b.Fatal(err)
	}

	// The backup: snapshot, more issuance, roll, the logs from S+1.
	snap, err := db.Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	w, err := backupset.Create(dir, backupset.Options{CAName: name, CACertSHA256: sha256.Sum256(cert.Raw)})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.AddRestoreMap(ctx, backupset.RestoreMap{Entries: []backupset.RestoreEntry{
		{Tag: backupset.TagDatabase, Path: lay.DBPath}, {Tag: backupset.TagLogDir, Path: lay.LogDir}, {Tag: backupset.TagCheckpointDir, Path: lay.SysDir},
	}}); err != nil {
		b.Fatal(err)
	}
	if _, err := w.AddFile(ctx, backupset.KindDatabase, backupset.DatabaseDir+"/"+name+".db", snap.NewReader(), snap.Size()); err != nil {
		b.Fatal(err)
	}
	s := snap.LSN()
	snap.Close()
	more := issued.Load() + 2000
	enroll(func() bool { return issued.Load() < more }, new(atomic.Int64))
	sealed, err := db.RollLog()
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range db.Generations() {
		if g.Gen > sealed || endLSN(g) < s+1 && g.Gen != sealed {
			continue
		}
		f, err := os.Open(g.Path)
		if err != nil {
			b.Fatal(err)
		}
		_, err = w.AddFile(ctx, backupset.KindLog, backupset.DatabaseDir+"/"+wal.FileName(wal.DefaultBase, g.Gen), f, g.Size)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	for n, content := range map[string][]byte{name + ".crt": cert.Raw, name + ".crl": crl} {
		if _, err := w.AddFile(ctx, backupset.KindDynamic, backupset.DynamicDir+"/"+n, bytes.NewReader(content), int64(len(content))); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Commit(ctx, backupset.BackupInfo{Server: "bench", CertsrvVersion: "bench"}); err != nil {
		b.Fatal(fmt.Errorf("commit the bench set: %w", err))
	}
}

// endLSN returns the LSN of g's last record, or the one before its first
// when it holds none.
func endLSN(g wal.GenInfo) uint64 {
	if g.LastLSN == 0 {
		return g.BaseLSN - 1
	}
	return g.LastLSN
}

// linkWithoutManifest hard-links the files of the set in dir, all but
// manifest.json, into a new directory and returns it: the same set as other
// backup software would leave it.
func linkWithoutManifest(b *testing.B, dir string) string {
	b.Helper()
	raw := filepath.Join(b.TempDir(), "raw")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(filepath.Join(raw, rel), 0o700)
		case rel == backupset.ManifestFile:
			return nil
		}
		return os.Link(p, filepath.Join(raw, rel))
	})
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

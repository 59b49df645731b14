package backupset

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/wal"
)

// rawSet writes a full backup of a new source and removes its manifest,
// as a set written by other backup software looks. It returns the source,
// the set directory and the manifest the set had.
func rawSet(t *testing.T, caName string) (*source, string, *Manifest) {
	t.Helper()
	src := newSource(t, caName)
	dir := filepath.Join(t.TempDir(), "set")
	m := src.fullBackup(dir)
	if err := os.Remove(filepath.Join(dir, ManifestFile)); err != nil {
		t.Fatal(err)
	}
	return src, dir, m
}

// TestDeriveMatchesTheManifest derives a set whose manifest was removed
// and checks that the description is what the manifest said, but for
// what only a manifest can know, and that the set verifies.
func TestDeriveMatchesTheManifest(t *testing.T) {
	ctx := context.Background()
	_, dir, want := rawSet(t, "Derived CA")
	// What a verifier leaves beside a set is not part of it.
	for _, n := range []string{VerifiedFile, VerifiedTmpFile} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(dir); !errors.Is(err, ErrNoManifest) {
		t.Fatalf("Open of a set without manifest: %v", err)
	}
	set, err := Load(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if set.HasManifest() {
		t.Fatal("a derived set says it has a manifest")
	}
	got := set.Manifest()
	if got.CA.Name != want.CA.Name || got.CA.DBSignature != want.CA.DBSignature || got.CA.LogSignature != want.CA.LogSignature ||
		got.CA.LogBase != want.CA.LogBase || got.CA.CertSHA256 != "" || got.Checksum != "" {
		t.Errorf("identity %+v, manifest's %+v", got.CA, want.CA)
	}
	wb, gb := want.Backups[0], got.Backups[0]
	if len(got.Backups) != 1 || gb.Type != BackupFull || gb.FirstGen != wb.FirstGen || gb.LastGen != wb.LastGen ||
		gb.FirstLSN != wb.FirstLSN || gb.LastLSN != wb.LastLSN || gb.SnapshotLSN != wb.SnapshotLSN {
		t.Errorf("backups %+v, manifest's %+v", got.Backups, want.Backups)
	}
	sizes := map[string]int64{}
	for _, f := range want.Files {
		sizes[f.Path] = f.Size
	}
	for _, f := range got.Files {
		if s, ok := sizes[f.Path]; !ok || s != f.Size || f.SHA256 != "" {
			t.Errorf("derived file %+v; the manifest lists %s with %d bytes (%v)", f, f.Path, s, ok)
		}
		delete(sizes, f.Path)
	}
	if len(sizes) > 0 {
		t.Errorf("not derived: %v", sizes)
	}
	if !slices.Contains(got.Notes, NoManifestNote) {
		t.Errorf("notes %q", got.Notes)
	}
	rep, err := set.Verify(ctx)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.HasManifest || rep.Files != len(want.Files) || rep.Backups != 1 || rep.SnapshotLSN != wb.SnapshotLSN ||
		rep.LastLSN != wb.LastLSN || rep.FirstGen != wb.FirstGen || rep.LastGen != wb.LastGen {
		t.Errorf("report %+v", rep)
	}
	// The same leftovers beside a set with a manifest are tolerated too.
	withManifest := t.TempDir()
	src := newSource(t, "Manifest CA")
	src.fullBackup(withManifest)
	if err := os.WriteFile(filepath.Join(withManifest, VerifiedTmpFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyDir(t, withManifest); err != nil {
		t.Errorf("a set with a manifest and %s: %v", VerifiedTmpFile, err)
	}
	if s, err := Load(ctx, withManifest); err != nil || !s.HasManifest() {
		t.Errorf("Load of a set with a manifest: %v", err)
	}
}

// selfSigned returns a DER certificate with common name cn, a CA
// certificate when isCA.
func selfSigned(t *testing.T, cn string, isCA bool) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestDeriveFindsTheCACertificate checks which Dynamic/ file a derived set
// takes its CA certificate from: a CA certificate with the CA's name, DER
// or PEM, the one in Dynamic/<CA>.crt first; never a leaf or another
// CA's.
func TestDeriveFindsTheCACertificate(t *testing.T) {
	ctx := context.Background()
	_, dir, m := rawSet(t, "Cert CA")
	dyn := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, DynamicDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	certSHA := func() string {
		t.Helper()
		set, err := Derive(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		return set.Manifest().CA.CertSHA256
	}
	digest := func(der []byte) string { s := sha256.Sum256(der); return hex.EncodeToString(s[:]) }
	leaf := selfSigned(t, m.CA.Name, false)
	other := selfSigned(t, "Other CA", true)
	inChain := selfSigned(t, m.CA.Name, true)
	own := selfSigned(t, m.CA.Name, true)
	dyn("leaf.crt", leaf)
	dyn("other.crt", other)
	if got := certSHA(); got != "" {
		t.Fatalf("a leaf or another CA's certificate was taken: %s", got)
	}
	dyn("chain.pem", append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inChain})...))
	if got := certSHA(); got != digest(inChain) {
		t.Fatalf("the PEM CA certificate was not found: %q", got)
	}
	dyn(m.CA.Name+".crt", own)
	if got := certSHA(); got != digest(own) {
		t.Fatalf("Dynamic/%s.crt was not preferred: %q", m.CA.Name, got)
	}
	// The set still verifies: Dynamic/ may hold any file.
	set, err := Derive(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDeriveRefuses checks what Derive and Load cannot describe.
func TestDeriveRefuses(t *testing.T) {
	ctx := context.Background()
	empty := t.TempDir()
	if _, err := Derive(ctx, empty); !errors.Is(err, ErrNotASet) {
		t.Errorf("Derive of an empty directory: %v", err)
	}
	if _, err := Load(ctx, empty); !errors.Is(err, ErrNotASet) || !errors.Is(err, ErrNoManifest) {
		t.Errorf("Load of an empty directory: %v", err)
	}
	absent := filepath.Join(empty, "absent")
	if _, err := Load(ctx, absent); !errors.Is(err, ErrNotASet) || !errors.Is(err, ErrNoManifest) ||
		err.Error() != "not a backup set: "+absent+" does not exist" {
		t.Errorf("Load of a missing directory: %v", err)
	}
	file := filepath.Join(empty, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, file); !errors.Is(err, ErrNotASet) || err.Error() != "not a backup set: "+file+" is not a directory" {
		t.Errorf("Load of a file: %v", err)
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string, m *Manifest)
		want   []error
	}{
		{"no database", func(t *testing.T, dir string, m *Manifest) {
			os.Remove(filepath.Join(dir, DatabaseDir, m.CA.Name+".db"))
		}, []error{ErrMissingFile}},
		{"database that is not SQLite", func(t *testing.T, dir string, m *Manifest) {
			os.WriteFile(filepath.Join(dir, DatabaseDir, m.CA.Name+".db"), []byte("not a database"), 0o600)
		}, []error{ErrDatabase}},
		{"database cut in half", func(t *testing.T, dir string, m *Manifest) {
			p := filepath.Join(dir, DatabaseDir, m.CA.Name+".db")
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()/2)
		}, []error{ErrTruncated, ErrDatabase}},
		{"no log generation", func(t *testing.T, dir string, m *Manifest) {
			for _, f := range m.Files {
				if f.Kind == KindLog {
					os.Remove(filepath.Join(dir, filepath.FromSlash(f.Path)))
				}
			}
		}, []error{ErrMissingFile}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, dir, m := rawSet(t, "Refused CA")
			os.WriteFile(filepath.Join(dir, "stray.txt"), []byte("x"), 0o600)
			c.damage(t, dir, m)
			_, err := Load(ctx, dir)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Load: %v; want a *VerifyError", err)
			}
			for _, w := range append(c.want, ErrExtraFile) {
				if !errors.Is(err, w) {
					t.Errorf("Load: %v; want %v among the problems", err, w)
				}
			}
		})
	}
	// A damaged manifest is not a reason to derive.
	src := newSource(t, "Manifest CA")
	dir := t.TempDir()
	src.fullBackup(dir)
	b, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	os.WriteFile(filepath.Join(dir, ManifestFile), append(b, ' ', '{'), 0o600)
	if s, err := Load(ctx, dir); s != nil || err == nil || errors.Is(err, ErrNoManifest) {
		t.Errorf("Load of a set with a damaged manifest: %v, %v", s, err)
	}
}

// TestAppendRefusesDerivedSet checks that a logs-only backup is not
// appended to a set without a manifest.
func TestAppendRefusesDerivedSet(t *testing.T) {
	src, dir, m := rawSet(t, "Append CA")
	set, err := Derive(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	if _, err := set.AppendIncremental(context.Background(), src.incremental(m.LastBackup().LastGen, 20)); !errors.Is(err, ErrNoManifest) {
		t.Fatalf("AppendIncremental to a derived set: %v", err)
	}
	sameDir(t, before, snapshotDir(t, dir))
}

// TestDerivedCorruptionCatalogue damages a set without a manifest in one
// way at a time and checks that Verify of the derived set reports exactly
// the sentinels for that damage.
func TestDerivedCorruptionCatalogue(t *testing.T) {
	ctx := context.Background()
	p := func(dir, rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }
	logs := func(m *Manifest) []string {
		var out []string
		for _, f := range m.Files {
			if f.Kind == KindLog {
				out = append(out, f.Path)
			}
		}
		slices.Sort(out)
		return out
	}
	dbRel := func(m *Manifest) string { return DatabaseDir + "/" + m.CA.Name + ".db" }
	write := func(t *testing.T, path string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	read := func(t *testing.T, path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	config := func(t *testing.T, dir, caName string) {
		b, err := json.Marshal(datadir.DefaultConfig(caName))
		if err != nil {
			t.Fatal(err)
		}
		write(t, p(dir, ConfigDir+"/"+ConfigFile), b)
	}
	other := newSource(t, "Other CA")
	other.write(400)
	cases := []struct {
		name string
		do   func(t *testing.T, dir string, src *source, m *Manifest)
		want []error
	}{
		{"extra file", func(t *testing.T, dir string, _ *source, _ *Manifest) {
			write(t, p(dir, "DataBase/notes.txt"), []byte("hello"))
		}, []error{ErrExtraFile}},
		{"second database", func(t *testing.T, dir string, _ *source, m *Manifest) {
			write(t, p(dir, "DataBase/Another.db"), read(t, p(dir, dbRel(m))))
		}, []error{ErrExtraFile}},
		{"log of another base", func(t *testing.T, dir string, _ *source, m *Manifest) {
			write(t, p(dir, "DataBase/xy00000001.log"), read(t, p(dir, logs(m)[0])))
		}, []error{ErrExtraFile}},
		{"left-over part file", func(t *testing.T, dir string, _ *source, _ *Manifest) {
			write(t, p(dir, "DataBase/ca000000FF.log.part"), []byte("half"))
		}, []error{ErrIncomplete}},
		{"middle log removed", func(t *testing.T, dir string, _ *source, m *Manifest) {
			l := logs(m)
			os.Remove(p(dir, l[len(l)/2]))
		}, []error{ErrMissingFile, ErrChainGap}},
		{"first log removed", func(t *testing.T, dir string, _ *source, m *Manifest) {
			os.Remove(p(dir, logs(m)[0]))
		}, []error{ErrChainGap}},
		{"log from another log set", func(t *testing.T, dir string, _ *source, m *Manifest) {
			l := logs(m)
			write(t, p(dir, l[len(l)/2]), read(t, other.genPath(1)))
		}, []error{ErrForeignLog}},
		{"logs swapped", func(t *testing.T, dir string, _ *source, m *Manifest) {
			l := logs(m)
			a, b := read(t, p(dir, l[0])), read(t, p(dir, l[1]))
			write(t, p(dir, l[0]), b)
			write(t, p(dir, l[1]), a)
		}, []error{ErrLogCorrupt, ErrLogOrder}},
		{"log record changed", func(t *testing.T, dir string, _ *source, m *Manifest) {
			l := logs(m)
			b := read(t, p(dir, l[1]))
			b[wal.HeaderSize+40] ^= 1
			write(t, p(dir, l[1]), b)
		}, []error{ErrLogCorrupt}},
		{"restore map missing", func(t *testing.T, dir string, _ *source, _ *Manifest) {
			os.Remove(p(dir, DatabaseDir+"/"+RestoreMapFile))
		}, []error{ErrMissingFile}},
		{"restore map of another database", func(t *testing.T, dir string, src *source, _ *Manifest) {
			rm := src.rmap
			rm.Entries = slices.Clone(rm.Entries)
			rm.Entries[0].Path = "/var/lib/certsrv/db/Other CA.db"
			b, err := rm.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			write(t, p(dir, DatabaseDir+"/"+RestoreMapFile), b)
		}, []error{ErrBadRestoreMap}},
		{"database with half a page appended", func(t *testing.T, dir string, _ *source, m *Manifest) {
			write(t, p(dir, dbRel(m)), append(read(t, p(dir, dbRel(m))), make([]byte, 2048)...))
		}, []error{ErrSizeMismatch}},
		{"database page damaged", func(t *testing.T, dir string, _ *source, m *Manifest) {
			b := read(t, p(dir, dbRel(m)))
			page := (len(b) / 4096 / 2) * 4096
			for i := page; i < page+4096; i++ {
				b[i] = 0xA5
			}
			write(t, p(dir, dbRel(m)), b)
		}, []error{ErrDatabase}},
		{"database of another CA", func(t *testing.T, dir string, src *source, m *Manifest) {
			os.Remove(p(dir, dbRel(m)))
			makeDB(t, p(dir, dbRel(m)), [16]byte{7}, other.log.Signature(), m.Backups[0].SnapshotLSN)
		}, []error{ErrForeignDatabase}},
		{"logs older than the snapshot", func(t *testing.T, dir string, src *source, m *Manifest) {
			os.Remove(p(dir, dbRel(m)))
			makeDB(t, p(dir, dbRel(m)), src.dbSig, src.log.Signature(), m.LastBackup().LastLSN+5)
		}, []error{ErrChainGap}},
		{"configuration of another CA", func(t *testing.T, dir string, _ *source, _ *Manifest) {
			config(t, dir, "Other CA")
		}, []error{ErrConfig}},
		{"configuration that does not parse", func(t *testing.T, dir string, _ *source, _ *Manifest) {
			write(t, p(dir, ConfigDir+"/"+ConfigFile), []byte(`{"ca_name": "x", "colour": "blue"}`))
		}, []error{ErrConfig}},
	}
	src, pristine, m := rawSet(t, "Damage CA")
	if n := len(logs(m)); n < 3 {
		t.Fatalf("the set has %d log generations; the cases need at least 3", n)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, dir, pristine)
			c.do(t, dir, src, m)
			set, err := Derive(ctx, dir)
			if err != nil {
				t.Fatalf("Derive: %v", err)
			}
			_, err = set.Verify(ctx)
			if err == nil {
				t.Fatal("damage not detected")
			}
			if got := matching(err); !slices.Equal(got, c.want) {
				t.Errorf("got sentinels %v, want %v; error: %v", got, c.want, err)
			}
			t.Logf("%v", err)
		})
	}
	t.Run("file changed after Derive", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, dir, pristine)
		set, err := Derive(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		crl := p(dir, DynamicDir+"/"+m.CA.Name+".crl")
		write(t, crl, append(read(t, crl), '!'))
		write(t, p(dir, DynamicDir+"/new.crl"), []byte("new"))
		_, err = set.Verify(ctx)
		if got := matching(err); !slices.Equal(got, []error{ErrExtraFile, ErrSizeMismatch}) {
			t.Errorf("got sentinels %v; error: %v", got, err)
		}
	})
}

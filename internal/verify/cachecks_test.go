package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

// TestCALevelDamageIsFound makes a CA whose database holds what no correct
// CA records — a certificate signed by another key and a CRL, properly
// signed, that lists a certificate that is not revoked and omits one that
// is — backs it up, and checks that the file-level checks pass and the CA
// checks catch both.
func TestCALevelDamageIsFound(t *testing.T) {
	ctx := context.Background()
	srv, c := startCA(t)
	serials := issue(t, c, 10, "ca-level")
	if _, err := c.Revoke(ctx, serials[0], "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	db := srv.CA.Store()

	// A certificate the CA did not sign, imported as if it had.
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caCert := srv.CA.Certificate()
	serial := big.NewInt(0x7A5E11)
	now := time.Now().UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "forged.example.com"},
		Issuer: caCert.Subject, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	forgedDER, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: caCert.Subject, SubjectKeyId: caCert.SubjectKeyId},
		&otherKey.PublicKey, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := x509.ParseCertificate(forgedDER)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ImportCertificate(ctx, store.NewCertificate{Serial: ca.SerialString(serial), DER: forgedDER,
		Subject: forged.Subject.String(), NotBefore: forged.NotBefore, NotAfter: forged.NotAfter}); err != nil {
		t.Fatal(err)
	}

	// A CRL signed with the CA's key whose entries are wrong.
	keyPEM, err := os.ReadFile(srv.Dir.CAKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ca.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.NewAuthority(srv.CA.Name(), caCert, key, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	last := uint64(0)
	for _, delta := range []bool{false, true} {
		if l, err := db.LastCRL(ctx, delta); err == nil {
			last = max(last, l.Number)
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	notRevoked, ok := new(big.Int).SetString(serials[1], 16)
	if !ok {
		t.Fatal(serials[1])
	}
	number := new(big.Int).SetUint64(last + 1)
	der, err := auth.CRL([]ca.RevokedEntry{{Serial: notRevoked, RevokedAt: now.Add(-time.Minute), Reason: ca.ReasonSuperseded}},
		number, nil, now, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordCRL(ctx, store.CRL{Number: last + 1, ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour), DER: der}); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "set")
	takeFull(t, srv, c, dir)
	rep, err := Verify(ctx, dir, Options{TempDir: t.TempDir()})
	if err == nil {
		t.Fatal("a set with a forged certificate and a wrong CRL verified")
	}
	for _, n := range layerChecks {
		if ch, _ := rep.Check(n); !ch.OK {
			t.Errorf("file check %q failed: %+v\n%s", n, ch, problemList(rep))
		}
	}
	if ch, _ := rep.Check(CheckCerts); ch.OK || problemFor(rep, ErrCertificate, "") == nil {
		t.Errorf("the forged certificate was not found: %+v\n%s", ch, problemList(rep))
	}
	var crlProblems int
	for _, p := range rep.Problems {
		if errors.Is(p, ErrCRL) {
			crlProblems++
		}
	}
	// serials[1] is listed but not revoked; serials[0] is revoked but not
	// listed.
	if crlProblems != 2 {
		t.Errorf("%d CRL problems, want 2\n%s", crlProblems, problemList(rep))
	}
	if ch, _ := rep.Check(CheckCounts); !ch.OK {
		t.Errorf("counts: %+v\n%s", ch, problemList(rep))
	}
	t.Logf("\n%s", problemList(rep))
}

// TestCACertificateOfAnotherCA swaps the CA certificate of a set without
// a manifest for another CA's of the same name: only the CA checks can
// tell.
func TestCACertificateOfAnotherCA(t *testing.T) {
	f := fixtures(t)
	dir := copySet(t, f.base)
	if err := os.Remove(filepath.Join(dir, backupset.ManifestFile)); err != nil {
		t.Fatal(err)
	}
	own, other := filesOf(t, f.base), filesOf(t, f.foreign)
	writeFile(t, local(dir, own.dynamic[".crt"]), readFile(t, local(f.foreign, other.dynamic[".crt"])))
	rep := mustFail(t, dir, ErrCertificate, "")
	if problemFor(rep, ErrCRL, own.dynamic[".crl"]) == nil {
		t.Errorf("the published CRL verified against another CA's certificate\n%s", problemList(rep))
	}
}

// TestCRLBeforeLaterRevocationsIsNotBlamed checks the base set's situation
// directly: its last CRL was published before one more revocation, and the
// CRL check passes.
func TestCRLBeforeLaterRevocationsIsNotBlamed(t *testing.T) {
	f := fixtures(t)
	rep, err := Verify(context.Background(), copySet(t, f.base), Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := rep.Check(CheckCRLs)
	if !ch.OK {
		t.Fatalf("CRLs: %+v", ch)
	}
	// The fixture revoked 4 certificates but the last full CRL was
	// published after 3 of them.
	if rep.Counts.Revoked != 4 || !strings.Contains(ch.Detail, "exactly the 3 revoked") {
		t.Errorf("revoked %d; CRL check: %s", rep.Counts.Revoked, ch.Detail)
	}
}

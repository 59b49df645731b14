package ca

import (
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSubordinateCAWithOpenSSL makes a subordinate request, has openssl
// sign it with a root made by NewRoot, installs the result, issues from
// the subordinate and has openssl verify the whole path.
func TestSubordinateCAWithOpenSSL(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	root := newTestRoot(t, "Example Root", KeyECDSAP384, "", now)
	rootCert := writeTemp(t, dir, "root.pem", certPEM(root.Cert))
	rootKey := filepath.Join(dir, "root.key")
	if err := WriteKeyFile(rootKey, root.Key, nil); err != nil {
		t.Fatal(err)
	}

	subKey := testKey(t, KeyRSA3072, 0)
	csrPEM, err := NewSubordinateCSR("Example Issuing CA", subKey)
	if err != nil {
		t.Fatal(err)
	}
	csrPath := writeTemp(t, dir, "sub.csr", csrPEM)
	if out := mustOpenSSL(t, "req", "-in", csrPath, "-noout", "-verify", "-text"); !strings.Contains(out, "CA:TRUE") || !strings.Contains(out, "Certificate Sign, CRL Sign") {
		t.Fatalf("subordinate request lacks the CA extensions:\n%s", out)
	}
	ext := writeTemp(t, dir, "ext.cnf", []byte("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"))
	subPath := filepath.Join(dir, "sub.pem")
	mustOpenSSL(t, "x509", "-req", "-in", csrPath, "-CA", rootCert, "-CAkey", rootKey, "-set_serial", "0x1234",
		"-days", "365", "-extfile", ext, "-out", subPath)
	certs, err := ParseCertsPEM(readFile(t, subPath))
	if err != nil {
		t.Fatal(err)
	}
	subCert := certs[0]
	if err := CheckSubordinateCert(subCert, subKey); err != nil {
		t.Fatalf("installed certificate refused: %v", err)
	}
	sub, err := NewAuthority("Example Issuing CA", subCert, subKey, []*x509.Certificate{root.Cert}, "http://127.0.0.1:8080")
	if err != nil {
		t.Fatalf("NewAuthority: %v", err)
	}
	leaf := issueFor(t, sub, profile(t, ProfileTLSServer), testKey(t, KeyECDSAP256, 1), csrSpec{CN: "www.example.com"}, now)
	leafPath := writeTemp(t, dir, "leaf.pem", certPEM(leaf))
	if out := mustOpenSSL(t, "verify", "-CAfile", rootCert, "-untrusted", subPath, leafPath); !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify through the subordinate: %s", out)
	}

	// The wrong key, a leaf certificate, and a chain that does not link up
	// are all refused.
	if err := CheckSubordinateCert(subCert, testKey(t, KeyRSA3072, 1)); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("wrong key: %v", err)
	}
	if err := CheckSubordinateCert(leaf, testKey(t, KeyECDSAP256, 1)); !errors.Is(err, ErrNotCA) {
		t.Errorf("leaf as CA: %v", err)
	}
	other := newTestRoot(t, "Other Root", KeyECDSAP256, "", now)
	if _, err := NewAuthority("Example Issuing CA", subCert, subKey, []*x509.Certificate{other.Cert}, ""); !errors.Is(err, ErrNotCA) {
		t.Errorf("broken chain: %v", err)
	}
	if _, err := NewAuthority("Example Issuing CA", subCert, subKey, nil, ""); !errors.Is(err, ErrNotCA) {
		t.Errorf("subordinate without chain: %v", err)
	}

	// A certificate the parent signed without cRLSign cannot sign CRLs.
	noCRL := writeTemp(t, dir, "nocrl.cnf", []byte("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\nsubjectKeyIdentifier=hash\n"))
	noCRLPath := filepath.Join(dir, "nocrl.pem")
	mustOpenSSL(t, "x509", "-req", "-in", csrPath, "-CA", rootCert, "-CAkey", rootKey, "-set_serial", "0x1235",
		"-days", "365", "-extfile", noCRL, "-out", noCRLPath)
	certs, err = ParseCertsPEM(readFile(t, noCRLPath))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSubordinateCert(certs[0], subKey); !errors.Is(err, ErrNotCA) {
		t.Errorf("no cRLSign: %v", err)
	}
}

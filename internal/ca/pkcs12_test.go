package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// newTestSubordinate returns an issuing CA under a root, both made here.
func newTestSubordinate(t *testing.T, now time.Time) (*Authority, *Authority) {
	t.Helper()
	root := newTestRoot(t, "P12 Root", KeyECDSAP384, "", now)
	key := testKey(t, KeyECDSAP256, 0)
	cert, err := signSubordinateForTest(root, key.Public(), "P12 Issuing CA", now)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := NewAuthority("P12 Issuing CA", cert, key, []*x509.Certificate{root.Cert}, "")
	if err != nil {
		t.Fatal(err)
	}
	return root, sub
}

func TestPKCS12RoundTrip(t *testing.T) {
	now := time.Now()
	root, sub := newTestSubordinate(t, now)
	data, err := ExportPKCS12(sub.Key, sub.Cert, sub.Chain, "backup password")
	if err != nil {
		t.Fatal(err)
	}
	key, cert, chain, err := ImportPKCS12(data, "backup password")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert.Raw, sub.Cert.Raw) || len(chain) != 1 || !bytes.Equal(chain[0].Raw, root.Cert.Raw) {
		t.Fatalf("certificates changed: %s, chain %d", cert.Subject, len(chain))
	}
	if err := KeyMatchesCert(key, sub.Cert); err != nil {
		t.Fatalf("restored key: %v", err)
	}
	// Restoring into a CA whose certificate is a different one is refused.
	if err := KeyMatchesCert(key, root.Cert); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("restore onto another CA: %v", err)
	}
	if _, _, _, err := ImportPKCS12(data, "wrong password"); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, _, _, err := ImportPKCS12(data[:len(data)/2], "backup password"); !errors.Is(err, ErrMalformedPKCS12) {
		t.Fatalf("truncated file: %v", err)
	}
	if _, _, _, err := ImportPKCS12(make([]byte, MaxPKCS12Size+1), "x"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized file: %v", err)
	}
	if _, err := ExportPKCS12(sub.Key, sub.Cert, nil, ""); !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("empty password: %v", err)
	}
	if _, err := ExportPKCS12(root.Key, sub.Cert, nil, "pw"); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("export with the wrong key: %v", err)
	}
	// A file whose key belongs to none of its certificates (which the
	// library will happily write) is refused on import.
	bad, err := pkcs12.Modern2023.Encode(root.Key, sub.Cert, nil, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ImportPKCS12(bad, "pw"); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("mismatched file: %v", err)
	}
}

// TestPKCS12OpenSSL has openssl read the file ExportPKCS12 writes and
// report the algorithms, and imports a file openssl wrote with the chain
// in a different order.
func TestPKCS12OpenSSL(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	root, sub := newTestSubordinate(t, now)
	data, err := ExportPKCS12(sub.Key, sub.Cert, sub.Chain, "s3cret pass")
	if err != nil {
		t.Fatal(err)
	}
	p12 := writeTemp(t, dir, "ca.p12", data)
	out := mustOpenSSL(t, "pkcs12", "-in", p12, "-info", "-nokeys", "-passin", "pass:s3cret pass")
	for _, want := range []string{"MAC: sha256", "Iteration 600000", "PBES2, PBKDF2, AES-256-CBC", "subject=CN = P12 Issuing CA", "subject=CN = P12 Root"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl pkcs12 -info lacks %q:\n%s", want, out)
		}
	}
	if out, err := runOpenSSL(t, "pkcs12", "-in", p12, "-info", "-nokeys", "-passin", "pass:wrong"); err == nil {
		t.Errorf("openssl accepted a wrong password:\n%s", out)
	}
	// The key openssl extracts is the CA key.
	keyOut := mustOpenSSL(t, "pkcs12", "-in", p12, "-nocerts", "-nodes", "-passin", "pass:s3cret pass")
	k, err := ParsePrivateKey([]byte(keyOut), nil)
	if err != nil || KeyMatchesCert(k, sub.Cert) != nil {
		t.Fatalf("key from openssl: %v", err)
	}

	// A file written by openssl pkcs12 -export: the import finds the
	// certificate that matches the key and returns the root as the chain.
	keyPath := filepath.Join(dir, "sub.key")
	if err := WriteKeyFile(keyPath, sub.Key, nil); err != nil {
		t.Fatal(err)
	}
	subPath := writeTemp(t, dir, "sub.pem", certPEM(sub.Cert))
	rootPath := writeTemp(t, dir, "root.pem", certPEM(root.Cert))
	osslP12 := filepath.Join(dir, "openssl.p12")
	mustOpenSSL(t, "pkcs12", "-export", "-inkey", keyPath, "-in", subPath, "-certfile", rootPath,
		"-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha256", "-passout", "pass:pw", "-out", osslP12)
	key, cert, chain, err := ImportPKCS12(readFile(t, osslP12), "pw")
	if err != nil {
		t.Fatalf("import openssl file: %v", err)
	}
	if !bytes.Equal(cert.Raw, sub.Cert.Raw) || len(chain) != 1 || !bytes.Equal(chain[0].Raw, root.Cert.Raw) || KeyMatchesCert(key, cert) != nil {
		t.Fatalf("openssl file: leaf %s chain %d", cert.Subject, len(chain))
	}
}

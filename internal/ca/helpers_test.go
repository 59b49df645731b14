package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const opensslPath = "/usr/bin/openssl"

// testKeys caches generated keys per type and slot, because RSA-4096
// generation takes seconds and many tests need one key of every type.
var testKeys struct {
	sync.Mutex
	m map[string]crypto.Signer
}

// TestMain generates the cached keys of every type concurrently before
// the tests run, which keeps the RSA generation off the critical path.
func TestMain(m *testing.M) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	keys := map[string]crypto.Signer{}
	var genErr error
	for slot := 0; slot < 2; slot++ {
		for _, kt := range KeyTypes() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, err := GenerateKey(kt)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					genErr = err
					return
				}
				keys[fmt.Sprintf("%s/%d", kt, slot)] = k
			}()
		}
	}
	wg.Wait()
	if genErr != nil {
		fmt.Fprintln(os.Stderr, "generate test keys:", genErr)
		os.Exit(1)
	}
	testKeys.m = keys
	os.Exit(m.Run())
}

func testKey(t testing.TB, kt KeyType, slot int) crypto.Signer {
	t.Helper()
	testKeys.Lock()
	defer testKeys.Unlock()
	if testKeys.m == nil {
		testKeys.m = map[string]crypto.Signer{}
	}
	id := fmt.Sprintf("%s/%d", kt, slot)
	if k, ok := testKeys.m[id]; ok {
		return k
	}
	k, err := GenerateKey(kt)
	if err != nil {
		t.Fatalf("GenerateKey(%s): %v", kt, err)
	}
	testKeys.m[id] = k
	return k
}

// newTestRoot makes a root Authority with a key of type kt.
func newTestRoot(t testing.TB, name string, kt KeyType, baseURL string, now time.Time) *Authority {
	t.Helper()
	key := testKey(t, kt, 0)
	cert, err := NewRoot(name, key, 10*365*24*time.Hour, now)
	if err != nil {
		t.Fatalf("NewRoot(%s): %v", kt, err)
	}
	a, err := NewAuthority(name, cert, key, nil, baseURL)
	if err != nil {
		t.Fatalf("NewAuthority: %v", err)
	}
	return a
}

// csrSpec describes a test request.
type csrSpec struct {
	CN     string
	DNS    []string
	IPs    []string
	Emails []string
	URIs   []string
	Extra  []pkix.Extension
}

// makeCSR returns the DER of a request signed by key.
func makeCSR(t testing.TB, key crypto.Signer, s csrSpec) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: s.CN},
		DNSNames:        s.DNS,
		EmailAddresses:  s.Emails,
		ExtraExtensions: s.Extra,
	}
	for _, ip := range s.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	for _, u := range s.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

func profile(t testing.TB, name string) Profile {
	t.Helper()
	p, err := FindProfile(DefaultProfiles(), name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// issueFor checks a request against p and issues it, failing the test on
// any error.
func issueFor(t testing.TB, a *Authority, p Profile, key crypto.Signer, s csrSpec, now time.Time) *x509.Certificate {
	t.Helper()
	csr, err := CheckCSR(makeCSR(t, key, s), p)
	if err != nil {
		t.Fatalf("CheckCSR: %v", err)
	}
	serial, err := NewSerial()
	if err != nil {
		t.Fatal(err)
	}
	der, err := a.Issue(csr, p, serial, now)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse issued certificate: %v", err)
	}
	return c
}

// runOpenSSL runs openssl with args and returns its combined output and
// the run error (non-nil for a non-zero exit).
func runOpenSSL(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, opensslPath, args...).CombinedOutput()
	return string(out), err
}

// mustOpenSSL runs openssl and fails the test if it exits non-zero.
func mustOpenSSL(t testing.TB, args ...string) string {
	t.Helper()
	out, err := runOpenSSL(t, args...)
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
	return out
}

// writeTemp writes data to a new file in dir and returns its path.
func writeTemp(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func certPEM(c *x509.Certificate) []byte { return EncodeCertsPEM(c) }

func crlPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signSubordinateForTest signs a CA certificate for pub under parent, the
// way a parent CA would answer a subordinate request.
func signSubordinateForTest(parent *Authority, pub crypto.PublicKey, name string, now time.Time) (*x509.Certificate, error) {
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.Cert, pub, parent.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

package service

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
)

const opensslPath = "/usr/bin/openssl"

// testKeys caches subject keys per type and slot: RSA-4096 generation takes
// seconds and many tests need one key of every type.
var testKeys struct {
	sync.Mutex
	m map[string]crypto.Signer
}

func testKey(t testing.TB, kt ca.KeyType, slot int) crypto.Signer {
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
	k, err := ca.GenerateKey(kt)
	if err != nil {
		t.Fatalf("GenerateKey(%s): %v", kt, err)
	}
	testKeys.m[id] = k
	return k
}

// csrSpec describes a test request.
type csrSpec struct {
	CN     string
	DNS    []string
	IPs    []string
	Emails []string
}

// makeCSR returns the PEM of a request signed by key.
func makeCSR(t testing.TB, key crypto.Signer, s csrSpec) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: s.CN},
		DNSNames:       s.DNS,
		EmailAddresses: s.Emails,
	}
	for _, ip := range s.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// serverCSR is a valid tls-server request for host with a fresh P-256 key.
func serverCSR(t testing.TB, host string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return makeCSR(t, k, csrSpec{CN: host, DNS: []string{host}})
}

// rsaKey generates an RSA key of any size, for keys the CA must refuse.
func rsaKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type caOption func(*InitOptions)

func withConfig(f func(*datadir.Config)) caOption {
	return func(o *InitOptions) {
		if o.Config == nil {
			c := datadir.DefaultConfig(DefaultCAName)
			o.Config = &c
		}
		f(o.Config)
	}
}

// pendingProfiles configures the default profiles plus "manual", a
// tls-server profile whose requests wait for an officer.
func pendingProfiles() caOption {
	return withConfig(func(c *datadir.Config) {
		c.Profiles = []byte(`[
		 {"name":"tls-server","auto_issue":true,"validity":"90d","ext_key_usage":["serverAuth"],
		  "allowed_key_types":["ecdsa-p256","ecdsa-p384","rsa-2048","rsa-3072","rsa-4096","ed25519"],
		  "san":{"dns":true,"ip":true,"require_dns_or_ip":true,"copy_cn":true,"max":100}},
		 {"name":"tls-client","auto_issue":true,"validity":"365d","ext_key_usage":["clientAuth"],
		  "allowed_key_types":["ecdsa-p256","ecdsa-p384","rsa-2048","rsa-3072","rsa-4096","ed25519"],
		  "san":{"dns":true,"email":true,"uri":true,"max":10}},
		 {"name":"manual","auto_issue":false,"validity":"30d","ext_key_usage":["serverAuth"],
		  "allowed_key_types":["ecdsa-p256"],
		  "san":{"dns":true,"require_dns_or_ip":true,"copy_cn":true,"max":10}}]`)
	})
}

// initDir initializes a CA in a fresh directory and returns it.
func initDir(t testing.TB, opts ...caOption) datadir.Dir {
	t.Helper()
	dir, err := datadir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := InitOptions{Name: "Test CA"}
	for _, f := range opts {
		f(&o)
	}
	if _, err := Init(context.Background(), dir, o); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return dir
}

// openCA opens the CA in dir and closes it at cleanup.
func openCA(t testing.TB, dir datadir.Dir) *CA {
	t.Helper()
	c, err := Open(context.Background(), dir, OpenOptions{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newCA initializes and opens a CA.
func newCA(t testing.TB, opts ...caOption) *CA {
	t.Helper()
	return openCA(t, initDir(t, opts...))
}

// isCode reports whether err is an *apierr.Error with code c.
func isCode(err error, c apierr.Code) bool {
	return errors.Is(err, &apierr.Error{Code: c})
}

func wantCode(t testing.TB, err error, c apierr.Code) {
	t.Helper()
	if !isCode(err, c) {
		t.Fatalf("err = %v (code %s), want code %s", err, apierr.Of(err).Reason, c.Reason)
	}
}

// lastLSN is the database's log position, to prove a refused call wrote
// nothing.
func lastLSN(c *CA) uint64 { return c.Store().LastLSN() }

// runOpenSSL runs openssl and returns its combined output and exit error.
func runOpenSSL(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, opensslPath, args...).CombinedOutput()
	return string(out), err
}

func mustOpenSSL(t testing.TB, args ...string) string {
	t.Helper()
	out, err := runOpenSSL(t, args...)
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
	return out
}

// writeFile writes data into dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func parseCert(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeClock is a settable clock for CRL schedule tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/store"
)

func TestInitCreatesLayout(t *testing.T) {
	dir := initDir(t)
	for _, p := range []string{dir.ConfigPath(), dir.CAKeyPath(), dir.CACertPath(), dir.DBPath("Test CA"),
		filepath.Join(dir.SysDir(), "ca.chk"), filepath.Join(dir.LogDir(), "ca00000001.log"),
		filepath.Join(dir.PublishDir(), "Test CA.crt"), filepath.Join(dir.PublishDir(), "Test CA.crl"),
		filepath.Join(dir.PublishDir(), "Test CA+.crl"),
		filepath.Join(dir.TLSDir(), "trust.crt"), filepath.Join(dir.TLSDir(), "trust.key"),
		filepath.Join(dir.TLSDir(), "server.crt"), filepath.Join(dir.TLSDir(), "server.key"),
		filepath.Join(dir.AdminDir(), "client.crt"), filepath.Join(dir.AdminDir(), "client.key"),
		filepath.Join(dir.AdminDir(), "trust.crt"), filepath.Join(dir.AdminDir(), "server")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("missing %s: %v", p, err)
		}
	}
	if _, err := os.Stat(dir.CSRPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root CA has a request file: %v", err)
	}
	for _, p := range []string{dir.CAKeyPath(), filepath.Join(dir.TLSDir(), "trust.key"), filepath.Join(dir.TLSDir(), "server.key"), filepath.Join(dir.AdminDir(), "client.key")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	keyPEM, _ := os.ReadFile(dir.CAKeyPath())
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("CA key without passphrase is not an unencrypted PKCS#8 block")
	}

	cfg, err := dir.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CAName != "Test CA" || cfg.KeyType != "ecdsa-p256" || cfg.Listen != "127.0.0.1:8443" {
		t.Errorf("config = %+v", cfg)
	}
	addr, _ := os.ReadFile(filepath.Join(dir.AdminDir(), "server"))
	if strings.TrimSpace(string(addr)) != cfg.Listen {
		t.Errorf("admin/server = %q, want %q", addr, cfg.Listen)
	}

	caCertPEM, _ := os.ReadFile(dir.CACertPath())
	caCerts, err := ca.ParseCertsPEM(caCertPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir.PublishDir(), "Test CA.crt"))
	if !bytes.Equal(pub, caCerts[0].Raw) {
		t.Error("published CA certificate is not keys/ca.crt in DER")
	}
	if caCerts[0].Subject.CommonName != "Test CA" || !caCerts[0].IsCA {
		t.Errorf("CA certificate subject %q IsCA %v", caCerts[0].Subject, caCerts[0].IsCA)
	}

	// The admin credential verifies against tls/trust.crt for client auth.
	cred, err := ca.ReadCredentialDir(dir.AdminDir())
	if err != nil {
		t.Fatal(err)
	}
	trustPEM, _ := os.ReadFile(filepath.Join(dir.TLSDir(), "trust.crt"))
	trust, err := ca.ParseCertsPEM(trustPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !cred.Trust.Equal(trust[0]) {
		t.Error("admin/trust.crt differs from tls/trust.crt")
	}
	pool := x509.NewCertPool()
	pool.AddCert(trust[0])
	if _, err := cred.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin credential does not verify for clientAuth: %v", err)
	}
	if cred.Cert.Subject.CommonName != AdminPrincipal {
		t.Errorf("admin credential CN %q", cred.Cert.Subject.CommonName)
	}
	serverPEM, _ := os.ReadFile(filepath.Join(dir.TLSDir(), "server.crt"))
	server, err := ca.ParseCertsPEM(serverPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := server[0].VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := server[0].VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if _, err := server[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("server certificate does not verify: %v", err)
	}

	c := openCA(t, dir)
	roles, err := c.Authorize(context.Background(), AdminPrincipal, Fingerprint(cred.Cert.Raw))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(roles, AllRoles()) {
		t.Errorf("admin roles = %v, want %v", roles, AllRoles())
	}
	full, err := c.Store().LastCRL(context.Background(), false)
	if err != nil || full.Number != 1 {
		t.Errorf("first full CRL = %d, %v; want number 1", full.Number, err)
	}
	delta, err := c.Store().LastCRL(context.Background(), true)
	if err != nil || delta.Number != 2 || delta.BaseNumber != 1 {
		t.Errorf("first delta CRL = %d base %d, %v; want 2 base 1", delta.Number, delta.BaseNumber, err)
	}
}

func TestInitRefusesInitializedDir(t *testing.T) {
	dir := initDir(t)
	_, err := Init(context.Background(), dir, InitOptions{Name: "Test CA"})
	if !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("second Init = %v, want ErrAlreadyInitialized", err)
	}
	// A directory holding only a CA key (an interrupted init) is refused too.
	d2, _ := datadir.New(t.TempDir())
	if err := os.MkdirAll(d2.KeysDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, d2.KeysDir(), "ca.key", []byte("x"))
	if _, err := Init(context.Background(), d2, InitOptions{}); !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("Init over a stray key = %v, want ErrAlreadyInitialized", err)
	}
	if _, err := os.Stat(d2.ConfigPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused Init wrote a configuration")
	}
}

func TestInitRejectsBadOptions(t *testing.T) {
	for name, o := range map[string]InitOptions{
		"bad name":     {Name: "a/b"},
		"bad key type": {KeyType: "dsa-1024"},
		"short root":   {Validity: time.Minute},
		"bad base URL": {Config: func() *datadir.Config { c := datadir.DefaultConfig("x"); c.BaseURL = "ftp://host/"; return &c }()},
		"bad profiles": {Config: func() *datadir.Config {
			c := datadir.DefaultConfig("x")
			c.Profiles = []byte(`[{"name":"Bad Name"}]`)
			return &c
		}()},
	} {
		d, _ := datadir.New(t.TempDir())
		_, err := Init(context.Background(), d, o)
		if !errors.Is(err, ErrBadOptions) {
			t.Errorf("%s: Init = %v, want ErrBadOptions", name, err)
		}
		if _, serr := os.Stat(d.CAKeyPath()); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%s: refused Init wrote a CA key", name)
		}
		if d.Initialized() {
			t.Errorf("%s: refused Init left a configuration", name)
		}
	}
}

func TestInitEncryptedKey(t *testing.T) {
	pass := []byte("a CA passphrase")
	dir := initDir(t, func(o *InitOptions) { o.Passphrase = pass })
	keyPEM, _ := os.ReadFile(dir.CAKeyPath())
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatalf("CA key with passphrase is not encrypted PKCS#8")
	}
	ctx := context.Background()
	_, err := Open(ctx, dir, OpenOptions{})
	if !errors.Is(err, ca.ErrPassphraseRequired) {
		t.Fatalf("Open without passphrase = %v, want ca.ErrPassphraseRequired", err)
	}
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != dir.CAKeyPath() {
		t.Errorf("error does not name the key file: %v", err)
	}
	if _, err := Open(ctx, dir, OpenOptions{Passphrase: []byte("wrong")}); !errors.Is(err, ca.ErrPassphrase) {
		t.Fatalf("Open with a wrong passphrase = %v, want ca.ErrPassphrase", err)
	}
	c, err := Open(ctx, dir, OpenOptions{Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Submit(ctx, "alice", serverCSR(t, "enc.example.test"), "")
	if err != nil || r.Certificate == nil {
		t.Fatalf("Submit with the decrypted key: %v", err)
	}
}

// TestInitKeyTypes runs a CA of each other key type through issuance and
// CRL publication, checked with openssl.
func TestInitKeyTypes(t *testing.T) {
	for _, kt := range []ca.KeyType{ca.KeyECDSAP384, ca.KeyRSA2048, ca.KeyEd25519} {
		t.Run(string(kt), func(t *testing.T) {
			dir := initDir(t, func(o *InitOptions) { o.KeyType = kt })
			c := openCA(t, dir)
			if c.Config().KeyType != string(kt) {
				t.Errorf("config key type %q", c.Config().KeyType)
			}
			r, err := c.Submit(context.Background(), "alice", serverCSR(t, "kt.example.test"), "")
			if err != nil {
				t.Fatal(err)
			}
			if err := parseCert(t, r.Certificate.DER).CheckSignatureFrom(c.Certificate()); err != nil {
				t.Error(err)
			}
			if _, err := c.Revoke(context.Background(), r.Certificate.Serial, "keyCompromise", time.Time{}); err != nil {
				t.Fatal(err)
			}
			info, err := c.PublishCRL(context.Background(), false)
			if err != nil {
				t.Fatal(err)
			}
			out := mustOpenSSL(t, "crl", "-inform", "DER", "-in", info.Path, "-noout", "-text")
			if !strings.Contains(out, r.Certificate.Serial) {
				t.Errorf("openssl crl output lacks serial %s:\n%s", r.Certificate.Serial, out)
			}
		})
	}
}

// subordinateCert signs, with parent, a CA certificate for pub, valid
// from an hour ago for a year.
func subordinateCert(t *testing.T, parent *x509.Certificate, parentKey any, name string, pub any, isCA bool) *x509.Certificate {
	t.Helper()
	return subordinateCertFor(t, parent, parentKey, name, pub, isCA, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
}

// subordinateCertFor is subordinateCert with a given validity; edits
// change the template before it is signed.
func subordinateCertFor(t *testing.T, parent *x509.Certificate, parentKey any, name string, pub any, isCA bool, notBefore, notAfter time.Time, edits ...func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	for _, edit := range edits {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return parseCert(t, der)
}

func TestInitSubordinate(t *testing.T) {
	ctx := context.Background()
	dir := initDir(t, func(o *InitOptions) { o.Name = "Sub CA"; o.Subordinate = true })
	if _, err := os.Stat(dir.CACertPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("subordinate has a CA certificate before install")
	}
	csr := subordinateCSR(t, dir)
	if csr.Subject.CommonName != "Sub CA" {
		t.Errorf("request subject %q", csr.Subject)
	}
	if _, err := Open(ctx, dir, OpenOptions{}); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Open before install = %v, want ErrNotInstalled", err)
	}

	rootKey := testKey(t, ca.KeyECDSAP256, 7)
	root, err := ca.NewRoot("Parent Root", rootKey, 24*time.Hour*365, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherKey := testKey(t, ca.KeyECDSAP256, 8)
	wrong := subordinateCert(t, root, rootKey, "Sub CA", otherKey.Public(), true)
	err = InstallCert(ctx, dir, ca.EncodeCertsPEM(wrong), ca.EncodeCertsPEM(root))
	if !errors.Is(err, ErrKeyMismatch) || !errors.Is(err, ca.ErrKeyMismatch) {
		t.Fatalf("InstallCert for another key = %v, want ErrKeyMismatch", err)
	}
	notCA := subordinateCert(t, root, rootKey, "Sub CA", csr.PublicKey, false)
	if err := InstallCert(ctx, dir, ca.EncodeCertsPEM(notCA), ca.EncodeCertsPEM(root)); !errors.Is(err, ca.ErrNotCA) {
		t.Fatalf("InstallCert of a non-CA certificate = %v, want ca.ErrNotCA", err)
	}
	now := time.Now()
	for what, c := range map[string]*x509.Certificate{
		"expired":       subordinateCertFor(t, root, rootKey, "Sub CA", csr.PublicKey, true, now.Add(-48*time.Hour), now.Add(-24*time.Hour)),
		"not yet valid": subordinateCertFor(t, root, rootKey, "Sub CA", csr.PublicKey, true, now.Add(24*time.Hour), now.Add(48*time.Hour)),
	} {
		if err := InstallCert(ctx, dir, ca.EncodeCertsPEM(c), ca.EncodeCertsPEM(root)); !errors.Is(err, ErrCertNotValidNow) {
			t.Fatalf("InstallCert of an %s certificate = %v, want ErrCertNotValidNow", what, err)
		}
	}
	good := subordinateCert(t, root, rootKey, "Sub CA", csr.PublicKey, true)
	if err := InstallCert(ctx, dir, ca.EncodeCertsPEM(good), nil); !errors.Is(err, ca.ErrNotCA) {
		t.Fatalf("InstallCert without the chain to a root = %v, want ca.ErrNotCA", err)
	}
	if _, err := os.Stat(dir.CACertPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused InstallCert wrote keys/ca.crt")
	}
	if err := InstallCert(ctx, dir, good.Raw, ca.EncodeCertsPEM(root)); err != nil {
		t.Fatalf("InstallCert (DER certificate, PEM chain): %v", err)
	}
	if err := InstallCert(ctx, dir, good.Raw, ca.EncodeCertsPEM(root)); !errors.Is(err, ErrAlreadyInstalled) {
		t.Fatalf("second InstallCert = %v, want ErrAlreadyInstalled", err)
	}

	c := openCA(t, dir)
	if len(c.Chain()) != 1 || !c.Chain()[0].Equal(root) {
		t.Fatalf("chain = %v", c.Chain())
	}
	if pub, err := os.ReadFile(filepath.Join(dir.PublishDir(), "Sub CA.crt")); err != nil || !bytes.Equal(pub, good.Raw) {
		t.Errorf("Open did not publish the installed certificate: %v", err)
	}
	r, err := c.Submit(ctx, "alice", serverCSR(t, "sub.example.test"), "")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	inter.AddCert(good)
	if _, err := parseCert(t, r.Certificate.DER).Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "sub.example.test"}); err != nil {
		t.Errorf("certificate from the subordinate does not chain to the parent root: %v", err)
	}

	// The first CRLs come from the publisher's first pass.
	if _, err := c.Store().LastCRL(ctx, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("subordinate has a CRL before the publisher ran: %v", err)
	}
	if _, stop := c.publishDue(ctx, true); stop {
		t.Fatal("publisher stopped")
	}
	for _, name := range []string{"Sub CA.crl", "Sub CA+.crl"} {
		if _, err := os.Stat(filepath.Join(dir.PublishDir(), name)); err != nil {
			t.Errorf("publisher did not publish %s: %v", name, err)
		}
	}
}

// A subordinate whose parent constrained its names refuses a request for
// a name outside them at submission (PolicyDenied, nothing recorded),
// automatic or waiting for an officer, and issues inside them.
func TestSubordinateNameConstraints(t *testing.T) {
	ctx := context.Background()
	dir := initDir(t, func(o *InitOptions) { o.Name = "Sub CA"; o.Subordinate = true }, pendingProfiles())
	csr := subordinateCSR(t, dir)
	rootKey := testKey(t, ca.KeyECDSAP256, 7)
	root, err := ca.NewRoot("Parent Root", rootKey, 24*time.Hour*365, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	constrained := subordinateCertFor(t, root, rootKey, "Sub CA", csr.PublicKey, true, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour),
		func(c *x509.Certificate) {
			c.PermittedDNSDomainsCritical, c.PermittedDNSDomains = true, []string{"example.test"}
		})
	if err := InstallCert(ctx, dir, constrained.Raw, ca.EncodeCertsPEM(root)); err != nil {
		t.Fatal(err)
	}
	c := openCA(t, dir)
	for _, profile := range []string{"tls-server", "manual"} {
		_, err := c.Submit(ctx, "alice", serverCSR(t, "www.example.org"), profile)
		if apierr.Of(err) != apierr.PolicyDenied || !errors.Is(err, ca.ErrSANNotAllowed) ||
			!strings.Contains(err.Error(), `"www.example.org"`) || !strings.Contains(err.Error(), "name constraints") {
			t.Errorf("profile %s: a name outside the parent's constraints: %v, want PolicyDenied naming it", profile, err)
		}
	}
	if n, err := c.Store().Counts(ctx); err != nil || n.Requests != 0 {
		t.Errorf("refused requests were recorded: %+v, %v", n, err)
	}
	for _, profile := range []string{"tls-server", "manual"} {
		if _, err := c.Submit(ctx, "alice", serverCSR(t, "www.example.test"), profile); err != nil {
			t.Errorf("profile %s: a name inside the constraints: %v", profile, err)
		}
	}
}

// subordinateCSR reads and parses the request init wrote for a
// subordinate CA in dir.
func subordinateCSR(t *testing.T, dir datadir.Dir) *x509.CertificateRequest {
	t.Helper()
	csrPEM, err := os.ReadFile(dir.CSRPath())
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		t.Fatalf("%s holds no PEM block", dir.CSRPath())
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// Package wiretest holds what the client library's tests need besides the
// real server: a PKI made at test time (foreign trust anchors, credentials
// directories, certificate requests), and a stand-in endpoint for the
// stream-integrity edge cases a correct server never produces — a real TLS
// 1.3 listener on 127.0.0.1 that requires a client certificate, with a
// Backup service that serves files from a script (short streams, gaps,
// overlaps, errors after data) and records what it receives. It is not a
// CA; every other behaviour is tested against the real server.
package wiretest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a trust anchor with the server certificate it signed.
type PKI struct {
	Anchor     *x509.Certificate
	AnchorKey  *ecdsa.PrivateKey
	ServerCert *x509.Certificate
	ServerKey  *ecdsa.PrivateKey
}

// NewPKI makes an ECDSA P-256 trust anchor named name and a server
// certificate for 127.0.0.1 and localhost.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	p := &PKI{}
	p.AnchorKey = newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	p.Anchor = sign(t, tmpl, tmpl, &p.AnchorKey.PublicKey, p.AnchorKey)
	p.ServerKey = newKey(t)
	p.ServerCert = sign(t, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "certsrv server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}, p.Anchor, &p.ServerKey.PublicKey, p.AnchorKey)
	return p
}

// IssueClient signs a client certificate for principal and pub.
func (p *PKI) IssueClient(t testing.TB, principal string, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	c, err := p.issueClient(principal, pub)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *PKI) issueClient(principal string, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: principal},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, p.Anchor, pub, p.AnchorKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// WriteCreds writes a credentials directory for principal into dir
// (created if missing): client.crt, client.key (0600), trust.crt, and, when
// server is not empty, the server file.
func (p *PKI) WriteCreds(t testing.TB, dir, principal, server string) {
	t.Helper()
	key := newKey(t)
	WriteCredential(t, dir, key, p.IssueClient(t, principal, &key.PublicKey), p.Anchor)
	if server != "" {
		write(t, filepath.Join(dir, "server"), []byte(server+"\n"), 0o644)
	}
}

// WriteCredential writes a credentials directory from its parts into dir
// (created if missing): client.key (0600), client.crt and trust.crt.
func WriteCredential(t testing.TB, dir string, key *ecdsa.PrivateKey, cert, anchor *x509.Certificate) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "client.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	write(t, filepath.Join(dir, "client.crt"), PEM(cert), 0o644)
	write(t, filepath.Join(dir, "trust.crt"), PEM(anchor), 0o644)
}

// PEM encodes a certificate.
func PEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// NewCSR makes a PKCS#10 request, PEM, for CN=name with a DNS SAN name.
func NewCSR(t testing.TB, name string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: name},
		DNSNames: []string{name},
	}, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func write(t testing.TB, path string, b []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, perm); err != nil {
		t.Fatal(err)
	}
}

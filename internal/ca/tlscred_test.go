package ca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveOnce accepts one TLS connection on a loopback listener, and writes
// the client's certificate CN back to it. It returns the address and a
// channel with the server-side handshake result.
func serveOnce(t *testing.T, cfg *tls.Config) (string, <-chan error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		_, err = io.WriteString(tc, tc.ConnectionState().PeerCertificates[0].Subject.CommonName+"\n")
		done <- err
	}()
	return ln.Addr().String(), done
}

func TestTLSCredentials(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	anchor, anchorKey, err := NewTrustAnchor("Example CA admin trust", now)
	if err != nil {
		t.Fatal(err)
	}
	if !anchor.IsCA || anchor.MaxPathLen != 0 || !anchor.MaxPathLenZero {
		t.Fatalf("trust anchor: CA %v pathlen %d zero %v", anchor.IsCA, anchor.MaxPathLen, anchor.MaxPathLenZero)
	}
	srvCert, srvKey, err := IssueServerCert(anchor, anchorKey, []string{"127.0.0.1", "localhost"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(srvCert.IPAddresses) != 1 || len(srvCert.DNSNames) != 1 || srvCert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("server cert: IPs %v DNS %v EKU %v", srvCert.IPAddresses, srvCert.DNSNames, srvCert.ExtKeyUsage)
	}
	cred, err := NewClientCredential(anchor, anchorKey, "admin", 365*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	credDir := filepath.Join(dir, "admin")
	if err := WriteCredentialDir(credDir, cred); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]fs.FileMode{"": 0o700 | fs.ModeDir, CredentialKeyFile: 0o600, CredentialCertFile: 0o644, CredentialTrustFile: 0o644} {
		fi, err := os.Stat(filepath.Join(credDir, name))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%q: mode %v, %v; want %v", name, fi.Mode(), err, mode)
		}
	}
	back, err := ReadCredentialDir(credDir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Cert.Subject.CommonName != "admin" || !back.Trust.Equal(anchor) {
		t.Fatalf("read back: %s", back.Cert.Subject)
	}

	// openssl agrees on the purposes.
	trustPath := filepath.Join(credDir, CredentialTrustFile)
	srvPath := writeTemp(t, dir, "server.pem", certPEM(srvCert))
	for _, c := range [][2]string{{filepath.Join(credDir, CredentialCertFile), "sslclient"}, {srvPath, "sslserver"}} {
		if out := mustOpenSSL(t, "verify", "-CAfile", trustPath, "-purpose", c[1], c[0]); !strings.Contains(out, ": OK") {
			t.Errorf("openssl verify %s: %s", c[1], out)
		}
	}

	// A real TLS 1.3 handshake on loopback with mutual authentication.
	pool := x509.NewCertPool()
	pool.AddCert(anchor)
	srvCfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey, Leaf: srvCert}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	clientCfg := func(c *Credential) *tls.Config {
		roots := x509.NewCertPool()
		roots.AddCert(back.Trust)
		return &tls.Config{
			MinVersion:   tls.VersionTLS13,
			RootCAs:      roots,
			Certificates: []tls.Certificate{{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}},
		}
	}
	addr, done := serveOnce(t, srvCfg)
	conn, err := tls.Dial("tcp", addr, clientCfg(back))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	got, err := io.ReadAll(conn)
	conn.Close()
	if err != nil || string(got) != "admin\n" {
		t.Fatalf("server saw %q, %v", got, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
	// The server name "localhost" verifies too.
	addr, done = serveOnce(t, srvCfg)
	_, port, _ := net.SplitHostPort(addr)
	conn, err = tls.Dial("tcp", net.JoinHostPort("localhost", port), clientCfg(back))
	if err == nil {
		io.ReadAll(conn)
		conn.Close()
	}
	if err != nil {
		t.Fatalf("dial localhost: %v", err)
	}
	<-done

	// A client certificate from another anchor is refused.
	otherAnchor, otherKey, err := NewTrustAnchor("Other trust", now)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := NewClientCredential(otherAnchor, otherKey, "admin", time.Hour*24, now)
	if err != nil {
		t.Fatal(err)
	}
	addr, done = serveOnce(t, srvCfg)
	conn, err = tls.Dial("tcp", addr, clientCfg(stranger))
	if err == nil {
		_, err = io.ReadAll(conn)
		conn.Close()
	}
	if serr := <-done; serr == nil {
		t.Fatal("server accepted a client certificate from another trust anchor")
	}
}

func TestTLSCredentialErrors(t *testing.T) {
	now := time.Now()
	anchor, anchorKey, err := NewTrustAnchor("trust", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewTrustAnchor("", now); !errors.Is(err, ErrBadName) {
		t.Errorf("empty anchor name: %v", err)
	}
	if _, _, err := IssueServerCert(anchor, anchorKey, nil, now); !errors.Is(err, ErrBadName) {
		t.Errorf("no hosts: %v", err)
	}
	if _, _, err := IssueServerCert(anchor, anchorKey, []string{"bad_host"}, now); !errors.Is(err, ErrBadName) {
		t.Errorf("bad host: %v", err)
	}
	pub := testKey(t, KeyECDSAP256, 1).Public()
	for _, p := range []string{"", " admin", strings.Repeat("a", 65), "tab\there"} {
		if _, err := IssueClientCert(anchor, anchorKey, p, pub, time.Hour, now); !errors.Is(err, ErrBadName) {
			t.Errorf("principal %q: %v", p, err)
		}
	}
	if _, err := IssueClientCert(anchor, anchorKey, "ops", pub, time.Minute, now); !errors.Is(err, ErrBadValidity) {
		t.Errorf("short validity: %v", err)
	}
	if _, err := IssueClientCert(anchor, testKey(t, KeyECDSAP256, 0), "ops", pub, time.Hour, now); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("wrong anchor key: %v", err)
	}
	leaf, err := NewClientCredential(anchor, anchorKey, "leaf", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := IssueClientCert(leaf.Cert, leaf.Key, "ops", pub, time.Hour, now); !errors.Is(err, ErrNotCA) {
		t.Errorf("leaf as anchor: %v", err)
	}
	if _, err := IssueClientCert(anchor, anchorKey, "ops", pub, time.Hour, anchor.NotAfter); !errors.Is(err, ErrCAExpired) {
		t.Errorf("expired anchor: %v", err)
	}
	// Client certificates never outlive the anchor.
	der, err := IssueClientCert(anchor, anchorKey, "ops", pub, 365*24*time.Hour, anchor.NotAfter.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	if !c.NotAfter.Equal(anchor.NotAfter) {
		t.Errorf("client notAfter %v, anchor %v", c.NotAfter, anchor.NotAfter)
	}

	// Credential directories that are incomplete or inconsistent.
	dir := t.TempDir()
	if err := WriteCredentialDir(dir, &Credential{Cert: leaf.Cert, Key: anchorKey, Trust: anchor}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("write mismatched credential: %v", err)
	}
	if err := WriteCredentialDir(dir, leaf); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, CredentialTrustFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCredentialDir(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing trust.crt: %v", err)
	}
	other, _, err := NewTrustAnchor("other", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCertFile(filepath.Join(dir, CredentialTrustFile), other); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCredentialDir(dir); !errors.Is(err, ErrNotCA) {
		t.Errorf("foreign trust anchor: %v", err)
	}
	if err := WriteKeyFile(filepath.Join(dir, CredentialKeyFile), anchorKey, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCredentialDir(dir); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("swapped key: %v", err)
	}
}

func TestCertsPEM(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "PEM CA", KeyECDSAP256, "", now)
	b := newTestRoot(t, "PEM CA 2", KeyEd25519, "", now)
	data := append([]byte("junk before\n"), EncodeCertsPEM(a.Cert, b.Cert)...)
	certs, err := ParseCertsPEM(data)
	if err != nil || len(certs) != 2 || !certs[0].Equal(a.Cert) || !certs[1].Equal(b.Cert) {
		t.Fatalf("ParseCertsPEM: %d, %v", len(certs), err)
	}
	for _, bad := range [][]byte{nil, []byte("no pem"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")} {
		if _, err := ParseCertsPEM(bad); !errors.Is(err, ErrMalformedCert) {
			t.Errorf("ParseCertsPEM(%q): %v", bad, err)
		}
	}
}

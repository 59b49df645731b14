package server_test

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/testserver"
)

// openssl runs openssl with args in dir and returns its combined output
// and error.
func openssl(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// fetch GETs url and writes the body to dir/name.
func fetch(t *testing.T, url, dir, name string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEndToEndWithOpenSSL makes a key and request with openssl, submits it
// over gRPC, verifies the certificate with openssl against the CA
// certificate fetched from the certificate's own AIA URL, revokes it by the
// serial openssl prints, publishes a CRL, fetches it from the
// certificate's CDP URL, and checks that openssl verify -crl_check accepts
// the certificate before and rejects it after.
func TestEndToEndWithOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is needed: %v", err)
	}
	s := testserver.Start(t)
	ctx := ctxT(t)
	c := dial(t, s, s.CredsDir)
	dir := t.TempDir()

	if out, err := openssl(t, dir, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN=www.example.test", "-addext", "subjectAltName=DNS:www.example.test",
		"-keyout", "www.key", "-out", "www.csr"); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	csr, err := os.ReadFile(filepath.Join(dir, "www.csr"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if r.Status != certsrvv1.RequestStatus_REQUEST_STATUS_ISSUED || r.Certificate == nil {
		t.Fatalf("Submit: %+v, want an issued certificate", r)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate.Der})
	if err := os.WriteFile(filepath.Join(dir, "www.crt"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(r.Certificate.Der)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.IssuingCertificateURL) != 1 || len(cert.CRLDistributionPoints) != 1 {
		t.Fatalf("certificate AIA %v CDP %v, want one of each", cert.IssuingCertificateURL, cert.CRLDistributionPoints)
	}
	for _, u := range append(cert.IssuingCertificateURL, cert.CRLDistributionPoints...) {
		if !strings.HasPrefix(u, s.BaseURL()+"/CertEnroll/") {
			t.Fatalf("URL %s does not point at the publication endpoint %s", u, s.BaseURL())
		}
	}

	// The CA certificate, from the AIA URL, in DER; openssl converts it.
	fetch(t, cert.IssuingCertificateURL[0], dir, "ca.der")
	if out, err := openssl(t, dir, "x509", "-inform", "DER", "-in", "ca.der", "-out", "ca.pem"); err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	if out, err := openssl(t, dir, "verify", "-CAfile", "ca.pem", "www.crt"); err != nil || !strings.Contains(out, "www.crt: OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	crlCheck := func() (string, error) {
		fetch(t, cert.CRLDistributionPoints[0], dir, "ca.crl.der")
		if out, err := openssl(t, dir, "crl", "-inform", "DER", "-in", "ca.crl.der", "-out", "ca.crl.pem"); err != nil {
			t.Fatalf("openssl crl: %v\n%s", err, out)
		}
		return openssl(t, dir, "verify", "-crl_check", "-CAfile", "ca.pem", "-CRLfile", "ca.crl.pem", "www.crt")
	}
	if out, err := crlCheck(); err != nil || !strings.Contains(out, "www.crt: OK") {
		t.Fatalf("openssl verify -crl_check before revocation: %v\n%s", err, out)
	}

	// Revoke by the serial as openssl prints it ("serial=0A1B...").
	out, err := openssl(t, dir, "x509", "-in", "www.crt", "-noout", "-serial")
	if err != nil {
		t.Fatalf("openssl x509 -serial: %v\n%s", err, out)
	}
	serial := strings.TrimPrefix(strings.TrimSpace(out), "serial=")
	rv, err := c.admin.Revoke(ctx, &certsrvv1.RevokeRequest{Serial: serial, Reason: "keyCompromise"})
	if err != nil {
		t.Fatalf("Revoke %s: %v", serial, err)
	}
	if !rv.Certificate.Revoked || rv.Certificate.RevocationReason != 1 || rv.Certificate.Serial != r.Certificate.Serial {
		t.Fatalf("Revoke: %+v", rv.Certificate)
	}
	crl, err := c.admin.PublishCRL(ctx, &certsrvv1.PublishCRLRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if crl.Entries != 1 || crl.Url != cert.CRLDistributionPoints[0] {
		t.Fatalf("PublishCRL: %+v, want 1 entry at %s", crl, cert.CRLDistributionPoints[0])
	}
	out, err = crlCheck()
	if err == nil || !strings.Contains(out, "certificate revoked") {
		t.Fatalf("openssl verify -crl_check after revocation: err %v, want a failure naming the revocation\n%s", err, out)
	}

	// View shows it as revoked.
	v, err := c.admin.View(ctx, &certsrvv1.ViewRequest{RevokedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Requests) != 1 || v.Requests[0].Certificate.GetSerial() != r.Certificate.Serial || !v.Requests[0].Certificate.Revoked {
		t.Fatalf("View revoked: %+v", v.Requests)
	}
}

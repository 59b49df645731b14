package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestIssueEveryKeyTypeOpenSSL issues a tls-server and a tls-client
// certificate from a CA of every key type, for subject keys of the same
// type, and has openssl verify each against the CA certificate.
func TestIssueEveryKeyTypeOpenSSL(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			a := newTestRoot(t, "Example "+string(kt)+" CA", kt, "http://127.0.0.1:8080", now)
			caPath := writeTemp(t, dir, string(kt)+"-ca.pem", certPEM(a.Cert))
			sub := testKey(t, kt, 1)
			srv := issueFor(t, a, profile(t, ProfileTLSServer), sub, csrSpec{CN: "www.example.com", IPs: []string{"127.0.0.1"}}, now)
			cli := issueFor(t, a, profile(t, ProfileTLSClient), sub, csrSpec{CN: "alice", Emails: []string{"alice@example.com"}}, now)
			for _, c := range []struct {
				cert    *x509.Certificate
				purpose string
			}{{srv, "sslserver"}, {cli, "sslclient"}} {
				p := writeTemp(t, dir, string(kt)+"-"+c.purpose+".pem", certPEM(c.cert))
				out := mustOpenSSL(t, "verify", "-CAfile", caPath, "-purpose", c.purpose, p)
				if !strings.Contains(out, ": OK") {
					t.Fatalf("openssl verify %s: %s", c.purpose, out)
				}
			}
			checkIssued(t, a, srv, kt, x509.ExtKeyUsageServerAuth, now)
			checkIssued(t, a, cli, kt, x509.ExtKeyUsageClientAuth, now)
		})
	}
}

// checkIssued checks the fields Issue documents.
func checkIssued(t *testing.T, a *Authority, c *x509.Certificate, kt KeyType, eku x509.ExtKeyUsage, now time.Time) {
	t.Helper()
	if err := c.CheckSignatureFrom(a.Cert); err != nil {
		t.Errorf("signature: %v", err)
	}
	if !c.BasicConstraintsValid || c.IsCA {
		t.Errorf("basicConstraints: valid %v CA %v", c.BasicConstraintsValid, c.IsCA)
	}
	wantKU := x509.KeyUsageDigitalSignature
	if strings.HasPrefix(string(kt), "rsa") && eku == x509.ExtKeyUsageServerAuth {
		wantKU |= x509.KeyUsageKeyEncipherment
	}
	if c.KeyUsage != wantKU {
		t.Errorf("key usage %b, want %b", c.KeyUsage, wantKU)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{eku}) {
		t.Errorf("ext key usage %v", c.ExtKeyUsage)
	}
	if !slices.Equal(c.IssuingCertificateURL, []string{a.CertURL()}) || !slices.Equal(c.CRLDistributionPoints, []string{a.CRLURL(false)}) {
		t.Errorf("AIA %v CDP %v", c.IssuingCertificateURL, c.CRLDistributionPoints)
	}
	if !bytes.Equal(c.AuthorityKeyId, a.Cert.SubjectKeyId) || len(c.SubjectKeyId) != 20 {
		t.Errorf("AKI %x (CA SKI %x), SKI %x", c.AuthorityKeyId, a.Cert.SubjectKeyId, c.SubjectKeyId)
	}
	if d := now.Sub(c.NotBefore); d < Backdate-time.Second || d > Backdate+time.Second {
		t.Errorf("notBefore %v is %v before now", c.NotBefore, d)
	}
	if c.SerialNumber.Sign() <= 0 || len(c.SerialNumber.Bytes()) > 20 {
		t.Errorf("serial %s", SerialString(c.SerialNumber))
	}
}

func TestIssueValidity(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "Validity CA", KeyECDSAP256, "", now)
	srv := profile(t, ProfileTLSServer)
	c := issueFor(t, a, srv, testKey(t, KeyECDSAP256, 1), csrSpec{CN: "www.example.com"}, now)
	if got := c.NotAfter.Sub(c.NotBefore) + time.Second; got != time.Duration(srv.Validity) {
		t.Errorf("validity %v, want %v (inclusive)", got, time.Duration(srv.Validity))
	}
	// Near the end of the CA's life the certificate is cut short.
	late := a.Cert.NotAfter.Add(-24 * time.Hour)
	c = issueFor(t, a, srv, testKey(t, KeyECDSAP256, 1), csrSpec{CN: "www.example.com"}, late)
	if !c.NotAfter.Equal(a.Cert.NotAfter) {
		t.Errorf("notAfter %v, want CA notAfter %v", c.NotAfter, a.Cert.NotAfter)
	}
	// Before the CA's notBefore the certificate starts with the CA.
	early := a.Cert.NotBefore.Add(-time.Hour)
	c = issueFor(t, a, srv, testKey(t, KeyECDSAP256, 1), csrSpec{CN: "www.example.com"}, early)
	if !c.NotBefore.Equal(a.Cert.NotBefore) {
		t.Errorf("notBefore %v, want CA notBefore %v", c.NotBefore, a.Cert.NotBefore)
	}
	csr, err := CheckCSR(makeCSR(t, testKey(t, KeyECDSAP256, 1), csrSpec{CN: "www.example.com"}), srv)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := NewSerial()
	if _, err := a.Issue(csr, srv, serial, a.Cert.NotAfter); !errors.Is(err, ErrCAExpired) {
		t.Errorf("issue after CA expiry: %v", err)
	}
}

func TestIssueRefuses(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "Refusing CA", KeyECDSAP256, "", now)
	srv := profile(t, ProfileTLSServer)
	cli := profile(t, ProfileTLSClient)
	serial, _ := NewSerial()

	own, err := CheckCSR(makeCSR(t, a.Key, csrSpec{CN: "www.example.com"}), srv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Issue(own, srv, serial, now); !errors.Is(err, ErrKeyNotAllowed) {
		t.Errorf("CA's own key: %v", err)
	}
	// Checked against tls-client, then issued under tls-server: the
	// e-mail name is refused at issue time too.
	mail, err := CheckCSR(makeCSR(t, testKey(t, KeyECDSAP256, 1), csrSpec{CN: "alice", Emails: []string{"alice@example.com"}}), cli)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Issue(mail, srv, serial, now); !errors.Is(err, ErrSANNotAllowed) && !errors.Is(err, ErrSubjectNotAllowed) {
		t.Errorf("policy re-check: %v", err)
	}
	ok, err := CheckCSR(makeCSR(t, testKey(t, KeyECDSAP256, 1), csrSpec{CN: "www.example.com"}), srv)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"0", "-1"} {
		n, _ := new(big.Int).SetString(bad, 10)
		if _, err := a.Issue(ok, srv, n, now); !errors.Is(err, ErrBadSerial) {
			t.Errorf("serial %s: %v", bad, err)
		}
	}
	if _, err := a.Issue(ok, srv, nil, now); !errors.Is(err, ErrBadSerial) {
		t.Errorf("nil serial: %v", err)
	}
	if _, err := (&Authority{}).Issue(ok, srv, serial, now); !errors.Is(err, ErrNotCA) {
		t.Errorf("empty authority: %v", err)
	}
}

func TestNewRoot(t *testing.T) {
	now := time.Now()
	for _, kt := range KeyTypes() {
		cert, err := NewRoot("Root "+string(kt), testKey(t, kt, 0), 5*365*24*time.Hour, now)
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		if err := CheckSubordinateCert(cert, testKey(t, kt, 0)); err != nil {
			t.Errorf("%s: root fails the CA checks: %v", kt, err)
		}
		if cert.Subject.CommonName != "Root "+string(kt) || !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
			t.Errorf("%s: subject %v issuer %v", kt, cert.Subject, cert.Issuer)
		}
		if err := cert.CheckSignatureFrom(cert); err != nil {
			t.Errorf("%s: self-signature: %v", kt, err)
		}
		if cert.MaxPathLen != -1 && !(cert.MaxPathLen == 0 && !cert.MaxPathLenZero) {
			t.Errorf("%s: path length %d", kt, cert.MaxPathLen)
		}
		want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
		if cert.KeyUsage != want {
			t.Errorf("%s: key usage %b", kt, cert.KeyUsage)
		}
	}
	if _, err := NewRoot("a/b", testKey(t, KeyECDSAP256, 0), time.Hour, now); !errors.Is(err, ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := NewRoot("ok", testKey(t, KeyECDSAP256, 0), time.Minute, now); !errors.Is(err, ErrBadValidity) {
		t.Errorf("short validity: %v", err)
	}
}

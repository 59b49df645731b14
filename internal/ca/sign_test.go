package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// signTestTemplates are end-entity templates covering what changes the
// encoding: names of every kind, an empty subject (critical SAN), both IP
// lengths, times on both sides of 2050 (UTCTime and GeneralizedTime), a
// long serial, extensions with and without a base URL.
func signTestTemplates(t *testing.T, a *Authority, sub crypto.Signer) []*x509.Certificate {
	t.Helper()
	ski, err := subjectKeyID(sub.Public())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse("https://example.test/id")
	if err != nil {
		t.Fatal(err)
	}
	nb := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	long := new(big.Int).SetBytes(bytes.Repeat([]byte{0x7f}, 20))
	base := func(serial int64) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber:          big.NewInt(serial),
			Subject:               pkix.Name{CommonName: "www.example.test"},
			NotBefore:             nb,
			NotAfter:              nb.Add(90 * 24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			DNSNames:              []string{"www.example.test"},
			SubjectKeyId:          ski,
			IssuingCertificateURL: []string{a.CertURL()},
			CRLDistributionPoints: []string{a.CRLURL(false)},
		}
	}
	plain := base(1)
	plain.IssuingCertificateURL, plain.CRLDistributionPoints = nil, nil
	names := base(2)
	names.Subject = pkix.Name{CommonName: "Zoë & <Co>"}
	names.IPAddresses = []net.IP{net.ParseIP("192.0.2.1").To4(), net.ParseIP("2001:db8::1")}
	names.EmailAddresses = []string{"a@example.test"}
	names.URIs = []*url.URL{u}
	names.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	names.KeyUsage |= x509.KeyUsageKeyEncipherment
	empty := base(3)
	empty.Subject = pkix.Name{}
	late := base(4)
	late.SerialNumber = long
	late.NotBefore = time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC)
	late.NotAfter = time.Date(2051, 1, 1, 0, 0, 0, 0, time.UTC)
	return []*x509.Certificate{base(0), plain, names, empty, late}
}

// outerCert is the Certificate SEQUENCE, parsed independently of
// certificateDER.
type outerCert struct {
	TBS asn1.RawValue
	Alg asn1.RawValue
	Sig asn1.BitString
}

func parseOuter(t *testing.T, der []byte) outerCert {
	t.Helper()
	var o outerCert
	if rest, err := asn1.Unmarshal(der, &o); err != nil || len(rest) != 0 {
		t.Fatalf("outer certificate: %v, %d bytes left", err, len(rest))
	}
	return o
}

// TestCreateCertificateMatchesX509 checks that createCertificate produces
// exactly the DER x509.CreateCertificate does, for a CA of every key type:
// the whole certificate byte for byte where the signature is deterministic
// (Ed25519, RSA PKCS #1 v1.5), and for ECDSA the TBSCertificate and the
// signature algorithm byte for byte, with x509's certificate re-encoded
// around our signature equal to ours. Every certificate must verify
// against the CA.
func TestCreateCertificateMatchesX509(t *testing.T) {
	now := time.Now()
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			a := newTestRoot(t, "Sign "+string(kt)+" CA", kt, "http://127.0.0.1:8080", now)
			if !trustedSigner(a.Key) {
				t.Fatalf("%T is not taken as a standard library key", a.Key)
			}
			sub := testKey(t, kt, 1)
			deterministic := kt == KeyEd25519 || kt == KeyRSA2048 || kt == KeyRSA3072 || kt == KeyRSA4096
			for i, tmpl := range signTestTemplates(t, a, sub) {
				want, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, sub.Public(), a.Key)
				if err != nil {
					t.Fatalf("template %d: x509.CreateCertificate: %v", i, err)
				}
				got, err := createCertificate(tmpl, a.Cert, sub.Public(), a.Key)
				if err != nil {
					t.Fatalf("template %d: createCertificate: %v", i, err)
				}
				if deterministic && !bytes.Equal(got, want) {
					t.Errorf("template %d: DER differs from x509.CreateCertificate\n got %x\nwant %x", i, got, want)
				}
				g, w := parseOuter(t, got), parseOuter(t, want)
				if !bytes.Equal(g.TBS.FullBytes, w.TBS.FullBytes) {
					t.Errorf("template %d: TBSCertificate differs\n got %x\nwant %x", i, g.TBS.FullBytes, w.TBS.FullBytes)
				}
				if !bytes.Equal(g.Alg.FullBytes, w.Alg.FullBytes) {
					t.Errorf("template %d: signature algorithm %x, want %x", i, g.Alg.FullBytes, w.Alg.FullBytes)
				}
				w.Sig = g.Sig
				if rewrapped, err := asn1.Marshal(w); err != nil || !bytes.Equal(rewrapped, got) {
					t.Errorf("template %d: x509's certificate with our signature re-encodes to %x (%v), want %x", i, rewrapped, err, got)
				}
				c, err := x509.ParseCertificate(got)
				if err != nil {
					t.Fatalf("template %d: parse: %v", i, err)
				}
				if err := c.CheckSignatureFrom(a.Cert); err != nil {
					t.Errorf("template %d: signature does not verify: %v", i, err)
				}
			}
		})
	}
}

// brokenSigner is a crypto.Signer that is not a standard library key and
// returns a signature for the wrong message.
type brokenSigner struct {
	crypto.Signer
	calls int
}

func (b *brokenSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	b.calls++
	wrong := make([]byte, len(digest))
	copy(wrong, digest)
	wrong[0] ^= 1
	return b.Signer.Sign(r, wrong, opts)
}

// TestCreateCertificateOtherSignerKeepsCheck checks that a signer that is
// not a standard library key goes through x509.CreateCertificate with its
// self-check: a signer producing bad signatures is caught, and a wrapper
// around a good key still yields a verifying certificate.
func TestCreateCertificateOtherSignerKeepsCheck(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "Wrapped CA", KeyECDSAP256, "", now)
	sub := testKey(t, KeyECDSAP256, 1)
	tmpl := signTestTemplates(t, a, sub)[0]
	broken := &brokenSigner{Signer: a.Key}
	if trustedSigner(broken) {
		t.Fatal("a wrapper is taken as a standard library key")
	}
	if der, err := createCertificate(tmpl, a.Cert, sub.Public(), broken); err == nil {
		t.Fatalf("a signer returning bad signatures produced a certificate (%d bytes)", len(der))
	}
	if broken.calls != 1 {
		t.Errorf("broken signer called %d times, want 1", broken.calls)
	}
	type wrapped struct{ crypto.Signer }
	der, err := createCertificate(tmpl, a.Cert, sub.Public(), wrapped{a.Key})
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSignatureFrom(a.Cert); err != nil {
		t.Errorf("wrapped signer's certificate does not verify: %v", err)
	}
}

// TestCreateCertificateTemplateErrors checks that x509.CreateCertificate's
// own refusals come back from createCertificate, not the capture.
func TestCreateCertificateTemplateErrors(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "Errors CA", KeyECDSAP256, "", now)
	other := newTestRoot(t, "Other CA", KeyECDSAP384, "", now)
	sub := testKey(t, KeyECDSAP256, 1)
	negative := signTestTemplates(t, a, sub)[0]
	negative.SerialNumber = big.NewInt(-5)
	for _, tc := range []struct {
		name   string
		tmpl   *x509.Certificate
		parent *x509.Certificate
	}{
		{"negative serial", negative, a.Cert},
		{"key does not match parent", signTestTemplates(t, a, sub)[0], other.Cert},
	} {
		der, err := createCertificate(tc.tmpl, tc.parent, sub.Public(), a.Key)
		if err == nil {
			t.Errorf("%s: certificate of %d bytes, want an error", tc.name, len(der))
			continue
		}
		if errors.Is(err, errTBSCaptured) || errors.Is(err, errDigestOnly) {
			t.Errorf("%s: internal capture error leaked: %v", tc.name, err)
		}
	}
}

// TestTBSSignatureAlgorithm checks the extraction of the signature field
// from TBSCertificates with and without a version, and its refusals.
func TestTBSSignatureAlgorithm(t *testing.T) {
	alg := []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02} // ecdsa-with-SHA256
	seq := func(parts ...[]byte) []byte {
		body := bytes.Join(parts, nil)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	version := []byte{0xa0, 0x03, 0x02, 0x01, 0x02}
	serial := []byte{0x02, 0x01, 0x07}
	name := []byte{0x30, 0x00}
	for _, tc := range []struct {
		name string
		tbs  []byte
		ok   bool
	}{
		{"v3", seq(version, serial, alg, name), true},
		{"v1 without version", seq(serial, alg, name), true},
		{"trailing data", append(seq(version, serial, alg, name), 0), false},
		{"not a sequence", append([]byte{0x31, 0x00}, nil...), false},
		{"no serial", seq(version, alg, name), false},
		{"algorithm not a sequence", seq(version, serial, serial), false},
		{"truncated", seq(version, serial), false},
		{"empty", nil, false},
	} {
		got, err := tbsSignatureAlgorithm(tc.tbs)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.ok && !bytes.Equal(got, alg):
			t.Errorf("%s: algorithm %x, want %x", tc.name, got, alg)
		case !tc.ok && err == nil:
			t.Errorf("%s: algorithm %x, want an error", tc.name, got)
		}
	}
}

// TestIssueCertificateFields checks that the fields IssueCertificate
// returns are those encoded in its DER, also when the validity is cut by
// the CA's notAfter, the profile's lifetime is not whole seconds, and the
// subject is empty.
func TestIssueCertificateFields(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "Fields CA", KeyECDSAP256, "http://127.0.0.1:8080", now)
	srv := profile(t, ProfileTLSServer)
	odd := srv
	odd.Validity = Duration(2*time.Hour + 1500*time.Millisecond)
	long := srv
	long.Validity = Duration(3650 * 24 * time.Hour) // beyond the CA's notAfter
	cli := profile(t, ProfileTLSClient)
	for _, tc := range []struct {
		name string
		p    Profile
		spec csrSpec
	}{
		{"server", srv, csrSpec{CN: "WWW.Example.Test", DNS: []string{"api.example.test"}}},
		{"fractional lifetime", odd, csrSpec{CN: "www.example.test"}},
		{"cut by CA", long, csrSpec{CN: "www.example.test"}},
		{"client", cli, csrSpec{CN: "Zoë, \"the\" user+1", Emails: []string{"zoe@example.test"}}},
		{"no subject", cli, csrSpec{Emails: []string{"zoe@example.test"}}},
	} {
		if err := tc.p.Validate(); err != nil {
			t.Fatalf("%s: profile: %v", tc.name, err)
		}
		csr, err := CheckCSR(makeCSR(t, testKey(t, KeyECDSAP256, 1), tc.spec), tc.p)
		if err != nil {
			t.Fatalf("%s: CheckCSR: %v", tc.name, err)
		}
		serial, err := NewSerial()
		if err != nil {
			t.Fatal(err)
		}
		iss, err := a.IssueCertificate(csr, tc.p, serial, now)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c, err := x509.ParseCertificate(iss.DER)
		if err != nil {
			t.Fatalf("%s: parse: %v", tc.name, err)
		}
		if iss.Subject.String() != c.Subject.String() {
			t.Errorf("%s: subject %q, certificate %q", tc.name, iss.Subject.String(), c.Subject.String())
		}
		if !iss.NotBefore.Equal(c.NotBefore) || !iss.NotAfter.Equal(c.NotAfter) || iss.NotBefore.Location() != time.UTC || iss.NotAfter.Location() != time.UTC {
			t.Errorf("%s: validity %v..%v, certificate %v..%v", tc.name, iss.NotBefore, iss.NotAfter, c.NotBefore, c.NotAfter)
		}
		if iss.Serial.Cmp(c.SerialNumber) != 0 {
			t.Errorf("%s: serial %s, certificate %s", tc.name, SerialString(iss.Serial), SerialString(c.SerialNumber))
		}
		if err := c.CheckSignatureFrom(a.Cert); err != nil {
			t.Errorf("%s: signature: %v", tc.name, err)
		}
		if tc.name == "cut by CA" && !c.NotAfter.Equal(a.Cert.NotAfter) {
			t.Errorf("%s: notAfter %v, want the CA's %v", tc.name, c.NotAfter, a.Cert.NotAfter)
		}
	}
}

package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"
)

// BenchmarkIssueECDSAP256 measures Issue alone (policy re-check, key
// identifier, signing) for a P-256 CA and a P-256 subject key, and reports
// certificates per second.
func BenchmarkIssueECDSAP256(b *testing.B) {
	now := time.Now()
	a := newTestRoot(b, "Bench CA", KeyECDSAP256, "http://127.0.0.1:8080", now)
	p := profile(b, ProfileTLSServer)
	csr, err := CheckCSR(makeCSR(b, testKey(b, KeyECDSAP256, 1), csrSpec{CN: "www.example.com", DNS: []string{"api.example.com"}}), p)
	if err != nil {
		b.Fatal(err)
	}
	serial, err := NewSerial()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := a.Issue(csr, p, serial, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkCheckCSRECDSAP256 measures CheckCSR (parse, policy, signature
// check) of a P-256 request.
func BenchmarkCheckCSRECDSAP256(b *testing.B) {
	p := profile(b, ProfileTLSServer)
	der := makeCSR(b, testKey(b, KeyECDSAP256, 1), csrSpec{CN: "www.example.com", DNS: []string{"api.example.com"}})
	for b.Loop() {
		if _, err := CheckCSR(der, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}

// BenchmarkCRL10000 measures signing a full CRL with 10,000 entries.
func BenchmarkCRL10000(b *testing.B) {
	now := time.Now()
	a := newTestRoot(b, "Bench CA", KeyECDSAP256, "http://127.0.0.1:8080", now)
	entries := make([]RevokedEntry, 10000)
	for i := range entries {
		s, err := NewSerial()
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = RevokedEntry{Serial: s, RevokedAt: now.Add(-time.Hour), Reason: ReasonKeyCompromise}
	}
	for b.Loop() {
		if _, err := a.CRL(entries, big.NewInt(1), nil, now, now.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignCertificateECDSAP256 compares the ways of making one
// end-entity certificate with a P-256 CA key: x509.CreateCertificate
// (encoding by reflection, signature, verification of the signature),
// createCertificate (the same encoding, no verification), encodeTBS +
// signTBS (what IssueCertificate does), and the bare signature over a
// TBSCertificate of the same size; allocations are reported.
func BenchmarkSignCertificateECDSAP256(b *testing.B) {
	now := time.Now()
	a := newTestRoot(b, "Bench CA", KeyECDSAP256, "http://127.0.0.1:8080", now)
	pub := testKey(b, KeyECDSAP256, 1).Public()
	ski, err := subjectKeyID(pub)
	if err != nil {
		b.Fatal(err)
	}
	e := &endEntity{
		serial:       big.NewInt(0x7f12345678),
		notBefore:    now.UTC(),
		notAfter:     now.UTC().Add(90 * 24 * time.Hour),
		commonName:   "www.example.com",
		keyUsage:     x509.KeyUsageDigitalSignature,
		extKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		subjectKeyID: ski,
		issuerURL:    a.CertURL(),
		crlURL:       a.CRLURL(false),
		dns:          []string{"www.example.com"},
	}
	tmpl := e.template()
	b.Run("x509", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, pub, a.Key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unchecked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := createCertificate(tmpl, a.Cert, pub, a.Key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		alg, opts, _ := caSignature(a.Key)
		for b.Loop() {
			spki, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				b.Fatal(err)
			}
			subject, err := subjectName(e.commonName)
			if err != nil {
				b.Fatal(err)
			}
			tbs, ok := encodeTBS(e, a.Cert, spki, a.Key, subject)
			if !ok {
				b.Fatal("encodeTBS declined")
			}
			if _, err := signTBS(tbs, alg, opts, a.Key); err != nil {
				b.Fatal(err)
			}
		}
	})
	der, err := createCertificate(tmpl, a.Cert, pub, a.Key)
	if err != nil {
		b.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("signature-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := crypto.SignMessage(a.Key, rand.Reader, c.RawTBSCertificate, crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
}

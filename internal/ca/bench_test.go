package ca

import (
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

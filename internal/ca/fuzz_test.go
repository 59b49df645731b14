package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// FuzzParseSerial checks that whatever ParseSerial accepts is a valid
// serial whose canonical form parses back to the same value. The seed
// corpus runs with every go test; go test -fuzz=FuzzParseSerial explores.
func FuzzParseSerial(f *testing.F) {
	for _, s := range []string{"0A1B", "0a:1b", "serial=00FF", "0x7F", "", "-1", "::", "0A 1B", "80" + "00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSerial(s)
		if err != nil {
			return
		}
		if err := CheckSerial(n); err != nil {
			t.Fatalf("ParseSerial(%q) accepted %v: %v", s, n, err)
		}
		back, err := ParseSerial(SerialString(n))
		if err != nil || back.Cmp(n) != 0 {
			t.Fatalf("canonical form %q of %q does not parse back: %v", SerialString(n), s, err)
		}
	})
}

// FuzzCheckCSR checks that CheckCSR never panics and that every request it
// accepts can be issued, under the tls-server profile.
func FuzzCheckCSR(f *testing.F) {
	now := time.Now()
	a := newTestRoot(f, "Fuzz CA", KeyECDSAP256, "http://127.0.0.1:8080", now)
	p := profile(f, ProfileTLSServer)
	f.Add(makeCSR(f, testKey(f, KeyECDSAP256, 1), csrSpec{CN: "www.example.com"}))
	f.Add(makeCSR(f, testKey(f, KeyEd25519, 1), csrSpec{DNS: []string{"a.example.com"}, IPs: []string{"10.1.2.3"}}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := CheckCSR(data, p)
		if err != nil {
			return
		}
		serial, err := NewSerial()
		if err != nil {
			t.Fatal(err)
		}
		der, err := a.Issue(csr, p, serial, now)
		if err != nil {
			t.Fatalf("accepted request not issued: %v", err)
		}
		if _, err := x509.ParseCertificate(der); err != nil {
			t.Fatalf("issued certificate does not parse: %v", err)
		}
	})
}

// FuzzEncodeTBS checks that whatever encodeTBS accepts it encodes exactly
// as x509.CreateCertificate does (same TBSCertificate bytes), for fuzzed
// names, serials, times and key usages under an Ed25519 CA.
func FuzzEncodeTBS(f *testing.F) {
	now := time.Now()
	a := newTestRoot(f, "Fuzz Encode CA", KeyEd25519, "http://127.0.0.1:8080", now)
	pub := testKey(f, KeyECDSAP256, 1).Public()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("www.example.test", "www.example.test", "", []byte{0x7f, 1}, int64(1790000000), int64(90*24*3600), uint16(1), []byte{192, 0, 2, 1}, "", true)
	f.Add("", "", "a@example.test", []byte{0xff}, int64(2524607999), int64(1), uint16(0x1ff), []byte(nil), "urn:x", false)
	f.Add("*.x & y", "a.b", "é@x", []byte{0, 0, 1}, int64(-631152000), int64(1e9), uint16(0x100), make([]byte, 16), "https://é", true)
	f.Fuzz(func(t *testing.T, cn, dns, email string, serial []byte, nb, life int64, ku uint16, ip []byte, uri string, urls bool) {
		n := new(big.Int).SetBytes(serial)
		if n.Sign() <= 0 || len(serial) > 20 {
			return
		}
		e := &endEntity{
			serial:     n,
			notBefore:  time.Unix(nb%(300*365*24*3600), 0).UTC(),
			commonName: cn,
			keyUsage:   x509.KeyUsage(ku & 0x1ff),
			dns:        []string{dns},
			emails:     []string{email},
		}
		e.notAfter = e.notBefore.Add(time.Duration(life%(100*365*24*3600)) * time.Second)
		if len(ip) > 0 {
			e.ips = []net.IP{ip}
		}
		if u, err := url.Parse(uri); err == nil && uri != "" {
			e.uris = []*url.URL{u}
		}
		if urls {
			e.issuerURL, e.crlURL = a.CertURL(), a.CRLURL(false)
		}
		subject, err := subjectName(cn)
		if err != nil {
			return // x509.CreateCertificate fails on the same subject
		}
		tbs, ok := encodeTBS(e, a.Cert, spki, a.Key, subject)
		if !ok {
			return
		}
		der, err := x509.CreateCertificate(rand.Reader, e.template(), a.Cert, pub, a.Key)
		if err != nil {
			t.Fatalf("encodeTBS accepted what x509.CreateCertificate refuses (%v): %+v", err, e)
		}
		// x509 may write what it cannot parse back (an IP address of odd
		// length), so the TBSCertificate is taken from the DER directly.
		var outer struct {
			TBS asn1.RawValue
			Alg asn1.RawValue
			Sig asn1.BitString
		}
		if _, err := asn1.Unmarshal(der, &outer); err != nil {
			t.Fatalf("x509's certificate: %v", err)
		}
		if !bytes.Equal(tbs, outer.TBS.FullBytes) {
			t.Fatalf("TBSCertificate differs for %+v\n got %x\nwant %x", e, tbs, outer.TBS.FullBytes)
		}
	})
}

package ca

import (
	"crypto/x509"
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

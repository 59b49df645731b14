package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// x509Reference returns what x509.CreateCertificate makes of e: the whole
// certificate and its TBSCertificate.
func x509Reference(t testing.TB, e *endEntity, a *Authority, pub crypto.PublicKey) (der, tbs []byte) {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, e.template(), a.Cert, pub, a.Key)
	if err != nil {
		t.Fatalf("x509.CreateCertificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse x509's certificate: %v", err)
	}
	return der, c.RawTBSCertificate
}

// encodeAndSign is the IssueCertificate path for e: encodeTBS and signTBS.
func encodeAndSign(t testing.TB, e *endEntity, a *Authority, pub crypto.PublicKey) (der, tbs []byte) {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := subjectName(e.commonName)
	if err != nil {
		t.Fatal(err)
	}
	tbs, ok := encodeTBS(e, a.Cert, spki, a.Key, subject)
	if !ok {
		t.Fatalf("encodeTBS declined %+v", e)
	}
	alg, opts, _ := caSignature(a.Key)
	der, err = signTBS(tbs, alg, opts, a.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der, tbs
}

// compareWithX509 checks encodeTBS against x509.CreateCertificate for e:
// equal TBSCertificates, and for a CA key with deterministic signatures
// (Ed25519, RSA PKCS #1 v1.5) equal certificates. The certificate must
// verify against the CA.
func compareWithX509(t testing.TB, name string, e *endEntity, a *Authority, pub crypto.PublicKey, deterministic bool) {
	t.Helper()
	wantDER, wantTBS := x509Reference(t, e, a, pub)
	gotDER, gotTBS := encodeAndSign(t, e, a, pub)
	if !bytes.Equal(gotTBS, wantTBS) {
		t.Fatalf("%s: TBSCertificate differs from x509.CreateCertificate\n got %x\nwant %x", name, gotTBS, wantTBS)
	}
	if deterministic && !bytes.Equal(gotDER, wantDER) {
		t.Fatalf("%s: certificate differs from x509.CreateCertificate\n got %x\nwant %x", name, gotDER, wantDER)
	}
	c, err := x509.ParseCertificate(gotDER)
	if err != nil {
		t.Fatalf("%s: parse: %v", name, err)
	}
	if err := c.CheckSignatureFrom(a.Cert); err != nil {
		t.Fatalf("%s: signature: %v", name, err)
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestEncodeTBSMatchesX509 compares encodeTBS with x509.CreateCertificate
// for a CA of every key type and subject keys of every type, over chosen
// cases (every name form, empty subject, a subject equal to the issuer,
// validity on both sides of 2050, serials with the top bit set, lengths
// needing one, two and three length bytes, every key usage bit) and
// random ones (300 per CA, 20 for the slow RSA CAs).
func TestEncodeTBSMatchesX509(t *testing.T) {
	now := time.Now()
	nb := time.Date(2026, 11, 26, 9, 30, 15, 0, time.UTC)
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + ".example.test"
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			a := newTestRoot(t, "Encode "+string(kt)+" CA", kt, "http://127.0.0.1:8080", now)
			deterministic := kt != KeyECDSAP256 && kt != KeyECDSAP384
			base := func() *endEntity {
				return &endEntity{
					serial: big.NewInt(0x7f01), notBefore: nb, notAfter: nb.Add(90 * 24 * time.Hour),
					commonName: "www.example.test", keyUsage: x509.KeyUsageDigitalSignature,
					extKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
					subjectKeyID: bytes.Repeat([]byte{0x5a}, 20),
					issuerURL:    a.CertURL(), crlURL: a.CRLURL(false),
					dns: []string{"www.example.test"},
				}
			}
			cases := map[string]func(e *endEntity){
				"base":          func(*endEntity) {},
				"no urls":       func(e *endEntity) { e.issuerURL, e.crlURL = "", "" },
				"only crl url":  func(e *endEntity) { e.issuerURL = "" },
				"empty subject": func(e *endEntity) { e.commonName = "" },
				"issuer as subject": func(e *endEntity) {
					e.commonName = a.Cert.Subject.CommonName
				},
				"wildcard and ampersand": func(e *endEntity) { e.commonName = "*.example.test & co" },
				"utf8 subject":           func(e *endEntity) { e.commonName = "Zoë Ünicode" },
				"all names": func(e *endEntity) {
					e.emails = []string{"a@example.test", "b@example.test"}
					e.ips = []net.IP{net.ParseIP("192.0.2.1"), net.ParseIP("192.0.2.2").To4(), net.ParseIP("2001:db8::1"), net.ParseIP("::ffff:10.0.0.1")}
					e.uris = []*url.URL{mustURL(t, "https://example.test/a?b=c"), mustURL(t, "urn:example:thing")}
				},
				"no names": func(e *endEntity) { e.dns = nil },
				"high serial": func(e *endEntity) {
					e.serial = new(big.Int).SetBytes(bytes.Repeat([]byte{0xff}, 20))
				},
				"one-byte serial": func(e *endEntity) { e.serial = big.NewInt(1) },
				"2049 to 2050": func(e *endEntity) {
					e.notBefore = time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC)
					e.notAfter = time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC)
				},
				"1950 and 9999": func(e *endEntity) {
					e.notBefore = time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)
					e.notAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
				},
				"1949": func(e *endEntity) { e.notBefore = time.Date(1949, 12, 31, 23, 59, 59, 0, time.UTC) },
				"fractional seconds": func(e *endEntity) {
					e.notBefore = nb.Add(999 * time.Millisecond)
					e.notAfter = nb.Add(time.Hour + time.Nanosecond)
				},
				"every key usage": func(e *endEntity) { e.keyUsage = 0x1ff },
				"decipher only":   func(e *endEntity) { e.keyUsage = x509.KeyUsageDecipherOnly },
				"rsa server":      func(e *endEntity) { e.keyUsage |= x509.KeyUsageKeyEncipherment },
				"no key usage":    func(e *endEntity) { e.keyUsage = 0 },
				"every eku": func(e *endEntity) {
					e.extKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageClientAuth}
				},
				"no eku":    func(e *endEntity) { e.extKeyUsage = nil },
				"no key id": func(e *endEntity) { e.subjectKeyID = nil },
				"long names (two length bytes)": func(e *endEntity) {
					for i := range 8 {
						e.dns = append(e.dns, string(rune('a'+i))+long)
					}
				},
				"very long names (three length bytes)": func(e *endEntity) {
					for i := range 600 {
						e.dns = append(e.dns, long[:60]+strings.Repeat("x", i%3)+".test")
					}
				},
			}
			for _, skt := range KeyTypes() {
				compareWithX509(t, string(skt)+"/base", base(), a, testKey(t, skt, 1).Public(), deterministic)
			}
			pub := testKey(t, KeyECDSAP256, 1).Public()
			for name, mod := range cases {
				e := base()
				mod(e)
				compareWithX509(t, name, e, a, pub, deterministic)
			}
			// RSA signing is slow; the encoding does not depend on the CA
			// key beyond the algorithm identifier.
			rounds := 300
			if strings.HasPrefix(string(kt), "rsa") {
				rounds = 20
			}
			r := mrand.New(mrand.NewPCG(1, uint64(len(kt))))
			for i := range rounds {
				compareWithX509(t, "random "+string(rune('0'+i%10)), randomEndEntity(t, r, a), a, pub, deterministic)
			}
		})
	}
}

// randomEndEntity draws an endEntity from the space IssueCertificate and
// beyond can produce.
func randomEndEntity(t testing.TB, r *mrand.Rand, a *Authority) *endEntity {
	t.Helper()
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	serial := make([]byte, 1+r.IntN(20))
	for i := range serial {
		serial[i] = byte(r.Uint32())
	}
	serial[0] |= 1
	nb := time.Date(1950+r.IntN(150), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1e9), time.UTC)
	e := &endEntity{
		serial:     new(big.Int).SetBytes(serial),
		notBefore:  nb,
		notAfter:   nb.Add(time.Duration(r.Int64N(int64(60 * 365 * 24 * time.Hour)))),
		commonName: pick("", "www.example.test", "Example Corp", "*.example.test", "a&b", "é", strings.Repeat("n", 64), a.Cert.Subject.CommonName),
		keyUsage:   x509.KeyUsage(r.IntN(0x200)),
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageEmailProtection} {
		if r.IntN(2) == 0 {
			e.extKeyUsage = append(e.extKeyUsage, u)
		}
	}
	if r.IntN(4) != 0 {
		e.subjectKeyID = make([]byte, 20)
		for i := range e.subjectKeyID {
			e.subjectKeyID[i] = byte(r.Uint32())
		}
	}
	if r.IntN(3) != 0 {
		e.issuerURL = a.CertURL()
	}
	if r.IntN(3) != 0 {
		e.crlURL = a.CRLURL(r.IntN(2) == 0)
	}
	for range r.IntN(5) {
		e.dns = append(e.dns, strings.Repeat("d", 1+r.IntN(63))+".example.test")
	}
	for range r.IntN(3) {
		e.emails = append(e.emails, "u"+strings.Repeat("x", r.IntN(40))+"@example.test")
	}
	for range r.IntN(3) {
		ip := make(net.IP, 16)
		for i := range ip {
			ip[i] = byte(r.Uint32())
		}
		if r.IntN(2) == 0 {
			ip = ip[12:]
		}
		e.ips = append(e.ips, ip)
	}
	for range r.IntN(3) {
		e.uris = append(e.uris, mustURL(t, "https://example.test/"+strings.Repeat("p", r.IntN(200))))
	}
	return e
}

// TestEncodeTBSDeclines checks that encodeTBS leaves to x509 what it does
// not encode, and that IssueCertificate still issues through x509 then.
func TestEncodeTBSDeclines(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "Decline CA", KeyECDSAP256, "http://127.0.0.1:8080", now)
	other := newTestRoot(t, "Other CA", KeyECDSAP384, "", now) // testKey gives equal keys for equal types
	pub := testKey(t, KeyECDSAP256, 1).Public()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := subjectName("www.example.test")
	if err != nil {
		t.Fatal(err)
	}
	nb := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ok := &endEntity{serial: big.NewInt(5), notBefore: nb, notAfter: nb.Add(time.Hour), commonName: "www.example.test"}
	if _, accepted := encodeTBS(ok, a.Cert, spki, a.Key, subject); !accepted {
		t.Fatal("a plain certificate was declined")
	}
	for name, tc := range map[string]struct {
		mod func(e *endEntity)
		key crypto.Signer
	}{
		"wrapped key":        {func(*endEntity) {}, struct{ crypto.Signer }{a.Key}},
		"key of another CA":  {func(*endEntity) {}, other.Key},
		"unknown eku":        {func(e *endEntity) { e.extKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning} }, a.Key},
		"non-ASCII DNS name": {func(e *endEntity) { e.dns = []string{"bücher.example"} }, a.Key},
		"non-ASCII e-mail":   {func(e *endEntity) { e.emails = []string{"zoë@example.test"} }, a.Key},
		"non-UTC time":       {func(e *endEntity) { e.notAfter = nb.In(time.FixedZone("X", 3600)) }, a.Key},
		"year 10000":         {func(e *endEntity) { e.notAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, a.Key},
		"no serial":          {func(e *endEntity) { e.serial = nil }, a.Key},
		"zero serial":        {func(e *endEntity) { e.serial = new(big.Int) }, a.Key},
	} {
		e := *ok
		tc.mod(&e)
		if tbs, accepted := encodeTBS(&e, a.Cert, spki, tc.key, subject); accepted {
			t.Errorf("%s: encoded (%d bytes), want declined", name, len(tbs))
		}
	}

	// A wrapped CA key is declined, so IssueCertificate goes through
	// x509.CreateCertificate: the certificate has the same TBSCertificate
	// as with the bare key.
	wrapped := *a
	wrapped.Key = struct{ crypto.Signer }{a.Key}
	p := profile(t, ProfileTLSServer)
	csr, err := CheckCSR(makeCSR(t, testKey(t, KeyECDSAP256, 1), csrSpec{CN: "www.example.test"}), p)
	if err != nil {
		t.Fatal(err)
	}
	serial := big.NewInt(0x1234567890)
	viaX509, err := wrapped.IssueCertificate(csr, p, serial, now)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := a.IssueCertificate(csr, p, serial, now)
	if err != nil {
		t.Fatal(err)
	}
	c1, err := x509.ParseCertificate(viaX509.DER)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := x509.ParseCertificate(direct.DER)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1.RawTBSCertificate, c2.RawTBSCertificate) {
		t.Errorf("wrapped key's TBSCertificate differs\n got %x\nwant %x", c1.RawTBSCertificate, c2.RawTBSCertificate)
	}
	if err := c1.CheckSignatureFrom(a.Cert); err != nil {
		t.Errorf("wrapped key's certificate: %v", err)
	}
}

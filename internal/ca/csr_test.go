package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// sanExtension builds a subjectAltName extension with the given raw
// GeneralName entries.
func sanExtension(t *testing.T, names ...asn1.RawValue) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidExtSubjectAltName, Value: v}
}

func TestCheckCSRBadInput(t *testing.T) {
	ec := testKey(t, KeyECDSAP256, 1)
	srv := profile(t, ProfileTLSServer)
	cli := profile(t, ProfileTLSClient)
	good := makeCSR(t, ec, csrSpec{CN: "www.example.com"})
	goodPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: good})

	badSig := bytes.Clone(good)
	badSig[len(badSig)-1] ^= 0x01

	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecOnly := srv
	ecOnly.AllowedKeyTypes = []KeyType{KeyECDSAP256, KeyECDSAP384}
	rsa3072 := srv
	rsa3072.MinRSABits = 3072
	badProfile := srv
	badProfile.Validity = 0

	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("h%d.example.com", i)
	}
	registeredID := sanExtension(t,
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("www.example.com")},
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 8, Bytes: []byte{0x2a, 0x03, 0x04}},
	)

	cases := []struct {
		name string
		data []byte
		p    Profile
		want error
		kind string // SANError.Kind, when want is ErrSANNotAllowed
	}{
		{"oversized", make([]byte, MaxCSRSize+1), srv, ErrTooLarge, ""},
		{"empty", nil, srv, ErrMalformedCSR, ""},
		{"white space", []byte(" \n\t"), srv, ErrMalformedCSR, ""},
		{"garbage", []byte("this is not a request"), srv, ErrMalformedCSR, ""},
		{"truncated DER", good[:len(good)/2], srv, ErrMalformedCSR, ""},
		{"DER with trailing byte", append(bytes.Clone(good), 0), srv, ErrMalformedCSR, ""},
		{"truncated PEM", goodPEM[:len(goodPEM)/2], srv, ErrMalformedCSR, ""},
		{"PEM of a certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good}), srv, ErrMalformedCSR, ""},
		{"PEM with trailing data", append(bytes.Clone(goodPEM), "junk"...), srv, ErrMalformedCSR, ""},
		{"bad signature", badSig, srv, ErrBadSignature, ""},
		{"RSA 1024", makeCSR(t, rsa1024, csrSpec{CN: "www.example.com"}), srv, ErrKeyNotAllowed, ""},
		{"ECDSA P-521", makeCSR(t, p521, csrSpec{CN: "www.example.com"}), srv, ErrKeyNotAllowed, ""},
		{"RSA where profile wants ECDSA", makeCSR(t, testKey(t, KeyRSA2048, 1), csrSpec{CN: "www.example.com"}), ecOnly, ErrKeyNotAllowed, ""},
		{"RSA 2048 below profile minimum", makeCSR(t, testKey(t, KeyRSA2048, 1), csrSpec{CN: "www.example.com"}), rsa3072, ErrKeyNotAllowed, ""},
		{"e-mail on tls-server", makeCSR(t, ec, csrSpec{CN: "www.example.com", Emails: []string{"a@example.com"}}), srv, ErrSANNotAllowed, "email"},
		{"URI on tls-server", makeCSR(t, ec, csrSpec{CN: "www.example.com", URIs: []string{"spiffe://example.com/x"}}), srv, ErrSANNotAllowed, "uri"},
		{"IP on tls-client", makeCSR(t, ec, csrSpec{CN: "alice", IPs: []string{"10.0.0.1"}}), cli, ErrSANNotAllowed, "ip"},
		{"wildcard", makeCSR(t, ec, csrSpec{DNS: []string{"*.example.com"}}), srv, ErrSANNotAllowed, "dns"},
		{"underscore", makeCSR(t, ec, csrSpec{DNS: []string{"my_host.example.com"}}), srv, ErrSANNotAllowed, "dns"},
		{"trailing dot", makeCSR(t, ec, csrSpec{DNS: []string{"www.example.com."}}), srv, ErrSANNotAllowed, "dns"},
		{"IP as DNS name", makeCSR(t, ec, csrSpec{DNS: []string{"10.0.0.1"}}), srv, ErrSANNotAllowed, "dns"},
		{"unspecified IP", makeCSR(t, ec, csrSpec{IPs: []string{"0.0.0.0"}}), srv, ErrSANNotAllowed, "ip"},
		{"bad e-mail", makeCSR(t, ec, csrSpec{CN: "alice", Emails: []string{"alice"}}), cli, ErrSANNotAllowed, "email"},
		{"relative URI", makeCSR(t, ec, csrSpec{CN: "alice", URIs: []string{"/just/a/path"}}), cli, ErrSANNotAllowed, "uri"},
		{"registeredID name form", makeCSR(t, ec, csrSpec{CN: "www.example.com", Extra: []pkix.Extension{registeredID}}), srv, ErrSANNotAllowed, "other"},
		{"too many names", makeCSR(t, ec, csrSpec{DNS: many}), srv, ErrSANNotAllowed, "count"},
		{"CN that is no DNS name", makeCSR(t, ec, csrSpec{CN: "My Server", DNS: []string{"www.example.com"}}), srv, ErrSubjectNotAllowed, ""},
		{"no names at all", makeCSR(t, ec, csrSpec{}), srv, ErrSubjectNotAllowed, ""},
		{"no names on tls-client", makeCSR(t, ec, csrSpec{}), cli, ErrSubjectNotAllowed, ""},
		{"CN too long", makeCSR(t, ec, csrSpec{CN: strings.Repeat("a", 65)}), cli, ErrSubjectNotAllowed, ""},
		{"invalid profile", good, badProfile, ErrBadProfile, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := CheckCSR(c.data, c.p)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			// Each failure matches exactly one of the request sentinels.
			for _, other := range []error{ErrTooLarge, ErrMalformedCSR, ErrBadSignature, ErrKeyNotAllowed, ErrSANNotAllowed, ErrSubjectNotAllowed, ErrBadProfile} {
				if other != c.want && errors.Is(err, other) {
					t.Fatalf("err = %v also matches %v", err, other)
				}
			}
			if c.kind != "" {
				var se *SANError
				if !errors.As(err, &se) || se.Kind != c.kind || se.Profile != c.p.Name {
					t.Fatalf("err = %#v, want SANError of kind %s", err, c.kind)
				}
			}
			if c.want == ErrKeyNotAllowed {
				var kpe *KeyPolicyError
				if !errors.As(err, &kpe) || kpe.Profile != c.p.Name || kpe.Key == "" {
					t.Fatalf("err = %#v, want KeyPolicyError naming profile and key", err)
				}
			}
		})
	}
}

// TestCSRFormatMessages: data that is not one whole request gives a
// *CSRFormatError whose message says what a request must be and, in words,
// what was found; never the ASN.1 decoder's internals.
func TestCSRFormatMessages(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "Format CA", KeyECDSAP256, "", now)
	srv := profile(t, ProfileTLSServer)
	good := makeCSR(t, testKey(t, KeyECDSAP256, 1), csrSpec{CN: "www.example.com"})
	goodPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: good})
	cert := a.Cert.Raw
	const accepted = "not a certificate request: expected PEM 'CERTIFICATE REQUEST' or DER PKCS#10"
	cases := []struct {
		name   string
		data   []byte
		detail string // "" : the message is accepted alone
	}{
		{"text", []byte("garbage\n"), ""},
		{"empty", nil, "the data is empty"},
		{"truncated DER", good[:len(good)/2], fmt.Sprintf("the DER data is truncated: %d of %d bytes", len(good)/2, len(good))},
		{"DER with a trailing byte", append(bytes.Clone(good), 0), "1 byte follows the DER request"},
		{"DER with trailing bytes", append(bytes.Clone(good), 0, 0), "2 bytes follow the DER request"},
		{"DER certificate", cert, "found an X.509 certificate, not a request"},
		{"PEM certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), `found a PEM "CERTIFICATE" block`},
		{"truncated PEM", goodPEM[:len(goodPEM)/2], "the PEM block is incomplete or damaged"},
		{"PEM with trailing data", append(bytes.Clone(goodPEM), "junk"...), "data follows the PEM block"},
		{"empty SEQUENCE", []byte{0x30, 0x00}, "the DER structure is not a PKCS#10 request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := accepted
			if c.detail != "" {
				want += " (" + c.detail + ")"
			}
			for _, check := range []func() error{
				func() error { _, err := ParseCSR(c.data); return err },
				func() error { _, err := CheckCSR(c.data, srv); return err },
			} {
				err := check()
				var fe *CSRFormatError
				if !errors.As(err, &fe) || !errors.Is(err, ErrMalformedCSR) {
					t.Fatalf("err = %#v, want a *CSRFormatError matching ErrMalformedCSR", err)
				}
				if err.Error() != want {
					t.Fatalf("message %q, want %q", err, want)
				}
			}
		})
	}
	if csr, err := ParseCSR(goodPEM); err != nil || csr.Subject.CommonName != "www.example.com" {
		t.Fatalf("ParseCSR of a good request: %v, %v", csr, err)
	}
	if _, err := ParseCSR(make([]byte, MaxCSRSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ParseCSR of an oversized request: %v", err)
	}
}

// TestCheckCSRNames checks which names a request ends up with.
func TestCheckCSRNames(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "Names CA", KeyECDSAP256, "", now)
	ec := testKey(t, KeyECDSAP256, 1)
	srv := profile(t, ProfileTLSServer)

	c := issueFor(t, a, srv, ec, csrSpec{CN: "WWW.Example.com", DNS: []string{"api.example.com", "API.example.com"}}, now)
	if c.Subject.CommonName != "www.example.com" || !slices.Equal(c.DNSNames, []string{"api.example.com", "www.example.com"}) {
		t.Errorf("CN %q DNS %v", c.Subject.CommonName, c.DNSNames)
	}
	c = issueFor(t, a, srv, ec, csrSpec{CN: "127.0.0.1"}, now)
	if len(c.IPAddresses) != 1 || c.IPAddresses[0].String() != "127.0.0.1" || len(c.DNSNames) != 0 {
		t.Errorf("IP CN: IPs %v DNS %v", c.IPAddresses, c.DNSNames)
	}
	c = issueFor(t, a, srv, ec, csrSpec{IPs: []string{"::1"}}, now)
	if c.Subject.CommonName != "" || len(c.IPAddresses) != 1 {
		t.Errorf("SAN-only request: CN %q IPs %v", c.Subject.CommonName, c.IPAddresses)
	}
	wild := srv
	wild.Name = "tls-wildcard"
	wild.SAN.Wildcard = true
	c = issueFor(t, a, wild, ec, csrSpec{DNS: []string{"*.example.com"}}, now)
	if !slices.Equal(c.DNSNames, []string{"*.example.com"}) {
		t.Errorf("wildcard: %v", c.DNSNames)
	}
	c = issueFor(t, a, profile(t, ProfileTLSClient), ec, csrSpec{CN: "Alice Example", Emails: []string{"alice@example.com"}, URIs: []string{"spiffe://example.com/alice"}}, now)
	if c.Subject.CommonName != "Alice Example" || len(c.EmailAddresses) != 1 || len(c.URIs) != 1 || len(c.DNSNames) != 0 {
		t.Errorf("client: CN %q emails %v URIs %v DNS %v", c.Subject.CommonName, c.EmailAddresses, c.URIs, c.DNSNames)
	}
}

// TestCheckCSRFromOpenSSL feeds requests made by openssl req, in PEM and
// DER, and an RSA-1024 one that must be refused.
func TestCheckCSRFromOpenSSL(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "k.pem")
	pemPath := filepath.Join(dir, "r.pem")
	mustOpenSSL(t, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", keyPath, "-out", pemPath, "-subj", "/CN=www.example.com",
		"-addext", "subjectAltName=DNS:www.example.com,DNS:api.example.com,IP:127.0.0.1")
	derPath := filepath.Join(dir, "r.der")
	mustOpenSSL(t, "req", "-in", pemPath, "-outform", "DER", "-out", derPath)
	for _, p := range []string{pemPath, derPath} {
		csr, err := CheckCSR(readFile(t, p), profile(t, ProfileTLSServer))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(csr.DNSNames) != 2 || len(csr.IPAddresses) != 1 {
			t.Fatalf("%s: names %v %v", p, csr.DNSNames, csr.IPAddresses)
		}
	}
	weak := filepath.Join(dir, "weak.pem")
	mustOpenSSL(t, "req", "-new", "-newkey", "rsa:1024", "-nodes", "-keyout", filepath.Join(dir, "wk.pem"),
		"-out", weak, "-subj", "/CN=www.example.com")
	if _, err := CheckCSR(readFile(t, weak), profile(t, ProfileTLSServer)); !errors.Is(err, ErrKeyNotAllowed) {
		t.Fatalf("RSA-1024 request: err = %v, want ErrKeyNotAllowed", err)
	}
}

// TestCSRTheCACannotRead: a well-formed request with a key on a curve this
// CA does not support (secp256k1, made by openssl) is not "not a
// certificate request": the message says the CA cannot read it, and why.
func TestCSRTheCACannotRead(t *testing.T) {
	out := filepath.Join(t.TempDir(), "k1.der")
	if o, err := runOpenSSL(t, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1", "-nodes",
		"-keyout", filepath.Join(t.TempDir(), "k1.key"), "-subj", "/CN=k1.example.test", "-outform", "DER", "-out", out); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, o)
	}
	der, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseCSR(der)
	var fe *CSRFormatError
	if !errors.As(err, &fe) || !fe.Unreadable || !errors.Is(err, ErrMalformedCSR) ||
		!strings.HasPrefix(err.Error(), "a certificate request this CA cannot read: ") || strings.Contains(err.Error(), "not a certificate request") {
		t.Fatalf("secp256k1 request: %v", err)
	}
}

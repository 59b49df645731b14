package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNameConstraintRules(t *testing.T) {
	dns := []struct {
		name                string
		permitted, excluded []string
		ok                  bool
	}{
		{"www.example.com", []string{"example.com"}, nil, true},
		{"example.com", []string{"example.com"}, nil, true},
		{"WWW.Example.COM", []string{"example.com"}, nil, true},
		{"www.example.com.", []string{"example.com"}, nil, true},
		{"notexample.com", []string{"example.com"}, nil, false},
		{"www.example.org", []string{"example.com"}, nil, false},
		{"example.com", []string{".example.com"}, nil, false}, // strictly below
		{"a.example.com", []string{".example.com"}, nil, true},
		{"*.example.com", []string{"example.com"}, nil, true},
		{"*.example.com", []string{"www.example.com"}, nil, false},
		{"a.bad.example.com", []string{"example.com"}, []string{"bad.example.com"}, false},
		{"bad.example.com", nil, []string{".bad.example.com"}, false}, // excluded read widely
		{"good.example.com", nil, []string{"bad.example.com"}, true},
		{"*.example.com", nil, []string{"bad.example.com"}, false}, // the wildcard covers it
		{"*.example.com", nil, []string{"x.bad.example.com"}, true},
		{"*.example.com", nil, []string{".bad.example.com"}, true},
		{"anything.test", []string{"example.com"}, []string{""}, false}, // empty excludes all
	}
	for _, c := range dns {
		if _, ok := dnsAllowed(c.name, c.permitted, c.excluded); ok != c.ok {
			t.Errorf("DNS %q permitted %q excluded %q: allowed %v, want %v", c.name, c.permitted, c.excluded, ok, c.ok)
		}
	}

	emails := []struct {
		addr                string
		permitted, excluded []string
		ok                  bool
	}{
		{"a@example.com", []string{"example.com"}, nil, true},
		{"a@EXAMPLE.com", []string{"example.com"}, nil, true},
		{"a@sub.example.com", []string{"example.com"}, nil, false}, // that host only
		{"a@sub.example.com", []string{".example.com"}, nil, true},
		{"a@example.com", []string{".example.com"}, nil, false},
		{"a@example.com", []string{"a@example.com"}, nil, true},
		{"b@example.com", []string{"a@example.com"}, nil, false},
		{"a@sub.example.com", nil, []string{"example.com"}, false}, // excluded read widely
		{"a@other.com", nil, []string{"example.com"}, true},
	}
	for _, c := range emails {
		if _, ok := emailAllowed(c.addr, c.permitted, c.excluded); ok != c.ok {
			t.Errorf("email %q permitted %q excluded %q: allowed %v, want %v", c.addr, c.permitted, c.excluded, ok, c.ok)
		}
	}

	uris := []struct {
		uri                 string
		permitted, excluded []string
		ok                  bool
	}{
		{"https://example.com/x", []string{"example.com"}, nil, true},
		{"https://www.example.com/x", []string{"example.com"}, nil, false}, // that host only
		{"https://www.example.com/x", []string{".example.com"}, nil, true},
		{"spiffe://www.example.com/w", nil, []string{"example.com"}, false},
		{"https://10.0.0.1/x", []string{"example.com"}, nil, false},
		{"https://10.0.0.1/x", nil, nil, true},
		{"urn:uuid:0f1e", []string{"example.com"}, nil, false},
	}
	for _, c := range uris {
		u, err := url.Parse(c.uri)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := uriAllowed(u, c.permitted, c.excluded); ok != c.ok {
			t.Errorf("URI %q permitted %q excluded %q: allowed %v, want %v", c.uri, c.permitted, c.excluded, ok, c.ok)
		}
	}

	cidr := func(s string) *net.IPNet {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	ips := []struct {
		ip                  string
		permitted, excluded []*net.IPNet
		ok                  bool
	}{
		{"10.1.2.3", []*net.IPNet{cidr("10.0.0.0/8")}, nil, true},
		{"11.1.2.3", []*net.IPNet{cidr("10.0.0.0/8")}, nil, false},
		{"10.9.0.1", []*net.IPNet{cidr("10.0.0.0/8")}, []*net.IPNet{cidr("10.9.0.0/16")}, false},
		{"2001:db8::1", []*net.IPNet{cidr("10.0.0.0/8")}, nil, false},
		{"2001:db8::1", []*net.IPNet{cidr("2001:db8::/32")}, nil, true},
		{"::ffff:10.1.2.3", []*net.IPNet{cidr("10.0.0.0/8")}, nil, true}, // parsed as IPv4
	}
	for _, c := range ips {
		if _, ok := ipAllowed(net.ParseIP(c.ip), c.permitted, c.excluded); ok != c.ok {
			t.Errorf("IP %s permitted %v excluded %v: allowed %v, want %v", c.ip, c.permitted, c.excluded, ok, c.ok)
		}
	}
}

// TestNameConstraintsOfTheParent: a subordinate whose parent (openssl)
// constrained its names issues inside them — openssl and crypto/x509
// accept those certificates — and refuses, with the name and the
// constraint, what falls outside, which both validators would reject.
func TestNameConstraintsOfTheParent(t *testing.T) {
	now := time.Now()
	cs := newConstrainedSub(t, "Example Constrained CA", now, "permitted;DNS:example.com,permitted;IP:10.0.0.0/255.0.0.0,"+
		"permitted;email:example.com,permitted;URI:.example.com,excluded;DNS:secret.example.com\n")
	dir, root, certs, sub, subKey := cs.dir, cs.root, cs.certs, cs.sub, cs.key
	rootPath, subPath := cs.rootPath, cs.subPath
	wild := profile(t, ProfileTLSServer)
	wild.SAN.Wildcard = true
	server, client := profile(t, ProfileTLSServer), profile(t, ProfileTLSClient)

	cases := []struct {
		p    Profile
		spec csrSpec
		bad  string // the refused name, "" when the request is inside
	}{
		{server, csrSpec{CN: "www.example.com", IPs: []string{"10.1.2.3"}}, ""},
		{client, csrSpec{CN: "alice", Emails: []string{"alice@example.com"}, URIs: []string{"spiffe://w.example.com/alice"}}, ""},
		{server, csrSpec{CN: "www.example.org"}, "www.example.org"},
		{server, csrSpec{CN: "www.example.com", DNS: []string{"db.secret.example.com"}}, "db.secret.example.com"},
		{server, csrSpec{CN: "www.example.com", IPs: []string{"192.168.1.1"}}, "192.168.1.1"},
		{client, csrSpec{CN: "bob", Emails: []string{"bob@mail.example.com"}}, "bob@mail.example.com"},
		{client, csrSpec{CN: "bob", URIs: []string{"spiffe://example.org/bob"}}, "spiffe://example.org/bob"},
		{wild, csrSpec{CN: "*.example.com"}, "*.example.com"}, // stands for secret.example.com
	}
	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	inter := x509.NewCertPool()
	inter.AddCert(certs[0])
	for i, c := range cases {
		key := testKey(t, KeyECDSAP256, 1)
		csr, err := CheckCSR(makeCSR(t, key, c.spec), c.p)
		if err != nil {
			t.Fatalf("case %d: CheckCSR: %v", i, err)
		}
		serial, err := NewSerial()
		if err != nil {
			t.Fatal(err)
		}
		checkErr := sub.CheckNameConstraints(csr, c.p)
		der, err := sub.Issue(csr, c.p, serial, now)
		if c.bad == "" {
			if err != nil || checkErr != nil {
				t.Fatalf("case %d (%v): refused inside the constraints: issue %v, check %v", i, c.spec, err, checkErr)
			}
			leaf, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("case %d: crypto/x509 refuses the certificate issued: %v", i, err)
			}
			leafPath := writeTemp(t, dir, "leaf.pem", certPEM(leaf))
			if out, err := runOpenSSL(t, "verify", "-CAfile", rootPath, "-untrusted", subPath, leafPath); err != nil || !strings.Contains(out, ": OK") {
				t.Errorf("case %d: openssl refuses the certificate issued: %v\n%s", i, err, out)
			}
			continue
		}
		var se *SANError
		if !errors.Is(err, ErrSANNotAllowed) || !errors.As(err, &se) || se.Value != c.bad ||
			!strings.Contains(err.Error(), `name constraints of CA certificate "Example Constrained CA"`) {
			t.Errorf("case %d: issuing %q outside the constraints: %v, want a SANError naming it and the CA certificate", i, c.bad, err)
		}
		if checkErr == nil || fmt.Sprint(checkErr) != fmt.Sprint(err) {
			t.Errorf("case %d: CheckNameConstraints = %v, want the issuing error %v", i, checkErr, err)
		}
	}

	// What the check prevents: the same outside name signed without it is
	// a certificate openssl rejects.
	tmpl := &x509.Certificate{SerialNumber: mustSerial(t), Subject: pkix.Name{CommonName: "www.example.org"},
		DNSNames: []string{"www.example.org"}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	key := testKey(t, KeyECDSAP256, 1)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, certs[0], key.Public(), subKey)
	if err != nil {
		t.Fatal(err)
	}
	outside, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	outPath := writeTemp(t, dir, "outside.pem", certPEM(outside))
	if out, err := runOpenSSL(t, "verify", "-CAfile", rootPath, "-untrusted", subPath, outPath); err == nil {
		t.Errorf("openssl accepted a name outside the constraints; the test's premise is wrong:\n%s", out)
	}
}

func mustSerial(t *testing.T) *big.Int {
	t.Helper()
	s, err := NewSerial()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// constrainedSub is a subordinate CA whose certificate a root signed with
// openssl, with name constraints.
type constrainedSub struct {
	dir               string
	root, sub         *Authority
	key               crypto.Signer
	certs             []*x509.Certificate // the subordinate's certificate
	rootPath, subPath string
}

// newConstrainedSub makes one: constraints is the value of openssl's
// nameConstraints setting after "critical,", followed by any sections it
// names.
func newConstrainedSub(t *testing.T, name string, now time.Time, constraints string) *constrainedSub {
	t.Helper()
	cs := &constrainedSub{dir: t.TempDir()}
	cs.root = newTestRoot(t, "Example Root", KeyECDSAP256, "", now)
	cs.rootPath = writeTemp(t, cs.dir, "root.pem", certPEM(cs.root.Cert))
	rootKey := filepath.Join(cs.dir, "root.key")
	if err := WriteKeyFile(rootKey, cs.root.Key, nil); err != nil {
		t.Fatal(err)
	}
	cs.key = testKey(t, KeyECDSAP256, 2)
	csrPEM, err := NewSubordinateCSR(name, cs.key)
	if err != nil {
		t.Fatal(err)
	}
	csrPath := writeTemp(t, cs.dir, "sub.csr", csrPEM)
	ext := writeTemp(t, cs.dir, "ext.cnf", []byte("basicConstraints=critical,CA:TRUE,pathlen:0\n"+
		"keyUsage=critical,digitalSignature,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"+
		"nameConstraints=critical,"+constraints))
	cs.subPath = filepath.Join(cs.dir, "sub.pem")
	mustOpenSSL(t, "x509", "-req", "-in", csrPath, "-CA", cs.rootPath, "-CAkey", rootKey, "-set_serial", "0x77",
		"-days", "30", "-extfile", ext, "-out", cs.subPath)
	if cs.certs, err = ParseCertsPEM(readFile(t, cs.subPath)); err != nil {
		t.Fatal(err)
	}
	if cs.sub, err = NewAuthority(name, cs.certs[0], cs.key, []*x509.Certificate{cs.root.Cert}, ""); err != nil {
		t.Fatal(err)
	}
	return cs
}

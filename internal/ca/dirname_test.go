package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestDirectoryNameConstraints: under a parent (openssl) that permits the
// subtree O=Example,OU=Web, the CA writes each subject as that subtree
// followed by the common name, and openssl accepts the certificates; a
// subject in an excluded subtree (compared case-insensitively) is refused
// at submission and at signing; and the CN-only subject the CA wrote
// before is what openssl rejects.
func TestDirectoryNameConstraints(t *testing.T) {
	now := time.Now()
	cs := newConstrainedSub(t, "Example Web CA", now, "permitted;dirName:web,permitted;DNS:example.com,excluded;dirName:bad\n"+
		"[web]\nO=Example\nOU=Web\n[bad]\nO=EXAMPLE\nOU=web\nCN=forbidden.example.com\n")
	dir, certs, sub, subKey := cs.dir, cs.certs, cs.sub, cs.key
	rootPath, subPath := cs.rootPath, cs.subPath
	if d := DescribeNameConstraints(certs[0]); !strings.Contains(d, "permitted DNS example.com, directory name OU=Web,O=Example") ||
		!strings.Contains(d, "excluded directory name CN=forbidden.example.com,OU=web,O=EXAMPLE") {
		t.Errorf("described as %q", d)
	}
	server := profile(t, ProfileTLSServer)

	key := testKey(t, KeyECDSAP256, 1)
	csr, err := CheckCSR(makeCSR(t, key, csrSpec{CN: "www.example.com"}), server)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.CheckNameConstraints(csr, server); err != nil {
		t.Fatalf("a subject inside the subtree refused at submission: %v", err)
	}
	iss, err := sub.IssueCertificate(csr, server, mustSerial(t), now)
	if err != nil {
		t.Fatalf("issue inside the subtree: %v", err)
	}
	leaf, err := x509.ParseCertificate(iss.DER)
	if err != nil {
		t.Fatal(err)
	}
	if got := leaf.Subject.String(); got != "CN=www.example.com,OU=Web,O=Example" || iss.Subject.String() != got {
		t.Errorf("subject %q (reported %q), want CN=www.example.com,OU=Web,O=Example", got, iss.Subject.String())
	}
	// The subtree's RDNs are copied as the constraint encodes them.
	d, err := dirNameConstraints(certs[0])
	if err != nil || len(d.permitted) != 1 || len(d.excluded) != 1 {
		t.Fatalf("parsed %+v, %v", d, err)
	}
	if rdns, err := nameRDNs(leaf.RawSubject); err != nil || !rdnsPrefix(d.permitted[0], rdns) || len(rdns) != 3 {
		t.Errorf("subject RDNs %x do not start with the subtree's %x (%v)", rdns, d.permitted[0], err)
	}
	leafPath := writeTemp(t, dir, "leaf.pem", certPEM(leaf))
	if out, err := runOpenSSL(t, "verify", "-CAfile", rootPath, "-untrusted", subPath, leafPath); err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("openssl refuses the certificate issued: %v\n%s", err, out)
	}

	// The excluded subject, written in another case than the constraint.
	csr, err = CheckCSR(makeCSR(t, key, csrSpec{CN: "forbidden.example.com"}), server)
	if err != nil {
		t.Fatal(err)
	}
	checkErr := sub.CheckNameConstraints(csr, server)
	_, err = sub.IssueCertificate(csr, server, mustSerial(t), now)
	var se *SANError
	if !errors.As(err, &se) || se.Kind != "subject" || !strings.Contains(err.Error(), "excluded: directory name") || checkErr == nil || checkErr.Error() != err.Error() {
		t.Errorf("excluded subject: issue %v, check %v", err, checkErr)
	}

	// What the constraint forbids: the CN-only subject, signed directly.
	tmpl := &x509.Certificate{SerialNumber: mustSerial(t), Subject: pkix.Name{CommonName: "www.example.com"},
		DNSNames: []string{"www.example.com"}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, certs[0], key.Public(), subKey)
	if err != nil {
		t.Fatal(err)
	}
	cnOnly, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runOpenSSL(t, "verify", "-CAfile", rootPath, "-untrusted", subPath, writeTemp(t, dir, "cn.pem", certPEM(cnOnly))); err == nil {
		t.Errorf("openssl accepted a CN-only subject under the directory-name constraint; the test's premise is wrong:\n%s", out)
	}
}

// dirNameExt encodes a nameConstraints extension of directory names.
func dirNameExt(t *testing.T, permitted, excluded []pkix.RDNSequence) pkix.Extension {
	t.Helper()
	subtrees := func(tag int, names []pkix.RDNSequence) []byte {
		var all []byte
		for _, n := range names {
			der, err := asn1.Marshal(n)
			if err != nil {
				t.Fatal(err)
			}
			base, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: der})
			sub, _ := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: base})
			all = append(all, sub...)
		}
		if len(all) == 0 {
			return nil
		}
		b, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: all})
		return b
	}
	v, _ := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true,
		Bytes: append(subtrees(0, permitted), subtrees(1, excluded)...)})
	return pkix.Extension{Id: oidNameConstraints, Critical: true, Value: v}
}

func rdnSeq(attrs ...string) pkix.RDNSequence {
	oids := map[string]asn1.ObjectIdentifier{"O": {2, 5, 4, 10}, "OU": {2, 5, 4, 11}, "CN": {2, 5, 4, 3}}
	var seq pkix.RDNSequence
	for _, a := range attrs {
		k, v, _ := strings.Cut(a, "=")
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oids[k], Value: v}})
	}
	return seq
}

// TestSubjectForChain checks the choice of the subtree across a chain:
// the most specific permitted subtree that every constraining certificate
// permits, and a refusal when there is none.
func TestSubjectForChain(t *testing.T) {
	certWith := func(name string, permitted, excluded []pkix.RDNSequence) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: name}, Extensions: []pkix.Extension{dirNameExt(t, permitted, excluded)}}
	}
	cases := []struct {
		name  string
		cert  *x509.Certificate
		chain []*x509.Certificate
		cn    string
		want  string // the subject, or "!" and part of the error
	}{
		{"none", &x509.Certificate{}, nil, "a.test", "CN=a.test"},
		{"empty subject", certWith("CA", []pkix.RDNSequence{rdnSeq("O=A")}, nil), nil, "", ""},
		{"one", certWith("CA", []pkix.RDNSequence{rdnSeq("O=A")}, nil), nil, "a.test", "CN=a.test,O=A"},
		{"nested: the narrower below", certWith("CA", []pkix.RDNSequence{rdnSeq("O=A", "OU=B")}, nil),
			[]*x509.Certificate{certWith("Root", []pkix.RDNSequence{rdnSeq("O=A")}, nil)}, "a.test", "CN=a.test,OU=B,O=A"},
		{"nested: the narrower above", certWith("CA", []pkix.RDNSequence{rdnSeq("O=A")}, nil),
			[]*x509.Certificate{certWith("Root", []pkix.RDNSequence{rdnSeq("O=A", "OU=B")}, nil)}, "a.test", "CN=a.test,OU=B,O=A"},
		{"disjoint", certWith("CA", []pkix.RDNSequence{rdnSeq("O=A")}, nil),
			[]*x509.Certificate{certWith("Root", []pkix.RDNSequence{rdnSeq("O=B")}, nil)}, "a.test", "!no subject satisfies"},
		{"excluded only", certWith("CA", nil, []pkix.RDNSequence{rdnSeq("CN=A.TEST")}), nil, "a.test", "!excluded: directory name CN=A.TEST"},
		{"excluded elsewhere", certWith("CA", nil, []pkix.RDNSequence{rdnSeq("O=X")}), nil, "a.test", "CN=a.test"},
		{"excluded below the permitted", certWith("CA", []pkix.RDNSequence{rdnSeq("O=A")}, []pkix.RDNSequence{rdnSeq("O=a", "CN=a.test")}),
			nil, "a.test", "!excluded"},
	}
	for _, c := range cases {
		a := &Authority{Cert: c.cert, Chain: c.chain}
		der, name, err := a.subjectFor(c.cn, "p")
		if bad, ok := strings.CutPrefix(c.want, "!"); ok {
			if !errors.Is(err, ErrSANNotAllowed) || !strings.Contains(err.Error(), bad) {
				t.Errorf("%s: %v, want an error with %q", c.name, err, bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var seq pkix.RDNSequence
		if _, err := asn1.Unmarshal(der, &seq); err != nil || seq.String() != c.want || name.String() != c.want {
			t.Errorf("%s: subject %q (name %q, %v), want %q", c.name, seq.String(), name.String(), err, c.want)
		}
	}
	// CheckSubjectConstraints (install-cert's warning) refuses the disjoint
	// chain only.
	for _, c := range cases {
		err := CheckSubjectConstraints(c.cert, c.chain)
		if (err != nil) != (c.name == "disjoint") || (err != nil && !strings.Contains(err.Error(), "every request with a common name will be refused")) {
			t.Errorf("%s: CheckSubjectConstraints = %v", c.name, err)
		}
	}
	// A malformed extension is an error, not an unconstrained subject.
	bad := &x509.Certificate{Extensions: []pkix.Extension{{Id: oidNameConstraints, Value: []byte{0x30, 0x03, 0xa0, 0x01}}}}
	if _, _, err := (&Authority{Cert: bad}).subjectFor("a.test", "p"); err == nil {
		t.Error("a malformed nameConstraints extension was ignored")
	}
	if !bytes.Equal(wrapName(nil), []byte{0x30, 0}) {
		t.Error("the empty name")
	}
}

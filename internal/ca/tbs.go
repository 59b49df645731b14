package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"net/url"
	"time"
	"unicode/utf8"
)

// Direct encoding of end-entity TBSCertificates.
//
// x509.CreateCertificate encodes a certificate through encoding/asn1's
// reflection, which costs about as much CPU as the ECDSA signature itself
// and allocates some ten kilobytes per certificate. IssueCertificate
// issues one shape of certificate only (the fields of endEntity), so
// encodeTBS writes that shape's DER directly. It is not a second
// definition of the certificate: the reference is x509.CreateCertificate
// applied to endEntity.template(), and the tests require encodeTBS to
// produce the same bytes for every key type, profile, name form and
// validity boundary (TestEncodeTBSMatchesX509, FuzzEncodeTBS). Whatever
// encodeTBS does not handle exactly (a CA key of another type, an unknown
// extended key usage, a name that is not ASCII, a year outside
// 0000..9999, a private key that does not belong to the CA certificate)
// it declines, and the certificate is made by x509.CreateCertificate.
//
// The TBSCertificate written is (RFC 5280 §4.1, in this order, as
// x509.CreateCertificate writes it):
//
//	SEQUENCE {
//	  [0] EXPLICIT INTEGER 2                      -- v3
//	  INTEGER serial
//	  AlgorithmIdentifier                          -- the CA key's, see caSignature
//	  Name issuer                                  -- the CA certificate's subject, as encoded there
//	  SEQUENCE { notBefore, notAfter }             -- UTCTime for 1950..2049, else GeneralizedTime
//	  Name subject                                 -- CN only (encoding/asn1 chooses the string type), or empty;
//	                                                 after a directory-name constraint's RDNs (dirname.go)
//	  SubjectPublicKeyInfo                         -- x509.MarshalPKIXPublicKey
//	  [3] EXPLICIT SEQUENCE {                      -- extensions
//	    keyUsage (critical), extKeyUsage, basicConstraints cA=FALSE (critical),
//	    subjectKeyIdentifier, authorityKeyIdentifier (when the subject differs
//	    from the issuer and the CA certificate has a key identifier),
//	    authorityInfoAccess caIssuers, subjectAltName (critical when the
//	    subject is empty; DNS, e-mail, IP, URI in that order),
//	    cRLDistributionPoints
//	  }
//	}

// endEntity is what varies between the end-entity certificates a CA
// issues. Empty or zero fields are left out of the certificate.
type endEntity struct {
	serial              *big.Int
	notBefore, notAfter time.Time
	commonName          string
	rawSubject          []byte // the subject's DER, when not the common name alone (dirname.go)
	keyUsage            x509.KeyUsage
	extKeyUsage         []x509.ExtKeyUsage
	subjectKeyID        []byte
	issuerURL, crlURL   string
	dns, emails         []string
	ips                 []net.IP
	uris                []*url.URL
}

// template returns the x509.CreateCertificate template for e.
func (e *endEntity) template() *x509.Certificate {
	t := &x509.Certificate{
		SerialNumber:          e.serial,
		Subject:               pkix.Name{CommonName: e.commonName},
		RawSubject:            e.rawSubject,
		NotBefore:             e.notBefore,
		NotAfter:              e.notAfter,
		KeyUsage:              e.keyUsage,
		ExtKeyUsage:           e.extKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              e.dns,
		IPAddresses:           e.ips,
		EmailAddresses:        e.emails,
		URIs:                  e.uris,
		SubjectKeyId:          e.subjectKeyID,
	}
	if e.issuerURL != "" {
		t.IssuingCertificateURL = []string{e.issuerURL}
	}
	if e.crlURL != "" {
		t.CRLDistributionPoints = []string{e.crlURL}
	}
	return t
}

// DER encodings of the signature AlgorithmIdentifiers x509.CreateCertificate
// chooses for each CA key type.
var (
	algECDSAWithSHA256 = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}
	algECDSAWithSHA384 = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}
	algECDSAWithSHA512 = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04}
	algSHA256WithRSA   = []byte{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00}
	algEd25519         = []byte{0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70}
)

// caSignature returns the signature AlgorithmIdentifier (DER) and signer
// options x509.CreateCertificate uses for a standard library CA key, or
// false for any other key.
func caSignature(key crypto.Signer) ([]byte, crypto.SignerOpts, bool) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return algECDSAWithSHA256, crypto.SHA256, true
		case elliptic.P384():
			return algECDSAWithSHA384, crypto.SHA384, true
		case elliptic.P521():
			return algECDSAWithSHA512, crypto.SHA512, true
		}
	case *rsa.PrivateKey:
		return algSHA256WithRSA, crypto.SHA256, true
	case ed25519.PrivateKey:
		return algEd25519, crypto.Hash(0), true
	}
	return nil, nil, false
}

// DER contents of the object identifiers encodeTBS writes.
var (
	oidBytesKeyUsage        = []byte{0x55, 0x1d, 0x0f}                               // 2.5.29.15
	oidBytesExtKeyUsage     = []byte{0x55, 0x1d, 0x25}                               // 2.5.29.37
	oidBytesBasicConstr     = []byte{0x55, 0x1d, 0x13}                               // 2.5.29.19
	oidBytesSubjectKeyID    = []byte{0x55, 0x1d, 0x0e}                               // 2.5.29.14
	oidBytesAuthorityKeyID  = []byte{0x55, 0x1d, 0x23}                               // 2.5.29.35
	oidBytesAuthorityInfo   = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01} // 1.3.6.1.5.5.7.1.1
	oidBytesCAIssuers       = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02} // 1.3.6.1.5.5.7.48.2
	oidBytesSubjectAltName  = []byte{0x55, 0x1d, 0x11}                               // 2.5.29.17
	oidBytesCRLDistribution = []byte{0x55, 0x1d, 0x1f}                               // 2.5.29.31
	oidBytesServerAuth      = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01} // 1.3.6.1.5.5.7.3.1
	oidBytesClientAuth      = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02} // 1.3.6.1.5.5.7.3.2
	oidBytesCodeSigning     = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03} // 1.3.6.1.5.5.7.3.3
	oidBytesEmailProtection = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04} // 1.3.6.1.5.5.7.3.4
	derVersion3             = []byte{0xa0, 0x03, 0x02, 0x01, 0x02}                   // [0] EXPLICIT INTEGER 2
	derTrue                 = []byte{0x01, 0x01, 0xff}                               // BOOLEAN TRUE
	derEmptySequence        = []byte{0x30, 0x00}                                     // SEQUENCE {}
)

// ekuOID returns the DER contents of an extended key usage's identifier.
func ekuOID(u x509.ExtKeyUsage) ([]byte, bool) {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return oidBytesServerAuth, true
	case x509.ExtKeyUsageClientAuth:
		return oidBytesClientAuth, true
	case x509.ExtKeyUsageCodeSigning:
		return oidBytesCodeSigning, true
	case x509.ExtKeyUsageEmailProtection:
		return oidBytesEmailProtection, true
	}
	return nil, false
}

// DER tags.
const (
	tagBoolean     = 0x01
	tagInteger     = 0x02
	tagBitString   = 0x03
	tagOctetString = 0x04
	tagOID         = 0x06
	tagUTCTime     = 0x17
	tagGenTime     = 0x18
	tagSequence    = 0x30
	tagCtx0        = 0xa0 // [0] constructed
	tagCtx3        = 0xa3 // [3] constructed
	tagKeyID       = 0x80 // [0] primitive
	tagEmail       = 0x81 // [1] primitive, rfc822Name
	tagDNS         = 0x82 // [2] primitive, dNSName
	tagURI         = 0x86 // [6] primitive, uniformResourceIdentifier
	tagIP          = 0x87 // [7] primitive, iPAddress
)

// derWriter appends DER to one buffer. open writes a tag and a one-byte
// length placeholder; close fixes the length, moving the contents when
// the length needs more than one byte.
type derWriter struct{ b []byte }

func (w *derWriter) open(tag byte) int {
	w.b = append(w.b, tag, 0)
	return len(w.b)
}

func (w *derWriter) close(start int) {
	n := len(w.b) - start
	if n < 0x80 {
		w.b[start-1] = byte(n)
		return
	}
	extra := 0
	for l := n; l > 0; l >>= 8 {
		extra++
	}
	for range extra {
		w.b = append(w.b, 0)
	}
	copy(w.b[start+extra:], w.b[start:start+n])
	w.b[start-1] = 0x80 | byte(extra)
	for i := range extra {
		w.b[start+extra-1-i] = byte(n >> (8 * i))
	}
}

// prim writes a primitive element.
func (w *derWriter) prim(tag byte, content []byte) {
	s := w.open(tag)
	w.b = append(w.b, content...)
	w.close(s)
}

// primString writes a primitive element whose contents are s.
func (w *derWriter) primString(tag byte, s string) {
	start := w.open(tag)
	w.b = append(w.b, s...)
	w.close(start)
}

// time writes t (UTC, whole seconds) as encoding/asn1 does.
func (w *derWriter) time(t time.Time) {
	year := t.Year()
	tag := byte(tagUTCTime)
	if year < 1950 || year >= 2050 {
		tag = tagGenTime
	}
	s := w.open(tag)
	if tag == tagGenTime {
		w.b = append(w.b, byte('0'+year/1000), byte('0'+year/100%10))
	}
	_, month, day := t.Date()
	hour, minute, sec := t.Clock()
	for _, v := range [...]int{year % 100, int(month), day, hour, minute, sec} {
		w.b = append(w.b, byte('0'+v/10), byte('0'+v%10))
	}
	w.b = append(w.b, 'Z')
	w.close(s)
}

// extension opens an Extension SEQUENCE with its identifier and
// criticality and the OCTET STRING of its value; the caller writes the
// value and closes both with closeExtension.
func (w *derWriter) extension(oid []byte, critical bool) (seq, value int) {
	seq = w.open(tagSequence)
	w.prim(tagOID, oid)
	if critical {
		w.b = append(w.b, derTrue...)
	}
	return seq, w.open(tagOctetString)
}

func (w *derWriter) closeExtension(seq, value int) {
	w.close(value)
	w.close(seq)
}

// isIA5 reports whether s can be an IA5String, as x509 requires.
func isIA5(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// encodeTBS returns the DER TBSCertificate that x509.CreateCertificate
// writes for e.template() with parent as issuer, the subject public key
// whose SubjectPublicKeyInfo is spki (as x509.MarshalPKIXPublicKey returns
// it) and the CA key key, or false if it cannot guarantee the same bytes
// (see the file comment). subject is the DER of the subject Name, as
// subjectName returns it for e.commonName.
func encodeTBS(e *endEntity, parent *x509.Certificate, spki []byte, key crypto.Signer, subject []byte) ([]byte, bool) {
	alg, _, ok := caSignature(key)
	if !ok || e.serial == nil || e.serial.Sign() <= 0 || len(parent.RawSubject) == 0 {
		return nil, false
	}
	if !publicKeysEqual(key.Public(), parent.PublicKey) {
		return nil, false // x509.CreateCertificate refuses this; let it say so
	}
	for _, t := range []time.Time{e.notBefore, e.notAfter} {
		if y := t.Year(); y < 0 || y > 9999 || t.Location() != time.UTC {
			return nil, false
		}
	}
	ekus := make([][]byte, 0, 4)
	for _, u := range e.extKeyUsage {
		oid, ok := ekuOID(u)
		if !ok {
			return nil, false
		}
		ekus = append(ekus, oid)
	}
	uris := make([]string, len(e.uris))
	for i, u := range e.uris {
		uris[i] = u.String()
		if !isIA5(uris[i]) {
			return nil, false
		}
	}
	for _, list := range [][]string{e.dns, e.emails} {
		for _, s := range list {
			if !isIA5(s) {
				return nil, false
			}
		}
	}
	if !isIA5(e.issuerURL) || !isIA5(e.crlURL) {
		return nil, false
	}
	issuer := parent.RawSubject
	subjectEmpty := bytes.Equal(subject, derEmptySequence)

	w := derWriter{b: make([]byte, 0, 1024)}
	tbs := w.open(tagSequence)
	w.b = append(w.b, derVersion3...)
	serial := e.serial.Bytes()
	s := w.open(tagInteger)
	if serial[0]&0x80 != 0 {
		w.b = append(w.b, 0)
	}
	w.b = append(w.b, serial...)
	w.close(s)
	w.b = append(w.b, alg...)
	w.b = append(w.b, issuer...)
	s = w.open(tagSequence)
	w.time(e.notBefore)
	w.time(e.notAfter)
	w.close(s)
	w.b = append(w.b, subject...)
	w.b = append(w.b, spki...)

	exts := w.open(tagCtx3)
	list := w.open(tagSequence)
	if e.keyUsage != 0 {
		// x509 writes the usage bits most significant first, in one byte
		// or two, and counts the bits up to the last one set.
		a := [2]byte{reverseBits(byte(e.keyUsage)), reverseBits(byte(e.keyUsage >> 8))}
		bits := a[:1]
		if a[1] != 0 {
			bits = a[:2]
		}
		bitLen := 8 * len(bits)
	count:
		for i := len(bits) - 1; i >= 0; i-- {
			for bit := range 8 {
				if bits[i]>>bit&1 == 1 {
					break count
				}
				bitLen--
			}
		}
		unused := (8 - bitLen%8) % 8
		seq, val := w.extension(oidBytesKeyUsage, true)
		bs := w.open(tagBitString)
		w.b = append(w.b, byte(unused))
		w.b = append(w.b, bits...)
		w.close(bs)
		w.closeExtension(seq, val)
	}
	if len(ekus) > 0 {
		seq, val := w.extension(oidBytesExtKeyUsage, false)
		l := w.open(tagSequence)
		for _, oid := range ekus {
			w.prim(tagOID, oid)
		}
		w.close(l)
		w.closeExtension(seq, val)
	}
	seq, val := w.extension(oidBytesBasicConstr, true)
	w.b = append(w.b, derEmptySequence...) // cA FALSE (default), no pathLen
	w.closeExtension(seq, val)
	if len(e.subjectKeyID) > 0 {
		seq, val := w.extension(oidBytesSubjectKeyID, false)
		w.prim(tagOctetString, e.subjectKeyID)
		w.closeExtension(seq, val)
	}
	if !bytes.Equal(issuer, subject) && len(parent.SubjectKeyId) > 0 {
		seq, val := w.extension(oidBytesAuthorityKeyID, false)
		l := w.open(tagSequence)
		w.prim(tagKeyID, parent.SubjectKeyId)
		w.close(l)
		w.closeExtension(seq, val)
	}
	if e.issuerURL != "" {
		seq, val := w.extension(oidBytesAuthorityInfo, false)
		l := w.open(tagSequence)
		ad := w.open(tagSequence)
		w.prim(tagOID, oidBytesCAIssuers)
		w.primString(tagURI, e.issuerURL)
		w.close(ad)
		w.close(l)
		w.closeExtension(seq, val)
	}
	if len(e.dns)+len(e.emails)+len(e.ips)+len(e.uris) > 0 {
		seq, val := w.extension(oidBytesSubjectAltName, subjectEmpty)
		l := w.open(tagSequence)
		for _, d := range e.dns {
			w.primString(tagDNS, d)
		}
		for _, m := range e.emails {
			w.primString(tagEmail, m)
		}
		for _, ip := range e.ips {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			w.prim(tagIP, ip)
		}
		for _, u := range uris {
			w.primString(tagURI, u)
		}
		w.close(l)
		w.closeExtension(seq, val)
	}
	if e.crlURL != "" {
		seq, val := w.extension(oidBytesCRLDistribution, false)
		l := w.open(tagSequence)
		dp := w.open(tagSequence)
		dpName := w.open(tagCtx0) // distributionPoint [0]
		full := w.open(tagCtx0)   // fullName [0]
		w.primString(tagURI, e.crlURL)
		w.close(full)
		w.close(dpName)
		w.close(dp)
		w.close(l)
		w.closeExtension(seq, val)
	}
	w.close(list)
	w.close(exts)
	w.close(tbs)
	return w.b, true
}

// reverseBits reverses the bit order of a byte.
func reverseBits(b byte) byte {
	var r byte
	for range 8 {
		r = r<<1 | b&1
		b >>= 1
	}
	return r
}

// subjectName returns the DER Name x509.CreateCertificate writes for a
// subject with only a common name (an empty SEQUENCE for "").
func subjectName(cn string) ([]byte, error) {
	return asn1.Marshal(pkix.Name{CommonName: cn}.ToRDNSequence())
}

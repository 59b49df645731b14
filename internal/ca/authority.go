package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// Backdate is how far before the issuing time a certificate's notBefore is
// set, so that a relying party whose clock is slightly behind accepts a
// fresh certificate. notBefore is never earlier than the CA's notBefore.
const Backdate = time.Minute

// Authority is a CA that can issue certificates and sign CRLs. The zero
// value is not usable; build one with NewAuthority, or fill the fields and
// call Validate. An Authority is not modified by its methods and may be
// used from several goroutines at once when Key may.
type Authority struct {
	// Name is the CA name: the base of the published file names and of
	// the AIA and CDP URLs. It must pass CheckName.
	Name string
	// Cert is the CA certificate; Key its private key.
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain holds the certificates above Cert, nearest first, ending with
	// the root. It is empty for a root CA.
	Chain []*x509.Certificate
	// BaseURL is the HTTP endpoint that serves the CertEnroll files, such
	// as "http://127.0.0.1:8080", without a trailing slash. Empty means
	// certificates carry no AIA or CDP extension and CRLs no Freshest CRL
	// extension.
	BaseURL string
	// NoDeltaCRLs is set when the CA publishes no delta CRLs: full CRLs
	// then carry no Freshest CRL extension, which would point relying
	// parties at a delta that is never renewed.
	NoDeltaCRLs bool
}

// NewAuthority returns an Authority after checking it with Validate.
func NewAuthority(name string, cert *x509.Certificate, key crypto.Signer, chain []*x509.Certificate, baseURL string) (*Authority, error) {
	a := &Authority{Name: name, Cert: cert, Key: key, Chain: chain, BaseURL: strings.TrimSuffix(baseURL, "/")}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// Validate checks the name (ErrBadName), that Cert can act as a CA and Key
// belongs to it (see CheckSubordinateCert: ErrNotCA, ErrKeyMismatch), that
// each certificate in Chain signed the one before it and the last is
// self-signed (ErrNotCA), and that BaseURL is empty or an absolute http or
// https URL without query or fragment (ErrBadURL). It does not look at
// validity periods.
func (a *Authority) Validate() error {
	if err := CheckName(a.Name); err != nil {
		return err
	}
	if err := CheckSubordinateCert(a.Cert, a.Key); err != nil {
		return err
	}
	child := a.Cert
	for i, c := range a.Chain {
		if c == nil {
			return fmt.Errorf("chain certificate %d missing: %w", i, ErrNotCA)
		}
		if err := child.CheckSignatureFrom(c); err != nil {
			return fmt.Errorf("chain certificate %d (%q) did not sign %q: %v: %w", i, c.Subject.CommonName, child.Subject.CommonName, err, ErrNotCA)
		}
		child = c
	}
	if err := child.CheckSignatureFrom(child); err != nil {
		return fmt.Errorf("chain does not end in a self-signed root (%q): %v: %w", child.Subject.CommonName, err, ErrNotCA)
	}
	return checkBaseURL(a.BaseURL)
}

func checkBaseURL(base string) error {
	if base == "" {
		return nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("base URL %q: %v: %w", base, err, ErrBadURL)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(base, "/") {
		return fmt.Errorf("base URL %q: want http(s)://host[:port][/path] without a trailing slash, query or fragment: %w", base, ErrBadURL)
	}
	return nil
}

// CertURL returns the URL of the published CA certificate,
// BaseURL + "/CertEnroll/" + the path-escaped CertFileName, or "" when
// BaseURL is empty.
func (a *Authority) CertURL() string {
	if a.BaseURL == "" {
		return ""
	}
	return a.BaseURL + "/CertEnroll/" + url.PathEscape(a.Name+".crt")
}

// CRLURL returns the URL of the published full CRL, or with delta set of
// the delta CRL, or "" when BaseURL is empty.
func (a *Authority) CRLURL(delta bool) string {
	if a.BaseURL == "" {
		return ""
	}
	name := a.Name + ".crl"
	if delta {
		name = a.Name + "+.crl"
	}
	return a.BaseURL + "/CertEnroll/" + url.PathEscape(name)
}

// Issued is a certificate signed by IssueCertificate: its DER and the
// fields a database records about it, exactly as they are encoded in the
// DER, so that the caller need not parse it again.
type Issued struct {
	// DER is the certificate.
	DER []byte
	// Serial is the serial number given to IssueCertificate.
	Serial *big.Int
	// Subject is the certificate's subject: a common name only (after the
	// RDNs of a permitted directory-name constraint, dirname.go), or empty.
	Subject pkix.Name
	// NotBefore and NotAfter are the validity period, in UTC, in whole
	// seconds.
	NotBefore, NotAfter time.Time
}

// Issue signs a certificate for a request that came from CheckCSR with the
// same profile, and returns its DER. It is IssueCertificate returning only
// the DER.
func (a *Authority) Issue(csr *x509.CertificateRequest, p Profile, serial *big.Int, now time.Time) ([]byte, error) {
	iss, err := a.IssueCertificate(csr, p, serial, now)
	if err != nil {
		return nil, err
	}
	return iss.DER, nil
}

// IssueCertificate signs a certificate for a request that came from
// CheckCSR with the same profile. It applies the profile's key and name
// rules again (so a request checked against another profile cannot slip
// through) but does not re-verify the request's signature.
//
// The certificate has: the given serial (see NewSerial; it must pass
// CheckSerial), subject CN only (the request's common name, lower-cased
// when the profile copies it into the DNS names; after the RDNs of a
// permitted directory-name constraint of the chain, see dirname.go),
// notBefore = now - Backdate but not before the CA's notBefore, notAfter =
// notBefore + Validity - 1s (RFC 5280 validity is inclusive) but not after
// the CA's notAfter, basicConstraints cA=false (critical), keyUsage
// digitalSignature (plus keyEncipherment for an RSA key in a serverAuth
// profile), the profile's extended key usages, the subject alternative
// names from the profile rules, subject and authority key identifiers, and
// when BaseURL is set an AIA caIssuers URL (CertURL) and a CRL
// distribution point (CRLURL(false)). The DER is byte for byte what
// x509.CreateCertificate makes of these fields; when Key is a standard
// library private key it is encoded directly (tbs.go) and signed without
// CreateCertificate's verification of its own signature (sign.go).
//
// It fails with ErrCAExpired if now is not before the CA's notAfter, with
// ErrKeyNotAllowed if the request carries the CA's own key, and with a
// *SANError (ErrSANNotAllowed) for a name outside the name constraints of
// the CA certificate or the chain above it (constraints.go).
func (a *Authority) IssueCertificate(csr *x509.CertificateRequest, p Profile, serial *big.Int, now time.Time) (Issued, error) {
	if a == nil || a.Cert == nil || a.Key == nil {
		return Issued{}, fmt.Errorf("issue: authority has no certificate or key: %w", ErrNotCA)
	}
	if csr == nil {
		return Issued{}, fmt.Errorf("issue: no request: %w", ErrMalformedCSR)
	}
	if err := p.Validate(); err != nil {
		return Issued{}, err
	}
	if err := CheckSerial(serial); err != nil {
		return Issued{}, err
	}
	kt, err := checkKeyPolicy(csr.PublicKey, p)
	if err != nil {
		return Issued{}, err
	}
	if publicKeysEqual(a.Key.Public(), csr.PublicKey) {
		return Issued{}, &KeyPolicyError{Profile: p.Name, Key: string(kt), Reason: "the CA's own key"}
	}
	names, err := namesFor(csr, p)
	if err != nil {
		return Issued{}, err
	}
	if err := a.checkNameConstraints(names, p.Name); err != nil {
		return Issued{}, err
	}
	notBefore, notAfter, err := a.validity(now, time.Duration(p.Validity))
	if err != nil {
		return Issued{}, err
	}
	spki, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return Issued{}, fmt.Errorf("marshal public key: %w", err)
	}
	ski, err := keyIDOf(spki)
	if err != nil {
		return Issued{}, err
	}
	subject, subjectNm, err := a.subjectFor(names.CN, p.Name)
	if err != nil {
		return Issued{}, err
	}
	ku := x509.KeyUsageDigitalSignature
	if _, isRSA := csr.PublicKey.(*rsa.PublicKey); isRSA && p.hasExtKeyUsage("serverAuth") {
		ku |= x509.KeyUsageKeyEncipherment
	}
	e := &endEntity{
		serial:       serial,
		notBefore:    notBefore,
		notAfter:     notAfter,
		commonName:   names.CN,
		rawSubject:   subject,
		keyUsage:     ku,
		extKeyUsage:  p.extKeyUsage(),
		subjectKeyID: ski,
		dns:          names.DNS,
		emails:       names.Emails,
		ips:          names.IPs,
		uris:         names.URIs,
	}
	if a.BaseURL != "" {
		e.issuerURL, e.crlURL = a.CertURL(), a.CRLURL(false)
	}
	var der []byte
	if tbs, ok := encodeTBS(e, a.Cert, spki, a.Key, subject); ok {
		alg, opts, _ := caSignature(a.Key)
		der, err = signTBS(tbs, alg, opts, a.Key)
	} else {
		der, err = createCertificate(e.template(), a.Cert, csr.PublicKey, a.Key)
	}
	if err != nil {
		return Issued{}, fmt.Errorf("sign certificate %s: %w", SerialString(serial), err)
	}
	return Issued{
		DER:       der,
		Serial:    serial,
		Subject:   subjectNm,
		NotBefore: notBefore.Truncate(time.Second), // DER times have whole seconds
		NotAfter:  notAfter.Truncate(time.Second),
	}, nil
}

// validity computes a certificate's notBefore and notAfter for an issue at
// now with the given lifetime, within the CA certificate's validity.
func (a *Authority) validity(now time.Time, lifetime time.Duration) (time.Time, time.Time, error) {
	if !now.Before(a.Cert.NotAfter) {
		return time.Time{}, time.Time{}, fmt.Errorf("issue at %s: CA certificate expired at %s: %w", now.UTC().Format(time.RFC3339), a.Cert.NotAfter.UTC().Format(time.RFC3339), ErrCAExpired)
	}
	notBefore := now.Add(-Backdate).UTC().Truncate(time.Second)
	if notBefore.Before(a.Cert.NotBefore) {
		notBefore = a.Cert.NotBefore.UTC()
	}
	notAfter := notBefore.Add(lifetime - time.Second)
	if notAfter.After(a.Cert.NotAfter) {
		notAfter = a.Cert.NotAfter.UTC()
	}
	return notBefore, notAfter, nil
}

// subjectKeyID computes a key identifier by RFC 7093 §2 method 1: the
// leftmost 160 bits of the SHA-256 hash of the subjectPublicKey BIT STRING
// contents.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return keyIDOf(der)
}

// keyIDOf is subjectKeyID for a DER SubjectPublicKeyInfo.
func keyIDOf(spki []byte) ([]byte, error) {
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return sum[:20], nil
}

// NewRoot makes a self-signed root CA certificate for key with subject
// CN=name: a random serial, notBefore = now - Backdate, notAfter =
// notBefore + validity - 1s, basicConstraints cA=true without a path
// length limit (critical), keyUsage keyCertSign, cRLSign and
// digitalSignature (critical), and a subject key identifier. The name must
// pass CheckName and the key be of a supported KeyType.
func NewRoot(name string, key crypto.Signer, validity time.Duration, now time.Time) (*x509.Certificate, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("new root: no key: %w", ErrKeyNotAllowed)
	}
	if _, _, err := KeyTypeOf(key.Public()); err != nil {
		return nil, err
	}
	if validity < time.Hour {
		return nil, fmt.Errorf("new root: validity %v shorter than one hour: %w", validity, ErrBadValidity)
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-Backdate).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity - time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("sign root certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// Extension OIDs used in subordinate requests and CRLs.
var (
	oidExtBasicConstraints  = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtKeyUsage          = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidExtFreshestCRL       = asn1.ObjectIdentifier{2, 5, 29, 46}
	caKeyUsageBits          = asn1.BitString{Bytes: []byte{0x86}, BitLength: 7} // digitalSignature, keyCertSign, cRLSign
	caBasicConstraintsValue = []byte{0x30, 0x03, 0x01, 0x01, 0xff}              // SEQUENCE { cA TRUE }
)

// NewSubordinateCSR makes the PEM "CERTIFICATE REQUEST" a subordinate CA
// sends to its parent: subject CN=name, signed with key, requesting
// basicConstraints cA=true and keyUsage keyCertSign, cRLSign and
// digitalSignature (both critical). The parent decides what it signs; see
// CheckSubordinateCert for what the returned certificate must satisfy.
func NewSubordinateCSR(name string, key crypto.Signer) ([]byte, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("subordinate request: no key: %w", ErrKeyNotAllowed)
	}
	if _, _, err := KeyTypeOf(key.Public()); err != nil {
		return nil, err
	}
	ku, err := asn1.Marshal(caKeyUsageBits)
	if err != nil {
		return nil, fmt.Errorf("encode key usage: %w", err)
	}
	tmpl := &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name},
		ExtraExtensions: []pkix.Extension{
			{Id: oidExtBasicConstraints, Critical: true, Value: caBasicConstraintsValue},
			{Id: oidExtKeyUsage, Critical: true, Value: ku},
		},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("sign subordinate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// CheckSubordinateCert returns nil if cert can serve as this CA's
// certificate with key: key must be its private key (ErrKeyMismatch), and
// cert must be a CA (basicConstraints cA=true), allow keyCertSign and
// cRLSign, carry a subject key identifier (CRLs name their issuer by it),
// and hold a key of a supported type (otherwise ErrNotCA or
// ErrKeyNotAllowed). It is used when installing the certificate a parent
// CA returned and by Authority.Validate. Validity dates are not checked.
func CheckSubordinateCert(cert *x509.Certificate, key crypto.Signer) error {
	if cert == nil {
		return fmt.Errorf("no CA certificate: %w", ErrNotCA)
	}
	if key == nil {
		return fmt.Errorf("no CA key: %w", ErrKeyMismatch)
	}
	if _, _, err := KeyTypeOf(cert.PublicKey); err != nil {
		return err
	}
	if err := KeyMatchesCert(key, cert); err != nil {
		return err
	}
	subj := cert.Subject.CommonName
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return fmt.Errorf("certificate %q: basicConstraints cA is not true: %w", subj, ErrNotCA)
	case cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("certificate %q: keyUsage lacks keyCertSign: %w", subj, ErrNotCA)
	case cert.KeyUsage&x509.KeyUsageCRLSign == 0:
		return fmt.Errorf("certificate %q: keyUsage lacks cRLSign: %w", subj, ErrNotCA)
	case len(cert.SubjectKeyId) == 0:
		return fmt.Errorf("certificate %q: no subject key identifier: %w", subj, ErrNotCA)
	}
	return nil
}

package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certsrv/certsrv/internal/fsutil"
)

// Lifetimes of the admin API's TLS credentials. They come from a trust
// anchor of their own, never from the CA key, so a CA restored on a new
// host can mint fresh ones.
const (
	TrustAnchorValidity = 20 * 365 * 24 * time.Hour
	ServerCertValidity  = 2 * 365 * 24 * time.Hour
)

// File names in a credential directory (see WriteCredentialDir).
const (
	CredentialCertFile  = "client.crt"
	CredentialKeyFile   = "client.key"
	CredentialTrustFile = "trust.crt"
)

// Credential is a client's TLS identity for the admin API: its certificate
// and key, and the trust anchor that issued it and the server certificate.
type Credential struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Trust *x509.Certificate
}

// NewTrustAnchor makes the self-signed trust anchor for the admin API's
// TLS certificates: an ECDSA P-256 key and a certificate with subject
// CN=name, basicConstraints cA=true with path length 0 (it signs only
// end-entity certificates), keyUsage keyCertSign and digitalSignature, and
// TrustAnchorValidity of lifetime from now - Backdate. name follows the
// rules of CheckPrincipal.
func NewTrustAnchor(name string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	if err := CheckPrincipal(name); err != nil {
		return nil, nil, err
	}
	key, err := GenerateKey(KeyECDSAP256)
	if err != nil {
		return nil, nil, fmt.Errorf("trust anchor key: %w", err)
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	notBefore := now.Add(-Backdate).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(TrustAnchorValidity - time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign trust anchor: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse trust anchor: %w", err)
	}
	return cert, key, nil
}

// IssueServerCert makes an ECDSA P-256 key and a serverAuth certificate
// for the admin API signed by the trust anchor. hosts (at least one) are
// IP addresses or DNS names, such as "127.0.0.1" and "localhost"; the
// first is also the subject CN. The lifetime is ServerCertValidity, capped
// at the anchor's notAfter.
func IssueServerCert(anchor *x509.Certificate, anchorKey crypto.Signer, hosts []string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("server certificate: no host names: %w", ErrBadName)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if reason := dnsNameProblem(h, false); reason != "" {
			return nil, nil, fmt.Errorf("server certificate host %q: %s: %w", h, reason, ErrBadName)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(h))
	}
	key, err := GenerateKey(KeyECDSAP256)
	if err != nil {
		return nil, nil, fmt.Errorf("server key: %w", err)
	}
	der, err := signLeaf(anchor, anchorKey, tmpl, key.Public(), ServerCertValidity, now)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse server certificate: %w", err)
	}
	return cert, key, nil
}

// IssueClientCert signs a clientAuth certificate for pub with subject
// CN=principal, valid for validity (capped at the anchor's notAfter), and
// returns its DER. The admin API takes the CN as the caller's principal
// name; principal must pass CheckPrincipal.
func IssueClientCert(anchor *x509.Certificate, anchorKey crypto.Signer, principal string, pub crypto.PublicKey, validity time.Duration, now time.Time) ([]byte, error) {
	if err := CheckPrincipal(principal); err != nil {
		return nil, err
	}
	if _, _, err := KeyTypeOf(pub); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: principal},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return signLeaf(anchor, anchorKey, tmpl, pub, validity, now)
}

// NewClientCredential makes an ECDSA P-256 key, issues a client
// certificate for it with IssueClientCert, and returns the credential.
func NewClientCredential(anchor *x509.Certificate, anchorKey crypto.Signer, principal string, validity time.Duration, now time.Time) (*Credential, error) {
	key, err := GenerateKey(KeyECDSAP256)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	der, err := IssueClientCert(anchor, anchorKey, principal, key.Public(), validity, now)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse client certificate: %w", err)
	}
	return &Credential{Cert: cert, Key: key, Trust: anchor}, nil
}

// signLeaf fills in the common end-entity fields of tmpl and signs it.
func signLeaf(anchor *x509.Certificate, anchorKey crypto.Signer, tmpl *x509.Certificate, pub crypto.PublicKey, validity time.Duration, now time.Time) ([]byte, error) {
	if err := CheckTrustAnchor(anchor, anchorKey); err != nil {
		return nil, err
	}
	if validity < time.Hour {
		return nil, fmt.Errorf("validity %v shorter than one hour: %w", validity, ErrBadValidity)
	}
	if !now.Before(anchor.NotAfter) {
		return nil, fmt.Errorf("trust anchor expired at %s: %w", anchor.NotAfter.UTC().Format(time.RFC3339), ErrCAExpired)
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.SubjectKeyId = ski
	tmpl.BasicConstraintsValid = true
	tmpl.NotBefore = now.Add(-Backdate).UTC().Truncate(time.Second)
	if tmpl.NotBefore.Before(anchor.NotBefore) {
		tmpl.NotBefore = anchor.NotBefore
	}
	tmpl.NotAfter = tmpl.NotBefore.Add(validity - time.Second)
	if tmpl.NotAfter.After(anchor.NotAfter) {
		tmpl.NotAfter = anchor.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, anchor, pub, anchorKey)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	return der, nil
}

// CheckTrustAnchor returns nil if anchor can sign the admin
// API's TLS certificates with anchorKey: a CA certificate with keyCertSign
// whose key is anchorKey (ErrNotCA, ErrKeyMismatch).
func CheckTrustAnchor(anchor *x509.Certificate, anchorKey crypto.Signer) error {
	if anchor == nil || !anchor.BasicConstraintsValid || !anchor.IsCA || anchor.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("trust anchor is not a CA certificate with keyCertSign: %w", ErrNotCA)
	}
	return KeyMatchesCert(anchorKey, anchor)
}

// CheckPrincipal returns nil if name can be a principal (the CN of an
// admin API client certificate) or a trust anchor name: 1-64 bytes of
// printable ASCII without leading or trailing space. Otherwise ErrBadName.
func CheckPrincipal(name string) error {
	if name == "" || len(name) > maxCNLength || !isASCII(name) || strings.TrimSpace(name) != name {
		return fmt.Errorf("principal %q: want 1-%d printable ASCII characters without surrounding space: %w", name, maxCNLength, ErrBadName)
	}
	return nil
}

// EncodeCertsPEM returns the certificates as concatenated "CERTIFICATE"
// PEM blocks, in order.
func EncodeCertsPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ParseCertsPEM parses every "CERTIFICATE" PEM block in data, in order,
// skipping blocks of other types. No certificate, or one that does not
// parse, gives ErrMalformedCert.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v: %w", len(out), err, ErrMalformedCert)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CERTIFICATE PEM block: %w", ErrMalformedCert)
	}
	return out, nil
}

// WriteCertFile durably writes certs as PEM to path (mode 0644).
func WriteCertFile(path string, certs ...*x509.Certificate) error {
	if len(certs) == 0 {
		return fmt.Errorf("write %s: no certificates: %w", path, ErrMalformedCert)
	}
	return fsutil.WriteFileAtomic(path, EncodeCertsPEM(certs...), 0o644)
}

// WriteKeyFile durably writes key as PKCS#8 PEM to path with mode 0600,
// encrypted when passphrase is not empty (see MarshalPrivateKey).
func WriteKeyFile(path string, key crypto.Signer, passphrase []byte) error {
	data, err := MarshalPrivateKey(key, passphrase)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, data, 0o600)
}

// WriteCredentialDir writes c into dir (created with mode 0700 if absent)
// as client.key (unencrypted PKCS#8 PEM, mode 0600), client.crt and
// trust.crt (PEM, mode 0644), each durably. The key is written first and
// the trust anchor last; a crash part way leaves a directory without
// trust.crt, which ReadCredentialDir refuses.
func WriteCredentialDir(dir string, c *Credential) error {
	if c == nil || c.Cert == nil || c.Key == nil || c.Trust == nil {
		return fmt.Errorf("write credential %s: incomplete credential: %w", dir, ErrMalformedCert)
	}
	if err := KeyMatchesCert(c.Key, c.Cert); err != nil {
		return fmt.Errorf("write credential %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write credential %s: %w", dir, err)
	}
	// Make the directory entry itself durable; the files below sync dir.
	if err := fsutil.SyncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("write credential %s: %w", dir, err)
	}
	if err := WriteKeyFile(filepath.Join(dir, CredentialKeyFile), c.Key, nil); err != nil {
		return err
	}
	if err := WriteCertFile(filepath.Join(dir, CredentialCertFile), c.Cert); err != nil {
		return err
	}
	return WriteCertFile(filepath.Join(dir, CredentialTrustFile), c.Trust)
}

// ReadCredentialDir reads a directory written by WriteCredentialDir and
// checks that the key matches the certificate and that the trust anchor
// signed it.
func ReadCredentialDir(dir string) (*Credential, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read credential: %w", err)
		}
		return b, nil
	}
	keyPEM, err := read(CredentialKeyFile)
	if err != nil {
		return nil, err
	}
	certPEM, err := read(CredentialCertFile)
	if err != nil {
		return nil, err
	}
	trustPEM, err := read(CredentialTrustFile)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKey(keyPEM, nil)
	if err != nil {
		return nil, fmt.Errorf("read credential %s: %w", CredentialKeyFile, err)
	}
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("read credential %s: %w", CredentialCertFile, err)
	}
	trust, err := ParseCertsPEM(trustPEM)
	if err != nil {
		return nil, fmt.Errorf("read credential %s: %w", CredentialTrustFile, err)
	}
	if err := KeyMatchesCert(key, certs[0]); err != nil {
		return nil, fmt.Errorf("read credential %s: %w", dir, err)
	}
	if err := certs[0].CheckSignatureFrom(trust[0]); err != nil {
		return nil, fmt.Errorf("read credential %s: certificate not signed by the trust anchor: %v: %w", dir, err, ErrNotCA)
	}
	return &Credential{Cert: certs[0], Key: key, Trust: trust[0]}, nil
}

package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// PKCS12Iterations is the iteration count ExportPKCS12 uses for the
// PBKDF2-HMAC-SHA256 key derivations and for the HMAC-SHA256 MAC key
// derivation (the library default is 2048).
const PKCS12Iterations = 600_000

// MaxPKCS12Size is the largest PKCS#12 file ImportPKCS12 reads.
const MaxPKCS12Size = 1 << 20

// ExportPKCS12 encodes the CA key, its certificate and the chain above it
// as a password-protected PKCS#12 file (the <CA>.p12 key backup). Keys and
// certificates are encrypted with PBES2 (PBKDF2-HMAC-SHA256,
// PKCS12Iterations iterations, AES-256-CBC); the file is authenticated
// with an HMAC-SHA256 MAC. OpenSSL 1.1.1 and later read it. An empty
// password gives ErrPassphraseRequired; a key that does not belong to cert
// gives ErrKeyMismatch.
func ExportPKCS12(key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate, password string) ([]byte, error) {
	if password == "" {
		return nil, fmt.Errorf("export PKCS#12: a password is required: %w", ErrPassphraseRequired)
	}
	if err := KeyMatchesCert(key, cert); err != nil {
		return nil, fmt.Errorf("export PKCS#12: %w", err)
	}
	for i, c := range chain {
		if c == nil {
			return nil, fmt.Errorf("export PKCS#12: chain certificate %d missing: %w", i, ErrMalformedCert)
		}
	}
	data, err := pkcs12.Modern2023.WithIterations(PKCS12Iterations).Encode(key, cert, chain, password)
	if err != nil {
		return nil, fmt.Errorf("export PKCS#12: %w", err)
	}
	return data, nil
}

// ImportPKCS12 decodes a PKCS#12 file holding one private key and its
// certificate, plus any chain certificates, as written by ExportPKCS12 or
// by openssl pkcs12 -export. It returns the key, the certificate that
// matches the key, and the other certificates ordered from that
// certificate's issuer upwards (certificates that are not part of the path
// follow in file order).
//
// A wrong password gives ErrPassphrase; a file that cannot be decoded
// gives ErrMalformedPKCS12 (or ErrTooLarge above MaxPKCS12Size); a file
// whose key matches none of its certificates gives ErrKeyMismatch; a key
// of an unsupported type gives ErrKeyNotAllowed.
func ImportPKCS12(data []byte, password string) (crypto.Signer, *x509.Certificate, []*x509.Certificate, error) {
	if len(data) > MaxPKCS12Size {
		return nil, nil, nil, fmt.Errorf("import PKCS#12: %d bytes exceeds %d: %w", len(data), MaxPKCS12Size, ErrTooLarge)
	}
	k, first, rest, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
			return nil, nil, nil, fmt.Errorf("import PKCS#12: %w", ErrPassphrase)
		}
		return nil, nil, nil, fmt.Errorf("import PKCS#12: %v: %w", err, ErrMalformedPKCS12)
	}
	key, err := signerOf(k)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("import PKCS#12: %w", err)
	}
	all := append([]*x509.Certificate{first}, rest...)
	leafIdx := -1
	for i, c := range all {
		if KeyMatchesCert(key, c) == nil {
			leafIdx = i
			break
		}
	}
	if leafIdx < 0 {
		return nil, nil, nil, fmt.Errorf("import PKCS#12: none of its %d certificates: %w", len(all), ErrKeyMismatch)
	}
	leaf := all[leafIdx]
	others := append(append([]*x509.Certificate{}, all[:leafIdx]...), all[leafIdx+1:]...)
	return key, leaf, orderChain(leaf, others), nil
}

// orderChain returns certs ordered as the path above leaf: each one the
// issuer of the one before. Certificates not on the path follow in their
// original order.
func orderChain(leaf *x509.Certificate, certs []*x509.Certificate) []*x509.Certificate {
	remaining := append([]*x509.Certificate{}, certs...)
	var out []*x509.Certificate
	cur := leaf
	for len(remaining) > 0 {
		if bytes.Equal(cur.RawIssuer, cur.RawSubject) && cur.CheckSignatureFrom(cur) == nil {
			break // self-signed: the path ends here
		}
		next := -1
		for i, c := range remaining {
			if bytes.Equal(c.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(c) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		cur = remaining[next]
		out = append(out, cur)
		remaining = append(remaining[:next], remaining[next+1:]...)
	}
	return append(out, remaining...)
}

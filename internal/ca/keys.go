package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"strings"
)

// KeyType names a key algorithm and size the CA can generate and accept.
// The string values are the ones used on the command line and in the
// configuration file.
type KeyType string

// The supported key types.
const (
	KeyECDSAP256 KeyType = "ecdsa-p256"
	KeyECDSAP384 KeyType = "ecdsa-p384"
	KeyRSA2048   KeyType = "rsa-2048"
	KeyRSA3072   KeyType = "rsa-3072"
	KeyRSA4096   KeyType = "rsa-4096"
	KeyEd25519   KeyType = "ed25519"
)

// DefaultKeyType is the key type used when none is chosen.
const DefaultKeyType = KeyECDSAP256

// KeyTypes lists every supported key type, the default first.
func KeyTypes() []KeyType {
	return []KeyType{KeyECDSAP256, KeyECDSAP384, KeyRSA2048, KeyRSA3072, KeyRSA4096, KeyEd25519}
}

// ParseKeyType returns the KeyType named by s, ignoring case and
// surrounding space. An unknown or empty name gives ErrBadKeyType.
func ParseKeyType(s string) (KeyType, error) {
	k := KeyType(strings.ToLower(strings.TrimSpace(s)))
	if !k.Valid() {
		return "", fmt.Errorf("key type %q (want one of %s): %w", s, joinKeyTypes(KeyTypes()), ErrBadKeyType)
	}
	return k, nil
}

// Valid reports whether k is one of the supported key types.
func (k KeyType) Valid() bool {
	for _, t := range KeyTypes() {
		if k == t {
			return true
		}
	}
	return false
}

// String returns the key type's name.
func (k KeyType) String() string { return string(k) }

// GenerateKey makes a new private key of type k with crypto/rand. The
// result is an *ecdsa.PrivateKey, *rsa.PrivateKey or ed25519.PrivateKey.
func GenerateKey(k KeyType) (crypto.Signer, error) {
	switch k {
	case KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return priv, nil
	}
	return nil, fmt.Errorf("generate key %q: %w", string(k), ErrBadKeyType)
}

// KeyTypeOf classifies a public key. It returns the matching KeyType and a
// short description ("rsa-2048", "ecdsa P-521", "rsa-1024"). A key that is
// not one of the supported types gives a *KeyPolicyError (ErrKeyNotAllowed);
// the description is still returned. Only the three supported RSA sizes
// pass, so a huge modulus is refused before it is used to verify anything.
func KeyTypeOf(pub crypto.PublicKey) (KeyType, string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			break
		}
		name := k.Curve.Params().Name
		desc := "ecdsa " + name
		switch name {
		case "P-256":
			return KeyECDSAP256, string(KeyECDSAP256), nil
		case "P-384":
			return KeyECDSAP384, string(KeyECDSAP384), nil
		}
		return "", desc, &KeyPolicyError{Key: desc, Reason: "curve not supported (want P-256 or P-384)"}
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			break
		}
		bits := k.N.BitLen()
		desc := fmt.Sprintf("rsa-%d", bits)
		if k.E != 65537 {
			return "", desc, &KeyPolicyError{Key: desc, Reason: fmt.Sprintf("public exponent %d (want 65537)", k.E)}
		}
		switch bits {
		case 2048:
			return KeyRSA2048, desc, nil
		case 3072:
			return KeyRSA3072, desc, nil
		case 4096:
			return KeyRSA4096, desc, nil
		}
		if bits < 2048 {
			return "", desc, &KeyPolicyError{Key: desc, Reason: "modulus smaller than 2048 bits"}
		}
		return "", desc, &KeyPolicyError{Key: desc, Reason: "modulus size not supported (want 2048, 3072 or 4096 bits)"}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			break
		}
		return KeyEd25519, string(KeyEd25519), nil
	}
	desc := fmt.Sprintf("%T", pub)
	return "", desc, &KeyPolicyError{Key: desc, Reason: "algorithm not supported"}
}

// KeyMatchesCert returns nil if key is the private key for cert's public
// key, and ErrKeyMismatch otherwise (also when key is not a crypto.Signer).
func KeyMatchesCert(key crypto.PrivateKey, cert *x509.Certificate) error {
	if cert == nil {
		return fmt.Errorf("no certificate: %w", ErrKeyMismatch)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("key of type %T: %w", key, ErrKeyMismatch)
	}
	if !publicKeysEqual(s.Public(), cert.PublicKey) {
		return fmt.Errorf("certificate %q serial %s: %w", cert.Subject.CommonName, SerialString(cert.SerialNumber), ErrKeyMismatch)
	}
	return nil
}

// publicKeysEqual compares two public keys of the supported kinds.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface {
		Equal(crypto.PublicKey) bool
	}
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func joinKeyTypes(ks []KeyType) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// rsaBits returns the modulus size of an RSA public key, or 0 for any
// other key.
func rsaBits(pub crypto.PublicKey) int {
	if k, ok := pub.(*rsa.PublicKey); ok && k != nil && k.N != nil {
		return k.N.BitLen()
	}
	return 0
}

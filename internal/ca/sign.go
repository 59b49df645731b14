package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
)

// Certificate signing without the signer self-check.
//
// x509.CreateCertificate signs the TBSCertificate and then verifies the
// signature it just made with the signer's public key, to catch a
// crypto.Signer (a hardware module, a remote signer) that returns garbage.
// For an ECDSA CA key that check is an ECDSA verification, about twice
// the cost of the signature itself, on every certificate.
//
// IssueCertificate normally encodes the TBSCertificate itself (tbs.go)
// and signs it with signTBS. When the direct encoding declines, it calls
// createCertificate, which keeps x509.CreateCertificate as the encoder and
// only moves the signing out: it hands CreateCertificate a capturing
// signer that records the TBSCertificate bytes and the signer options
// CreateCertificate would sign with, and then aborts the call. The
// captured TBSCertificate is signed with the CA key exactly as
// CreateCertificate's own signing step does (crypto.SignMessage with the
// same options), and wrapped in the Certificate SEQUENCE with the
// signature algorithm copied from inside the TBSCertificate. The result is
// byte for byte what CreateCertificate returns for the same signature
// (tests compare both with deterministic Ed25519 and RSA CA keys, and the
// TBSCertificate for every key type).
//
// Signing without the check is done only with the standard library's own
// private key types (*ecdsa.PrivateKey, *rsa.PrivateKey,
// ed25519.PrivateKey): their signatures are correct by construction, and
// the RSA implementation verifies its own result against faults. Any other
// crypto.Signer goes through x509.CreateCertificate unchanged, check
// included, and so does every call if a future Go release stops passing
// the whole TBSCertificate to crypto.SignMessage.

// errTBSCaptured ends the x509.CreateCertificate call that captured the
// TBSCertificate; it never leaves this file.
var errTBSCaptured = errors.New("tbs certificate captured")

// errDigestOnly is what the capturing signer answers when it is handed a
// digest instead of the whole message; createCertificate then falls back
// to x509.CreateCertificate. It never leaves this file.
var errDigestOnly = errors.New("signer was given a digest, not the message")

// tbsCapture is a crypto.MessageSigner that records the message it is
// asked to sign and refuses to sign it.
type tbsCapture struct {
	pub  crypto.PublicKey
	tbs  []byte
	opts crypto.SignerOpts
}

// Public returns the CA's public key, so that CreateCertificate chooses
// the CA's signature algorithm and checks it against the parent.
func (c *tbsCapture) Public() crypto.PublicKey { return c.pub }

// Sign is called only if crypto.SignMessage no longer prefers
// SignMessage; it refuses, which makes createCertificate fall back.
func (c *tbsCapture) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errDigestOnly
}

// SignMessage records msg (the DER TBSCertificate, which
// x509.CreateCertificate allocates for this call and never touches again)
// and opts, and aborts with errTBSCaptured.
func (c *tbsCapture) SignMessage(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	c.tbs, c.opts = msg, opts
	return nil, errTBSCaptured
}

// trustedSigner reports whether key is one of the standard library's
// private key types, whose signatures need no self-check.
func trustedSigner(key crypto.Signer) bool {
	switch key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return true
	}
	return false
}

// createCertificate returns what x509.CreateCertificate(rand.Reader, tmpl,
// parent, pub, key) returns, without CreateCertificate's verification of
// its own signature when key is a trustedSigner (see above).
func createCertificate(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) ([]byte, error) {
	if !trustedSigner(key) {
		return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	}
	capture := &tbsCapture{pub: key.Public()}
	_, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, capture)
	switch {
	case errors.Is(err, errDigestOnly):
		return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	case !errors.Is(err, errTBSCaptured):
		if err == nil {
			err = errors.New("x509.CreateCertificate succeeded with a signer that refuses to sign")
		}
		return nil, err
	}
	alg, err := tbsSignatureAlgorithm(capture.tbs)
	if err != nil {
		return nil, err
	}
	return signTBS(capture.tbs, alg, capture.opts, key)
}

// certificateDER is the outer Certificate SEQUENCE of RFC 5280 §4.1 with
// the TBSCertificate and the signature algorithm already encoded.
type certificateDER struct {
	TBSCertificate     asn1.RawValue
	SignatureAlgorithm asn1.RawValue
	SignatureValue     asn1.BitString
}

// signTBS signs a DER TBSCertificate with key and opts and returns the
// DER Certificate; alg is the DER signature AlgorithmIdentifier, the same
// as inside tbs.
func signTBS(tbs, alg []byte, opts crypto.SignerOpts, key crypto.Signer) ([]byte, error) {
	sig, err := crypto.SignMessage(key, rand.Reader, tbs, opts)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(certificateDER{
		TBSCertificate:     asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: asn1.RawValue{FullBytes: alg},
		SignatureValue:     asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
}

// tbsSignatureAlgorithm returns the DER of the signature field of a
// TBSCertificate: the element after the optional [0] version and the
// serial number. The certificate's outer signatureAlgorithm must be the
// same value (RFC 5280 §4.1.1.2).
func tbsSignatureAlgorithm(tbs []byte) ([]byte, error) {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(tbs, &seq); err != nil || len(rest) != 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, fmt.Errorf("tbs certificate is not one DER SEQUENCE: %v", err)
	}
	var el asn1.RawValue
	in, err := asn1.Unmarshal(seq.Bytes, &el)
	if err == nil && el.Class == asn1.ClassContextSpecific && el.Tag == 0 {
		in, err = asn1.Unmarshal(in, &el) // el was the [0] version; now the serial
	}
	if err != nil {
		return nil, fmt.Errorf("tbs certificate serial number: %w", err)
	}
	if el.Class != asn1.ClassUniversal || el.Tag != asn1.TagInteger {
		return nil, fmt.Errorf("tbs certificate: want the serial number INTEGER, have class %d tag %d", el.Class, el.Tag)
	}
	if _, err := asn1.Unmarshal(in, &el); err != nil {
		return nil, fmt.Errorf("tbs certificate signature algorithm: %w", err)
	}
	if el.Class != asn1.ClassUniversal || el.Tag != asn1.TagSequence {
		return nil, fmt.Errorf("tbs certificate signature algorithm: want a SEQUENCE, have class %d tag %d", el.Class, el.Tag)
	}
	return el.FullBytes, nil
}

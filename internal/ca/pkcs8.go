package ca

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"hash"
)

// PEM block types of private key files.
const (
	pemPrivateKey          = "PRIVATE KEY"
	pemEncryptedPrivateKey = "ENCRYPTED PRIVATE KEY"
)

// KeyKDFIterations is the PBKDF2-HMAC-SHA256 iteration count
// MarshalPrivateKey writes into an encrypted key (the OWASP 2023 figure for
// PBKDF2-HMAC-SHA256).
const KeyKDFIterations = 600_000

// maxKDFIterations bounds the iteration count ParsePrivateKey accepts, so a
// hostile file cannot make loading a key take hours.
const maxKDFIterations = 10_000_000

// Object identifiers of RFC 8018 (PKCS #5 v2.1) and NIST AES.
var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// encryptedPrivateKeyInfo is RFC 5958 EncryptedPrivateKeyInfo.
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

// pbes2Params is RFC 8018 PBES2-params.
type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

// pbkdf2Params is RFC 8018 PBKDF2-params with the salt restricted to the
// "specified" OCTET STRING choice.
type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// MarshalPrivateKey encodes key as PKCS#8 PEM. With an empty passphrase the
// block is an unencrypted "PRIVATE KEY"; otherwise it is an "ENCRYPTED
// PRIVATE KEY" (RFC 5958) protected with PBES2: PBKDF2-HMAC-SHA256 with a
// 16-byte random salt and KeyKDFIterations iterations, and AES-256-CBC with
// a random IV (see doc.go). key must be an RSA, ECDSA or Ed25519 private key.
func MarshalPrivateKey(key crypto.PrivateKey, passphrase []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	if len(passphrase) == 0 {
		return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
	}
	enc, err := encryptPKCS8(der, passphrase, KeyKDFIterations)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncryptedPrivateKey, Bytes: enc}), nil
}

func encryptPKCS8(der, passphrase []byte, iterations int) ([]byte, error) {
	salt := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	kek, err := pbkdf2.Key(sha256.New, string(passphrase), salt, iterations, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key-encryption key: %w", err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	pad := aes.BlockSize - len(der)%aes.BlockSize
	plain := append(bytes.Clone(der), bytes.Repeat([]byte{byte(pad)}, pad)...)
	ct := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, plain)

	kdf, err := asn1.Marshal(pbkdf2Params{
		Salt:           salt,
		IterationCount: iterations,
		PRF:            pkix.AlgorithmIdentifier{Algorithm: oidHMACWithSHA256, Parameters: asn1.NullRawValue},
	})
	if err != nil {
		return nil, fmt.Errorf("encode PBKDF2 parameters: %w", err)
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, fmt.Errorf("encode IV: %w", err)
	}
	params, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdf}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, fmt.Errorf("encode PBES2 parameters: %w", err)
	}
	out, err := asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: ct,
	})
	if err != nil {
		return nil, fmt.Errorf("encode encrypted private key: %w", err)
	}
	return out, nil
}

// ParsePrivateKey decodes the first private key PEM block in data and
// returns the key. It reads "PRIVATE KEY" (PKCS#8), "ENCRYPTED PRIVATE KEY"
// (PBES2 with PBKDF2 over HMAC-SHA1/256/384/512 and AES-128/192/256-CBC, as
// written by MarshalPrivateKey and by openssl), and the traditional "RSA
// PRIVATE KEY" and "EC PRIVATE KEY" blocks when unencrypted. Other PEM blocks
// before the key are skipped.
//
// An encrypted key with an empty passphrase gives ErrPassphraseRequired; a
// wrong passphrase gives ErrPassphrase. A passphrase given for an
// unencrypted key is ignored. Anything unparseable gives ErrMalformedKey,
// and a key that is not RSA, ECDSA or Ed25519 gives ErrKeyNotAllowed.
func ParsePrivateKey(data, passphrase []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("no private key PEM block: %w", ErrMalformedKey)
		}
		var key any
		var err error
		switch block.Type {
		case pemPrivateKey:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case pemEncryptedPrivateKey:
			if len(passphrase) == 0 {
				return nil, fmt.Errorf("decrypt private key: %w", ErrPassphraseRequired)
			}
			return decryptPKCS8(block.Bytes, passphrase)
		case "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if _, encrypted := block.Headers["Proc-Type"]; encrypted {
				return nil, fmt.Errorf("legacy PEM encryption (convert with openssl pkcs8 -topk8): %w", ErrMalformedKey)
			}
			if block.Type == "RSA PRIVATE KEY" {
				key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
			} else {
				key, err = x509.ParseECPrivateKey(block.Bytes)
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %v: %w", block.Type, err, ErrMalformedKey)
		}
		return signerOf(key)
	}
}

func signerOf(key any) (crypto.Signer, error) {
	s, ok := key.(crypto.Signer)
	if !ok {
		desc := fmt.Sprintf("%T", key)
		return nil, &KeyPolicyError{Key: desc, Reason: "private key algorithm not supported"}
	}
	if _, _, err := KeyTypeOf(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

func decryptPKCS8(der, passphrase []byte) (crypto.Signer, error) {
	var info encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("parse EncryptedPrivateKeyInfo: %w", ErrMalformedKey)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encryption algorithm %v (want PBES2): %w", info.Algorithm.Algorithm, ErrMalformedKey)
	}
	var params pbes2Params
	if rest, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("parse PBES2 parameters: %w", ErrMalformedKey)
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("key derivation %v (want PBKDF2): %w", params.KeyDerivationFunc.Algorithm, ErrMalformedKey)
	}
	var kdf pbkdf2Params
	if rest, err := asn1.Unmarshal(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("parse PBKDF2 parameters: %w", ErrMalformedKey)
	}
	if kdf.IterationCount < 1 || kdf.IterationCount > maxKDFIterations {
		return nil, fmt.Errorf("PBKDF2 iteration count %d outside 1..%d: %w", kdf.IterationCount, maxKDFIterations, ErrMalformedKey)
	}
	var prf func() hash.Hash
	switch a := kdf.PRF.Algorithm; {
	case len(a) == 0 || a.Equal(oidHMACWithSHA1):
		prf = sha1.New
	case a.Equal(oidHMACWithSHA256):
		prf = sha256.New
	case a.Equal(oidHMACWithSHA384):
		prf = sha512.New384
	case a.Equal(oidHMACWithSHA512):
		prf = sha512.New
	default:
		return nil, fmt.Errorf("PBKDF2 PRF %v not supported: %w", a, ErrMalformedKey)
	}
	var keyLen int
	switch a := params.EncryptionScheme.Algorithm; {
	case a.Equal(oidAES128CBC):
		keyLen = 16
	case a.Equal(oidAES192CBC):
		keyLen = 24
	case a.Equal(oidAES256CBC):
		keyLen = 32
	default:
		return nil, fmt.Errorf("cipher %v not supported (want AES-CBC): %w", a, ErrMalformedKey)
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != keyLen {
		return nil, fmt.Errorf("PBKDF2 key length %d does not fit the cipher: %w", kdf.KeyLength, ErrMalformedKey)
	}
	var iv []byte
	if rest, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil || len(rest) != 0 || len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("parse AES-CBC IV: %w", ErrMalformedKey)
	}
	if len(info.EncryptedData) == 0 || len(info.EncryptedData)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("encrypted data of %d bytes is not whole AES blocks: %w", len(info.EncryptedData), ErrMalformedKey)
	}
	kek, err := pbkdf2.Key(prf, string(passphrase), kdf.Salt, kdf.IterationCount, keyLen)
	if err != nil {
		return nil, fmt.Errorf("derive key-encryption key: %w", err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("decrypt private key: %w", err)
	}
	plain := make([]byte, len(info.EncryptedData))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, info.EncryptedData)
	// A wrong passphrase shows as bad padding or, rarely, as padding that
	// happens to look right around bytes that are not a PKCS#8 structure.
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, fmt.Errorf("decrypt private key: %w", ErrPassphrase)
	}
	key, err := x509.ParsePKCS8PrivateKey(plain[:len(plain)-pad])
	if err != nil {
		return nil, fmt.Errorf("decrypt private key: %w", ErrPassphrase)
	}
	return signerOf(key)
}

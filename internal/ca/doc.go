// Package ca holds everything cryptographic about the certificate
// authority, with no database and no network: key generation and key
// files, request checking against issuance profiles, certificate issuance,
// serial numbers, revocation reasons, full and delta CRLs, PKCS#12 key
// backups, and the separate TLS credentials of the admin API. The store and
// the server call it; it never touches their files.
//
// # Key types
//
// ecdsa-p256 (default), ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 and
// ed25519, for the CA and for subjects. Subject RSA keys must have public
// exponent 65537 and one of the three sizes; other curves and algorithms
// are refused with ErrKeyNotAllowed.
//
// # Private key files
//
// A key file is one PEM block holding PKCS#8 (RFC 5958):
//
//	-----BEGIN PRIVATE KEY-----            unencrypted PrivateKeyInfo
//	-----BEGIN ENCRYPTED PRIVATE KEY-----  EncryptedPrivateKeyInfo
//
// MarshalPrivateKey writes the encrypted form as
//
//	EncryptedPrivateKeyInfo ::= SEQUENCE {
//	  encryptionAlgorithm  SEQUENCE {
//	    algorithm   id-PBES2 (1.2.840.113549.1.5.13)
//	    parameters  PBES2-params ::= SEQUENCE {
//	      keyDerivationFunc SEQUENCE {
//	        algorithm  id-PBKDF2 (1.2.840.113549.1.5.12)
//	        parameters PBKDF2-params ::= SEQUENCE {
//	          salt           OCTET STRING (16 random bytes)
//	          iterationCount INTEGER (600000, KeyKDFIterations)
//	          prf            SEQUENCE { id-hmacWithSHA256 (1.2.840.113549.2.9), NULL } } }
//	      encryptionScheme SEQUENCE {
//	        algorithm  aes256-CBC (2.16.840.1.101.3.4.1.42)
//	        parameters OCTET STRING (16-byte random IV) } } }
//	  encryptedData OCTET STRING  -- AES-256-CBC(PrivateKeyInfo DER, PKCS#7 padding)
//	}
//
// The key-encryption key is PBKDF2-HMAC-SHA256(passphrase, salt, 600000,
// 32 bytes). This is the layout openssl pkcs8 -topk8 -v2 aes-256-cbc
// writes; ParsePrivateKey also reads the SHA-1/384/512 PRFs and AES-128/192
// that openssl can be asked for, iteration counts up to 10,000,000, and
// unencrypted traditional "RSA PRIVATE KEY" and "EC PRIVATE KEY" blocks.
// The CA key is written with mode 0600 (WriteKeyFile).
//
// # PKCS#12 key backup (<CA name>.p12)
//
// ExportPKCS12 writes a PFX (RFC 7292) with two SafeContents: the
// certificates (the CA certificate first, carrying a localKeyId attribute,
// then the chain) encrypted with PBES2 (PBKDF2-HMAC-SHA256, 16-byte salt,
// 600000 iterations, AES-256-CBC), and a PKCS8ShroudedKeyBag encrypted the
// same way. The file is authenticated with an HMAC-SHA256 MAC whose key is
// derived with the PKCS#12 KDF over SHA-256, 600000 iterations, 16-byte
// salt. This is go-pkcs12's Modern2023 encoder with the iteration count
// raised; OpenSSL 1.1.1 and later read it.
//
// # Serial numbers
//
// NewSerial draws 16 random bytes and clears the top bit: 127 bits of
// entropy, positive, at most 16 octets. The canonical text form
// (SerialString) is the upper-case hex of the minimal big-endian bytes with
// an even number of digits and no separators, e.g. "0A1B2C"; the database
// keys certificates by it, and it is what "openssl x509 -serial" prints
// after "serial=". ParseSerial accepts that and the other forms tools
// print (lower case, colons, spaces, "0x", leading zeros).
//
// # Certificates
//
// A root CA certificate (NewRoot) has subject CN=<CA name>, a random
// serial, basicConstraints cA=true without a path length limit (critical),
// keyUsage keyCertSign, cRLSign, digitalSignature (critical), and a subject
// key identifier computed by RFC 7093 §2 method 1 (the leftmost 160 bits
// of the SHA-256 of the subjectPublicKey bits). A subordinate CA sends the
// PKCS#10 request NewSubordinateCSR makes and installs what its parent
// returns after CheckSubordinateCert.
//
// An issued certificate (Authority.Issue) contains only what the profile
// says: subject CN from the request, subject alternative names filtered by
// the profile's rules, keyUsage digitalSignature (plus keyEncipherment for
// RSA keys in serverAuth profiles), the profile's extended key usages,
// basicConstraints cA=false, subject and authority key identifiers, and,
// when the authority has a base URL, an AIA caIssuers URL
// <base>/CertEnroll/<CA name>.crt and a CRL distribution point
// <base>/CertEnroll/<CA name>.crl (names path-escaped). Validity starts
// one minute before the issuing time (Backdate) and never extends past the
// CA certificate's.
//
// The DER of an issued certificate is exactly what x509.CreateCertificate
// writes for the same fields; the exact TBSCertificate layout is in
// tbs.go. For a CA key held by the standard library (ECDSA, RSA, Ed25519)
// it is written directly rather than through encoding/asn1's reflection,
// and signed without x509.CreateCertificate's verification of its own
// signature, which for ECDSA cost more than the signature (sign.go says
// why that check is not needed for these keys). Any other crypto.Signer
// goes through x509.CreateCertificate unchanged. Tests require the direct
// encoding to equal x509.CreateCertificate's byte for byte.
//
// # CRLs
//
// Full and delta CRLs are v2 CRLs with authorityKeyIdentifier and
// cRLNumber. Full and delta CRLs share one increasing number sequence. A
// delta CRL carries a critical Delta CRL Indicator (2.5.29.27) holding the
// number of its base CRL and lists the changes since that base, including
// removeFromCRL entries for released holds; a full CRL carries a Freshest
// CRL extension (2.5.29.46) pointing at <base>/CertEnroll/<CA name>+.crl.
// The unspecified reason is written as an entry without a reasonCode.
//
// # Published file names
//
// As in the AD CS CertEnroll folder: <CA name>.crt for the CA certificate,
// <CA name>.crl for the full CRL, <CA name>+.crl for the delta CRL.
// CheckName keeps CA names safe as file names.
//
// # Admin API credentials
//
// The admin API's TLS certificates come from a trust anchor of their own
// (NewTrustAnchor: ECDSA P-256, self-signed, cA=true, path length 0),
// never from the CA key, so a CA restored on a new host can mint fresh
// ones. A credential directory holds client.key (PKCS#8 PEM, mode 0600),
// client.crt and trust.crt (PEM).
//
// # Tests
//
// The tests use openssl (/usr/bin/openssl) as an independent checker and
// zlint for certificate and CRL linting; findings that stem from
// CA/Browser Forum rules for publicly-trusted CAs are listed, with
// reasons, in zlint_test.go. The normal run takes well under a minute.
// FuzzParseSerial, FuzzCheckCSR and FuzzEncodeTBS run their seed corpus
// with every go test; explore further with, for example,
// go test -run XXX -fuzz=FuzzEncodeTBS ./internal/ca.
package ca

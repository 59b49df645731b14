package ca

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns for bad input or a
// refused operation wraps exactly one of these, so callers match with
// errors.Is; the typed errors below add structured context.
var (
	// ErrBadKeyType: a key type name is not one of the supported KeyType values.
	ErrBadKeyType = errors.New("unsupported key type")
	// ErrKeyNotAllowed: a public key is of a type or size the profile or the CA refuses.
	ErrKeyNotAllowed = errors.New("key not allowed")
	// ErrTooLarge: a request is larger than MaxCSRSize.
	ErrTooLarge = errors.New("request too large")
	// ErrMalformedCSR: a request is not a parseable PKCS#10 CSR (PEM or DER).
	ErrMalformedCSR = errors.New("malformed certificate request")
	// ErrBadSignature: a CSR's self-signature does not verify.
	ErrBadSignature = errors.New("bad request signature")
	// ErrSANNotAllowed: a subject alternative name is malformed, of a kind the
	// profile refuses, or the names are too few or too many.
	ErrSANNotAllowed = errors.New("subject alternative name not allowed")
	// ErrSubjectNotAllowed: the subject of a request cannot be issued (for
	// example a common name longer than 64 characters).
	ErrSubjectNotAllowed = errors.New("subject not allowed")
	// ErrBadProfile: a profile fails validation.
	ErrBadProfile = errors.New("invalid profile")
	// ErrUnknownProfile: no profile has the requested name.
	ErrUnknownProfile = errors.New("unknown profile")
	// ErrBadSerial: a serial number string or value is not acceptable.
	ErrBadSerial = errors.New("invalid serial number")
	// ErrBadReason: a revocation reason is unknown or not usable where given.
	ErrBadReason = errors.New("invalid revocation reason")
	// ErrBadName: a CA name, principal name or host name is not acceptable.
	ErrBadName = errors.New("invalid name")
	// ErrBadURL: the base URL for AIA and CDP is not an absolute http(s) URL.
	ErrBadURL = errors.New("invalid base URL")
	// ErrMalformedKey: a private key file cannot be parsed.
	ErrMalformedKey = errors.New("malformed private key")
	// ErrPassphraseRequired: a private key is encrypted and no passphrase was given.
	ErrPassphraseRequired = errors.New("passphrase required")
	// ErrPassphrase: a passphrase or PKCS#12 password is wrong.
	ErrPassphrase = errors.New("wrong passphrase")
	// ErrKeyMismatch: a private key does not belong to a certificate.
	ErrKeyMismatch = errors.New("private key does not match certificate")
	// ErrNotCA: a certificate cannot act as this CA (not a CA, missing key
	// usages or key identifier, or a broken chain).
	ErrNotCA = errors.New("certificate cannot act as a certificate authority")
	// ErrBadValidity: a requested validity period is out of range.
	ErrBadValidity = errors.New("invalid validity period")
	// ErrCAExpired: the CA certificate is no longer valid at the issuing time.
	ErrCAExpired = errors.New("CA certificate expired")
	// ErrBadCRL: CRL parameters are inconsistent (numbers, times, entries).
	ErrBadCRL = errors.New("invalid CRL parameters")
	// ErrMalformedPKCS12: a PKCS#12 file cannot be decoded for a reason other
	// than a wrong password.
	ErrMalformedPKCS12 = errors.New("malformed PKCS#12 file")
	// ErrMalformedCert: PEM or DER data does not hold the expected certificates.
	ErrMalformedCert = errors.New("malformed certificate")
)

// KeyPolicyError reports a public key a profile or the CA refuses. It
// unwraps to ErrKeyNotAllowed.
type KeyPolicyError struct {
	Profile string // profile name; empty when the CA itself refuses the key
	Key     string // description of the key, e.g. "rsa-1024" or "ecdsa P-521"
	Reason  string // what rule refused it
}

// Error names the profile, the key and the rule.
func (e *KeyPolicyError) Error() string {
	if e.Profile == "" {
		return fmt.Sprintf("key %s: %s: %v", e.Key, e.Reason, ErrKeyNotAllowed)
	}
	return fmt.Sprintf("profile %s: key %s: %s: %v", e.Profile, e.Key, e.Reason, ErrKeyNotAllowed)
}

// Unwrap returns ErrKeyNotAllowed.
func (e *KeyPolicyError) Unwrap() error { return ErrKeyNotAllowed }

// CSRFormatError reports data that is not one whole PKCS#10 certificate
// request, PEM or DER. It unwraps to ErrMalformedCSR. Its message says what
// is accepted and, in Detail, what was found instead, in words for the
// operator who handed the file over rather than the ASN.1 decoder's.
type CSRFormatError struct {
	// Detail is what is wrong ("the DER data is truncated: 120 of 240
	// bytes"), or "" when the data is neither PEM text nor DER at all.
	Detail string
	// Unreadable is set for a request with the shape of a PKCS#10 request
	// whose content this CA cannot read (a key on an unsupported curve, a
	// name it cannot decode); Detail then says why.
	Unreadable bool
}

// Error says what a request must be, then what this one is.
func (e *CSRFormatError) Error() string {
	if e.Unreadable {
		return "a certificate request this CA cannot read: " + e.Detail
	}
	msg := "not a certificate request: expected PEM 'CERTIFICATE REQUEST' or DER PKCS#10"
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Unwrap returns ErrMalformedCSR.
func (e *CSRFormatError) Unwrap() error { return ErrMalformedCSR }

// SANError reports a subject alternative name a profile refuses. Kind is
// "dns", "ip", "email", "uri", "other" (a name form this package never
// issues) or "count" (too few or too many names; Value is then the count).
// It unwraps to ErrSANNotAllowed.
type SANError struct {
	Profile string
	Kind    string
	Value   string
	Reason  string
}

// Error names the profile, the name and the rule.
func (e *SANError) Error() string {
	return fmt.Sprintf("profile %s: %s name %q: %s: %v", e.Profile, e.Kind, e.Value, e.Reason, ErrSANNotAllowed)
}

// Unwrap returns ErrSANNotAllowed.
func (e *SANError) Unwrap() error { return ErrSANNotAllowed }

// ProfileError reports a profile that fails validation. It unwraps to
// ErrBadProfile.
type ProfileError struct {
	Profile string
	Field   string // JSON name of the offending field
	Reason  string
}

// Error names the profile and the field.
func (e *ProfileError) Error() string {
	return fmt.Sprintf("profile %q: field %s: %s: %v", e.Profile, e.Field, e.Reason, ErrBadProfile)
}

// Unwrap returns ErrBadProfile.
func (e *ProfileError) Unwrap() error { return ErrBadProfile }

// SerialError reports a serial number that cannot be accepted. It unwraps
// to ErrBadSerial.
type SerialError struct {
	Input  string // the text given, or the hex of the value
	Reason string
}

// Error quotes the input and says what is wrong with it.
func (e *SerialError) Error() string {
	return fmt.Sprintf("serial %q: %s: %v", e.Input, e.Reason, ErrBadSerial)
}

// Unwrap returns ErrBadSerial.
func (e *SerialError) Unwrap() error { return ErrBadSerial }

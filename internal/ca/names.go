package ca

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// CheckName returns nil if name can be a CA name: it becomes the CA
// certificate's common name and the base of the published file names
// (<name>.crt, <name>.crl, <name>+.crl), so it must be 1-64 bytes of valid
// UTF-8 without control characters, '/', '\\' or "..", must not start with
// '.' or a space, and must not end with a space or '+' (which would make
// <name>.crl collide with another CA's delta CRL file). Otherwise it
// returns ErrBadName.
func CheckName(name string) error {
	bad := func(reason string) error { return fmt.Errorf("CA name %q: %s: %w", name, reason, ErrBadName) }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > maxCNLength:
		return bad(fmt.Sprintf("longer than %d bytes", maxCNLength))
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case hasControl(name) || strings.ContainsRune(name, 0):
		return bad("contains a control character")
	case strings.ContainsAny(name, `/\`):
		return bad("contains a path separator")
	case strings.Contains(name, ".."):
		return bad(`contains ".."`)
	case strings.HasPrefix(name, ".") || strings.HasPrefix(name, " "):
		return bad("starts with '.' or a space")
	case strings.HasSuffix(name, " ") || strings.HasSuffix(name, "+"):
		return bad("ends with a space or '+'")
	}
	return nil
}

// CertFileName returns the file name of the published CA certificate,
// "<name>.crt", as AD CS names it in its CertEnroll folder. The name must
// pass CheckName.
func CertFileName(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	return name + ".crt", nil
}

// CRLFileName returns the file name of the published full CRL,
// "<name>.crl", or with delta set of the delta CRL, "<name>+.crl", as AD CS
// names them. The name must pass CheckName.
func CRLFileName(name string, delta bool) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	if delta {
		return name + "+.crl", nil
	}
	return name + ".crl", nil
}

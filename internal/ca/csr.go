package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxCSRSize is the largest request CheckCSR accepts, PEM or DER, in bytes.
// Real requests are a few KiB even with RSA-4096 keys and many names.
const MaxCSRSize = 64 << 10

// maxCNLength is ub-common-name from RFC 5280 Appendix A.
const maxCNLength = 64

var oidExtSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// CheckCSR decodes a PKCS#10 request (PEM "CERTIFICATE REQUEST" or DER) and
// checks it against profile p, in this order:
//
//  1. size: more than MaxCSRSize bytes gives ErrTooLarge;
//  2. structure: anything that is not one whole CSR gives a
//     *CSRFormatError (ErrMalformedCSR);
//  3. subject key: a key type or size the profile refuses gives a
//     *KeyPolicyError (ErrKeyNotAllowed), checked before the signature so
//     that a huge or unsupported key is never used to verify anything;
//  4. signature: a self-signature that does not verify gives ErrBadSignature;
//  5. names: subject and alternative names the profile refuses give a
//     *SANError (ErrSANNotAllowed) or ErrSubjectNotAllowed.
//
// An invalid profile gives ErrBadProfile. The returned request is what
// Issue takes; requested extensions other than the names are ignored,
// because a certificate's contents come from the profile.
func CheckCSR(data []byte, p Profile) (*x509.CertificateRequest, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	csr, err := ParseCSR(data)
	if err != nil {
		return nil, err
	}
	if _, err := checkKeyPolicy(csr.PublicKey, p); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("verify request signature: %v: %w", err, ErrBadSignature)
	}
	if _, err := namesFor(csr, p); err != nil {
		return nil, err
	}
	return csr, nil
}

// ParseCSR performs the first two steps of CheckCSR: more than MaxCSRSize
// bytes gives ErrTooLarge, anything that is not one whole PKCS#10 request
// (PEM "CERTIFICATE REQUEST" or DER) a *CSRFormatError. It checks neither
// the signature nor any policy; a client can call it to refuse a file that
// no CA would accept before sending it.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRSize {
		return nil, fmt.Errorf("request of %d bytes exceeds %d: %w", len(data), MaxCSRSize, ErrTooLarge)
	}
	der, err := csrDER(data)
	if err != nil {
		return nil, err
	}
	if err := checkDEREnvelope(der); err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		if _, cerr := x509.ParseCertificate(der); cerr == nil {
			return nil, &CSRFormatError{Detail: "found an X.509 certificate, not a request"}
		}
		if pkcs10Shaped(der) {
			return nil, &CSRFormatError{Unreadable: true, Detail: strings.TrimPrefix(err.Error(), "x509: ")}
		}
		return nil, &CSRFormatError{Detail: "the DER structure is not a PKCS#10 request"}
	}
	return csr, nil
}

// csrDER returns the DER bytes of a PEM or DER request.
func csrDER(data []byte) ([]byte, error) {
	// Only PEM text is trimmed: DER may legitimately end in bytes that
	// look like white space.
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, &CSRFormatError{Detail: "the data is empty"}
	}
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		return data, nil
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, &CSRFormatError{Detail: "the PEM block is incomplete or damaged"}
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, &CSRFormatError{Detail: fmt.Sprintf("found a PEM %q block", block.Type)}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, &CSRFormatError{Detail: "data follows the PEM block"}
	}
	return block.Bytes, nil
}

// checkDEREnvelope checks that der is one whole DER SEQUENCE, the envelope
// of every PKCS#10 request, so that a file of another kind, a cut-off
// download and appended bytes are told apart in words rather than by the
// ASN.1 decoder's message. The contents are x509's to check.
func checkDEREnvelope(der []byte) error {
	const sequence = 0x30
	if len(der) == 0 || der[0] != sequence {
		return &CSRFormatError{} // neither PEM text nor DER
	}
	if len(der) < 2 {
		return &CSRFormatError{Detail: "the DER data is truncated"}
	}
	header, length := 2, int64(der[1])
	if der[1]&0x80 != 0 {
		n := int(der[1] & 0x7f)
		if n == 0 || n > 4 {
			return &CSRFormatError{Detail: "the DER length is not valid"}
		}
		header += n
		if len(der) < header {
			return &CSRFormatError{Detail: "the DER data is truncated"}
		}
		length = 0
		for _, b := range der[2:header] {
			length = length<<8 | int64(b)
		}
	}
	switch total := int64(header) + length; {
	case total > int64(len(der)):
		return &CSRFormatError{Detail: fmt.Sprintf("the DER data is truncated: %d of %d bytes", len(der), total)}
	case total == int64(len(der))-1:
		return &CSRFormatError{Detail: "1 byte follows the DER request"}
	case total < int64(len(der)):
		return &CSRFormatError{Detail: fmt.Sprintf("%d bytes follow the DER request", int64(len(der))-total)}
	}
	return nil
}

// checkKeyPolicy classifies pub and checks it against the profile.
func checkKeyPolicy(pub any, p Profile) (KeyType, error) {
	kt, desc, err := KeyTypeOf(pub)
	if err != nil {
		if kpe, ok := err.(*KeyPolicyError); ok {
			kpe.Profile = p.Name
		}
		return "", err
	}
	allowed := false
	for _, a := range p.AllowedKeyTypes {
		if a == kt {
			allowed = true
		}
	}
	if !allowed {
		return "", &KeyPolicyError{Profile: p.Name, Key: desc, Reason: "key type not allowed by this profile (allowed: " + joinKeyTypes(p.AllowedKeyTypes) + ")"}
	}
	if bits := rsaBits(pub); bits != 0 && bits < p.minRSABits() {
		return "", &KeyPolicyError{Profile: p.Name, Key: desc, Reason: fmt.Sprintf("modulus smaller than %d bits", p.minRSABits())}
	}
	return kt, nil
}

// issuedNames is the subject and alternative names a certificate gets.
type issuedNames struct {
	CN     string
	DNS    []string
	IPs    []net.IP
	Emails []string
	URIs   []*url.URL
}

func (n issuedNames) count() int { return len(n.DNS) + len(n.IPs) + len(n.Emails) + len(n.URIs) }

// namesFor applies the profile's subject and SAN rules to a request and
// returns the names to issue.
func namesFor(csr *x509.CertificateRequest, p Profile) (issuedNames, error) {
	var out issuedNames
	sanErr := func(kind, value, reason string) error {
		return &SANError{Profile: p.Name, Kind: kind, Value: value, Reason: reason}
	}
	if err := checkSANForms(csr, p); err != nil {
		return out, err
	}
	seenDNS := map[string]bool{}
	for _, d := range csr.DNSNames {
		if !p.SAN.DNS {
			return out, sanErr("dns", d, "DNS names not allowed by this profile")
		}
		if reason := dnsNameProblem(d, p.SAN.Wildcard); reason != "" {
			return out, sanErr("dns", d, reason)
		}
		d = strings.ToLower(d)
		if !seenDNS[d] {
			seenDNS[d] = true
			out.DNS = append(out.DNS, d)
		}
	}
	seenIP := map[string]bool{}
	for _, ip := range csr.IPAddresses {
		if !p.SAN.IP {
			return out, sanErr("ip", ip.String(), "IP addresses not allowed by this profile")
		}
		if ip.IsUnspecified() {
			return out, sanErr("ip", ip.String(), "unspecified address")
		}
		if !seenIP[ip.String()] {
			seenIP[ip.String()] = true
			out.IPs = append(out.IPs, ip)
		}
	}
	for _, e := range csr.EmailAddresses {
		if !p.SAN.Email {
			return out, sanErr("email", e, "e-mail addresses not allowed by this profile")
		}
		if reason := emailProblem(e); reason != "" {
			return out, sanErr("email", e, reason)
		}
		out.Emails = append(out.Emails, e)
	}
	for _, u := range csr.URIs {
		if !p.SAN.URI {
			return out, sanErr("uri", u.String(), "URIs not allowed by this profile")
		}
		if reason := uriProblem(u); reason != "" {
			return out, sanErr("uri", u.String(), reason)
		}
		out.URIs = append(out.URIs, u)
	}

	cn := csr.Subject.CommonName
	if len(cn) > maxCNLength || !utf8.ValidString(cn) || hasControl(cn) {
		return out, fmt.Errorf("profile %s: common name %q: longer than %d characters or not printable: %w", p.Name, cn, maxCNLength, ErrSubjectNotAllowed)
	}
	out.CN = cn
	if p.SAN.CopyCN && cn != "" {
		if ip := net.ParseIP(cn); ip != nil {
			if !p.SAN.IP {
				return out, sanErr("ip", cn, "common name is an IP address and IP addresses are not allowed by this profile")
			}
			if ip.IsUnspecified() {
				return out, sanErr("ip", cn, "unspecified address")
			}
			out.CN = ip.String()
			if !seenIP[ip.String()] {
				out.IPs = append(out.IPs, ip)
			}
		} else {
			if !p.SAN.DNS {
				return out, sanErr("dns", cn, "DNS names not allowed by this profile")
			}
			if reason := dnsNameProblem(cn, p.SAN.Wildcard); reason != "" {
				return out, fmt.Errorf("profile %s: common name %q must be a DNS name or IP address: %s: %w", p.Name, cn, reason, ErrSubjectNotAllowed)
			}
			out.CN = strings.ToLower(cn)
			if !seenDNS[out.CN] {
				out.DNS = append(out.DNS, out.CN)
			}
		}
	}
	if out.CN == "" && out.count() == 0 {
		return out, fmt.Errorf("profile %s: request names neither a common name nor an alternative name: %w", p.Name, ErrSubjectNotAllowed)
	}
	if p.SAN.RequireDNSOrIP && len(out.DNS)+len(out.IPs) == 0 {
		return out, sanErr("count", "0", "at least one DNS name or IP address is required")
	}
	if n := out.count(); n > p.SAN.Max {
		return out, sanErr("count", fmt.Sprint(n), fmt.Sprintf("more than %d names", p.SAN.Max))
	}
	return out, nil
}

// checkSANForms refuses a request whose subjectAltName extension holds a
// name form x509 does not expose (otherName, x400Address, directoryName,
// ediPartyName, registeredID), so that no requested name is silently
// dropped.
func checkSANForms(csr *x509.CertificateRequest, p Profile) error {
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidExtSubjectAltName) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) != 0 {
			return fmt.Errorf("subjectAltName extension: %w", ErrMalformedCSR)
		}
		rest := seq.Bytes
		for len(rest) > 0 {
			var v asn1.RawValue
			var err error
			if rest, err = asn1.Unmarshal(rest, &v); err != nil {
				return fmt.Errorf("subjectAltName entry: %w", ErrMalformedCSR)
			}
			switch v.Tag {
			case 1, 2, 6, 7: // rfc822Name, dNSName, uniformResourceIdentifier, iPAddress
			default:
				names := map[int]string{0: "otherName", 3: "x400Address", 4: "directoryName", 5: "ediPartyName", 8: "registeredID"}
				return &SANError{Profile: p.Name, Kind: "other", Value: names[v.Tag], Reason: fmt.Sprintf("name form [%d] is never issued", v.Tag)}
			}
		}
	}
	return nil
}

// dnsNameProblem returns why name is not an acceptable DNS name, or "".
// Names are ASCII (IDNs in their xn-- form), at most 253 characters, with
// labels of 1-63 letters, digits and inner hyphens and no trailing dot. A
// wildcard is allowed only as the whole first label, followed by at least
// two labels.
func dnsNameProblem(name string, wildcard bool) string {
	if name == "" {
		return "empty"
	}
	if len(name) > 253 {
		return "longer than 253 characters"
	}
	labels := strings.Split(name, ".")
	if labels[0] == "*" {
		if !wildcard {
			return "wildcards not allowed by this profile"
		}
		if len(labels) < 3 {
			return "wildcard must be followed by at least two labels"
		}
		labels = labels[1:]
	}
	for _, l := range labels {
		if l == "" {
			return "empty label"
		}
		if len(l) > 63 {
			return "label longer than 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "label starts or ends with '-'"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Sprintf("character %q not allowed", rune(c))
			}
		}
	}
	if net.ParseIP(name) != nil {
		return "an IP address is not a DNS name"
	}
	return ""
}

func emailProblem(e string) string {
	if !isASCII(e) {
		return "not ASCII"
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return "not a bare e-mail address"
	}
	at := strings.LastIndexByte(e, '@')
	if at <= 0 {
		return "no local part"
	}
	if reason := dnsNameProblem(e[at+1:], false); reason != "" {
		return "domain: " + reason
	}
	return ""
}

func uriProblem(u *url.URL) string {
	s := u.String()
	if !isASCII(s) {
		return "not ASCII"
	}
	if len(s) > 2048 {
		return "longer than 2048 characters"
	}
	if u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
		return "not an absolute URI"
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// pkcs10Shaped reports whether der has the outline of a PKCS#10 request
// (RFC 2986): a version, a name, a public key, [0] attributes, then a
// signature algorithm and a signature, whatever their content.
func pkcs10Shaped(der []byte) bool {
	var req struct {
		Info struct {
			Version    int
			Subject    asn1.RawValue
			PublicKey  asn1.RawValue
			Attributes asn1.RawValue `asn1:"tag:0"`
		}
		SignatureAlgorithm asn1.RawValue
		Signature          asn1.BitString
	}
	rest, err := asn1.Unmarshal(der, &req)
	return err == nil && len(rest) == 0
}

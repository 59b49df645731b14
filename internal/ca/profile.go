package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a string:
// either a whole number of days ("90d") or a Go duration ("36h", "90m").
type Duration time.Duration

// MarshalJSON writes whole days as "<n>d" and anything else in Go's
// duration syntax.
func (d Duration) MarshalJSON() ([]byte, error) {
	td := time.Duration(d)
	if td != 0 && td%(24*time.Hour) == 0 {
		return json.Marshal(strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d")
	}
	return json.Marshal(td.String())
}

// UnmarshalJSON accepts "<n>d" (days) or any string time.ParseDuration
// accepts.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"90d\" or \"36h\": %w", err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration reads "<n>d" as n days and anything else with
// time.ParseDuration.
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	return v, nil
}

// Profile is an issuance policy: which requests a profile accepts, whether
// they are issued at once, and what the certificates contain. Profiles are
// carried in the configuration file as JSON; Validate must pass before a
// profile is used (CheckCSR and Issue call it).
type Profile struct {
	// Name identifies the profile in requests ("tls-server"): lower-case
	// letters, digits and '-', at most 64 characters.
	Name string `json:"name"`
	// AutoIssue issues a request as soon as it passes the checks; when
	// false the request waits for an officer.
	AutoIssue bool `json:"auto_issue"`
	// Validity is the certificate lifetime, at least one hour and at most
	// ten years. The certificate never outlives the CA certificate.
	Validity Duration `json:"validity"`
	// ExtKeyUsage names the extended key usages: "serverAuth",
	// "clientAuth", "emailProtection", "codeSigning". At least one.
	ExtKeyUsage []string `json:"ext_key_usage"`
	// AllowedKeyTypes lists the subject key types accepted. At least one.
	AllowedKeyTypes []KeyType `json:"allowed_key_types"`
	// MinRSABits is the smallest RSA modulus accepted; 0 means 2048, and
	// smaller values are invalid.
	MinRSABits int `json:"min_rsa_bits,omitempty"`
	// SAN says which subject alternative names a request may carry.
	SAN SANPolicy `json:"san"`
}

// SANPolicy is the subject-alternative-name part of a Profile. Name forms
// that are not allowed make a request fail with ErrSANNotAllowed; name
// forms this package never issues (otherName, directoryName, x400Address,
// ediPartyName, registeredID) always do.
type SANPolicy struct {
	DNS   bool `json:"dns"`   // DNS names (dNSName)
	IP    bool `json:"ip"`    // IPv4 and IPv6 addresses (iPAddress)
	Email bool `json:"email"` // e-mail addresses (rfc822Name)
	URI   bool `json:"uri"`   // URIs (uniformResourceIdentifier)
	// Wildcard allows a DNS name whose first label is "*" (needs DNS).
	Wildcard bool `json:"wildcard"`
	// RequireDNSOrIP requires at least one DNS name or IP address after
	// CopyCN has run (needs DNS or IP).
	RequireDNSOrIP bool `json:"require_dns_or_ip"`
	// CopyCN adds the subject common name to the DNS names (or IP
	// addresses) when it is not already there; the common name must then be
	// a valid DNS name or IP address (needs DNS or IP).
	CopyCN bool `json:"copy_cn"`
	// Max is the largest number of names a certificate may carry, counted
	// after CopyCN. Must be 1..1000 when any name form is allowed.
	Max int `json:"max"`
}

// Default profile names.
const (
	ProfileTLSServer = "tls-server"
	ProfileTLSClient = "tls-client"
)

// Default validities. The server validity stays within the CA/Browser
// Forum limit in force until 15 March 2029 (100 days), so the CA's
// certificates also satisfy public-web linters.
const (
	DefaultServerValidity = 90 * 24 * time.Hour
	DefaultClientValidity = 365 * 24 * time.Hour
)

// DefaultProfiles returns the built-in profiles: tls-server (serverAuth,
// DNS names and IP addresses, at least one, the CN copied in, no
// wildcards, 90 days) and tls-client (clientAuth, e-mail, URI and DNS
// names, 365 days). Both issue automatically and accept every KeyType.
func DefaultProfiles() []Profile {
	return []Profile{
		{
			Name:            ProfileTLSServer,
			AutoIssue:       true,
			Validity:        Duration(DefaultServerValidity),
			ExtKeyUsage:     []string{"serverAuth"},
			AllowedKeyTypes: KeyTypes(),
			MinRSABits:      2048,
			SAN:             SANPolicy{DNS: true, IP: true, RequireDNSOrIP: true, CopyCN: true, Max: 100},
		},
		{
			Name:            ProfileTLSClient,
			AutoIssue:       true,
			Validity:        Duration(DefaultClientValidity),
			ExtKeyUsage:     []string{"clientAuth"},
			AllowedKeyTypes: KeyTypes(),
			MinRSABits:      2048,
			SAN:             SANPolicy{DNS: true, Email: true, URI: true, Max: 10},
		},
	}
}

// FindProfile returns the profile called name from ps, or ErrUnknownProfile.
func FindProfile(ps []Profile, name string) (Profile, error) {
	for _, p := range ps {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("profile %q: %w", name, ErrUnknownProfile)
}

// ParseProfiles reads a JSON array of profiles, refusing unknown fields,
// invalid profiles and duplicate names.
func ParseProfiles(data []byte) ([]Profile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ps []Profile
	if err := dec.Decode(&ps); err != nil {
		return nil, fmt.Errorf("parse profiles: %v: %w", err, ErrBadProfile)
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, &ProfileError{Profile: p.Name, Field: "name", Reason: "duplicate profile name"}
		}
		seen[p.Name] = true
	}
	return ps, nil
}

var profileNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

var extKeyUsages = map[string]x509.ExtKeyUsage{
	"serverAuth":      x509.ExtKeyUsageServerAuth,
	"clientAuth":      x509.ExtKeyUsageClientAuth,
	"emailProtection": x509.ExtKeyUsageEmailProtection,
	"codeSigning":     x509.ExtKeyUsageCodeSigning,
}

// Validate checks every field as documented on Profile and SANPolicy and
// returns a *ProfileError (ErrBadProfile) naming the first bad field.
func (p Profile) Validate() error {
	bad := func(field, reason string) error { return &ProfileError{Profile: p.Name, Field: field, Reason: reason} }
	if !profileNameRE.MatchString(p.Name) {
		return bad("name", "must be 1-64 lower-case letters, digits or '-'")
	}
	if v := time.Duration(p.Validity); v < time.Hour || v > 3650*24*time.Hour {
		return bad("validity", fmt.Sprintf("%v is outside 1h..3650d", v))
	}
	if len(p.ExtKeyUsage) == 0 {
		return bad("ext_key_usage", "at least one extended key usage is required")
	}
	seen := map[string]bool{}
	for _, u := range p.ExtKeyUsage {
		if _, ok := extKeyUsages[u]; !ok {
			return bad("ext_key_usage", fmt.Sprintf("unknown usage %q", u))
		}
		if seen[u] {
			return bad("ext_key_usage", fmt.Sprintf("usage %q listed twice", u))
		}
		seen[u] = true
	}
	if len(p.AllowedKeyTypes) == 0 {
		return bad("allowed_key_types", "at least one key type is required")
	}
	for _, k := range p.AllowedKeyTypes {
		if !k.Valid() {
			return bad("allowed_key_types", fmt.Sprintf("unknown key type %q", string(k)))
		}
	}
	if p.MinRSABits != 0 && (p.MinRSABits < 2048 || p.MinRSABits > 4096) {
		return bad("min_rsa_bits", fmt.Sprintf("%d is outside 2048..4096", p.MinRSABits))
	}
	s := p.SAN
	anyForm := s.DNS || s.IP || s.Email || s.URI
	switch {
	case s.Wildcard && !s.DNS:
		return bad("san.wildcard", "wildcards need DNS names allowed")
	case s.RequireDNSOrIP && !s.DNS && !s.IP:
		return bad("san.require_dns_or_ip", "needs DNS names or IP addresses allowed")
	case s.CopyCN && !s.DNS && !s.IP:
		return bad("san.copy_cn", "needs DNS names or IP addresses allowed")
	case anyForm && (s.Max < 1 || s.Max > 1000):
		return bad("san.max", fmt.Sprintf("%d is outside 1..1000", s.Max))
	case !anyForm && s.Max != 0:
		return bad("san.max", "no name form is allowed, so max must be 0")
	}
	return nil
}

// minRSABits returns the effective minimum RSA modulus size.
func (p Profile) minRSABits() int {
	if p.MinRSABits == 0 {
		return 2048
	}
	return p.MinRSABits
}

// extKeyUsage maps the profile's usage names to x509 values. The profile
// must have passed Validate.
func (p Profile) extKeyUsage() []x509.ExtKeyUsage {
	out := make([]x509.ExtKeyUsage, 0, len(p.ExtKeyUsage))
	for _, u := range p.ExtKeyUsage {
		out = append(out, extKeyUsages[u])
	}
	return out
}

func (p Profile) hasExtKeyUsage(u string) bool {
	for _, v := range p.ExtKeyUsage {
		if v == u {
			return true
		}
	}
	return false
}

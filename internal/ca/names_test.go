package ca

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"Example Root CA", "ca", "Contoso-CA-01", "Société Générale CA", "a.b", strings.Repeat("x", 64)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", `a\b`, "..", "a..b", ".hidden", " lead", "trail ", "x+", "nul\x00", "tab\t", "\xff", strings.Repeat("x", 65)} {
		if err := CheckName(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("CheckName(%q) = %v, want ErrBadName", bad, err)
		}
	}
}

func TestFileNames(t *testing.T) {
	crt, err := CertFileName("Example CA")
	if err != nil || crt != "Example CA.crt" {
		t.Errorf("CertFileName = %q, %v", crt, err)
	}
	full, err := CRLFileName("Example CA", false)
	if err != nil || full != "Example CA.crl" {
		t.Errorf("CRLFileName(full) = %q, %v", full, err)
	}
	delta, err := CRLFileName("Example CA", true)
	if err != nil || delta != "Example CA+.crl" {
		t.Errorf("CRLFileName(delta) = %q, %v", delta, err)
	}
	if _, err := CertFileName("../etc/passwd"); !errors.Is(err, ErrBadName) {
		t.Errorf("CertFileName(traversal) = %v", err)
	}
	if _, err := CRLFileName("a/b", true); !errors.Is(err, ErrBadName) {
		t.Errorf("CRLFileName(slash) = %v", err)
	}
}

func TestAuthorityURLs(t *testing.T) {
	a := newTestRoot(t, "Example CA", KeyECDSAP256, "http://127.0.0.1:8080", time.Now())
	if got := a.CertURL(); got != "http://127.0.0.1:8080/CertEnroll/Example%20CA.crt" {
		t.Errorf("CertURL = %q", got)
	}
	if got := a.CRLURL(false); got != "http://127.0.0.1:8080/CertEnroll/Example%20CA.crl" {
		t.Errorf("CRLURL(full) = %q", got)
	}
	if got := a.CRLURL(true); got != "http://127.0.0.1:8080/CertEnroll/Example%20CA+.crl" {
		t.Errorf("CRLURL(delta) = %q", got)
	}
	noURL := *a
	noURL.BaseURL = ""
	if noURL.CertURL() != "" || noURL.CRLURL(true) != "" {
		t.Error("URLs without a base URL")
	}
	for _, bad := range []string{"ftp://x", "127.0.0.1:8080", "http://", "http://h/?q=1", "http://h/#f", "http://u@h", "http://h//"} {
		if _, err := NewAuthority(a.Name, a.Cert, a.Key, nil, bad); !errors.Is(err, ErrBadURL) {
			t.Errorf("base URL %q: err = %v, want ErrBadURL", bad, err)
		}
	}
	// NewAuthority trims one trailing slash.
	b, err := NewAuthority(a.Name, a.Cert, a.Key, nil, "https://pki.example.com/base/")
	if err != nil || b.CertURL() != "https://pki.example.com/base/CertEnroll/Example%20CA.crt" {
		t.Errorf("trailing slash: %v %v", b, err)
	}
}

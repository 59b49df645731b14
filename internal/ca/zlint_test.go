package ca

import (
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// lintCase names one object the zlint test checks.
type lintCase struct {
	kt   KeyType
	kind string // "ca", "server", "server-ip", "client", "crl", "crl-hold", "delta"
}

// acceptedLints lists every zlint finding at Warn level or above that the
// CA's output is allowed to produce, with the reason and the objects it is
// accepted for. Anything else at Warn, Error or Fatal fails the test.
//
// All of them come from the CA/Browser Forum Baseline Requirements (and
// Mozilla policy), which govern publicly-trusted TLS CAs; certsrv is a
// private CA modelled on AD CS and follows RFC 5280 where the two differ.
var acceptedLints = map[string]struct {
	reason  string
	applies func(lintCase) bool
}{
	// Errors.
	"e_ca_country_name_missing": {
		"CA subject is CN=<CA name> as in AD CS; BR 7.1.2.10.2 (C and O in CA subjects) is a WebPKI rule",
		func(c lintCase) bool { return c.kind == "ca" }},
	"e_ca_organization_name_missing": {
		"as e_ca_country_name_missing",
		func(c lintCase) bool { return c.kind == "ca" }},
	"e_sub_cert_certificate_policies_missing": {
		"the CA/B Forum policy OIDs assert WebPKI compliance that a private CA cannot claim",
		func(c lintCase) bool { return strings.HasPrefix(c.kind, "server") }},
	"e_sub_cert_cert_policy_empty": {
		"as e_sub_cert_certificate_policies_missing",
		func(c lintCase) bool { return strings.HasPrefix(c.kind, "server") }},
	"e_ext_san_contains_reserved_ip": {
		"a private CA issues for loopback and RFC 1918 addresses; only the certificate naming 127.0.0.1 may trip it",
		func(c lintCase) bool { return c.kind == "server-ip" }},
	"e_cab_crl_has_valid_reason_code": {
		"certificateHold and removeFromCRL are required features (RFC 5280 §5.3.1); BR 7.2.2 forbids them in the WebPKI; only CRLs holding such entries may trip it",
		func(c lintCase) bool { return c.kind == "crl-hold" || c.kind == "delta" }},
	"e_signature_algorithm_not_supported": {
		"Ed25519 (RFC 8410) is a supported key type; the BRs and Mozilla allow only RSA and ECDSA",
		func(c lintCase) bool { return c.kt == KeyEd25519 }},
	"e_algorithm_identifier_improper_encoding": {
		"as e_signature_algorithm_not_supported: the RFC 8410 Ed25519 AlgorithmIdentifier is not on the BR list",
		func(c lintCase) bool { return c.kt == KeyEd25519 }},
	// Warnings.
	"w_ext_subject_key_identifier_not_recommended_subscriber": {
		"RFC 5280 §4.2.1.2 says end-entity certificates SHOULD carry a subject key identifier; the BRs discourage it",
		func(c lintCase) bool { return c.kind != "ca" }},
	"w_sub_cert_aia_contains_internal_names": {
		"the default base URL is http://127.0.0.1:8080; operators set a real host name in the configuration",
		func(c lintCase) bool { return strings.HasPrefix(c.kind, "server") }},
	"w_subject_common_name_included": {
		"the request's common name is kept (and copied into the SANs) for clients that still read it",
		func(c lintCase) bool { return strings.HasPrefix(c.kind, "server") }},
	"e_crl_extensions_validity": {
		"reported at Warn: delta CRLs need the Delta CRL Indicator and full CRLs the Freshest CRL extension (RFC 5280 §5.2.4, §5.2.6); the BRs have no delta CRLs",
		func(c lintCase) bool { return c.kind == "crl" || c.kind == "crl-hold" || c.kind == "delta" }},
}

func checkLints(t *testing.T, c lintCase, rs *zlint.ResultSet) {
	t.Helper()
	names := make([]string, 0, len(rs.Results))
	for name := range rs.Results {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := rs.Results[name]
		if r.Status < lint.Warn {
			continue
		}
		acc, ok := acceptedLints[name]
		if ok && acc.applies(c) && (r.Status == lint.Warn || name != "e_crl_extensions_validity") {
			t.Logf("%s %s: accepted %s (%v): %s", c.kt, c.kind, name, r.Status, acc.reason)
			continue
		}
		t.Errorf("%s %s: zlint %s %v: %s", c.kt, c.kind, name, r.Status, r.Details)
	}
}

// TestZlint lints, for a CA of every key type, the CA certificate,
// tls-server and tls-client certificates, and full and delta CRLs.
func TestZlint(t *testing.T) {
	now := time.Now()
	for _, kt := range KeyTypes() {
		a := newTestRoot(t, "Example "+string(kt)+" CA", kt, "http://127.0.0.1:8080", now)
		sub := testKey(t, kt, 1)
		srv := issueFor(t, a, profile(t, ProfileTLSServer), sub, csrSpec{CN: "www.example.com", DNS: []string{"api.example.com"}}, now)
		srvIP := issueFor(t, a, profile(t, ProfileTLSServer), sub, csrSpec{CN: "www.example.com", IPs: []string{"127.0.0.1"}}, now)
		cli := issueFor(t, a, profile(t, ProfileTLSClient), sub, csrSpec{CN: "alice", Emails: []string{"alice@example.com"}}, now)
		certs := []struct {
			kind string
			der  []byte
		}{{"ca", a.Cert.Raw}, {"server", srv.Raw}, {"server-ip", srvIP.Raw}, {"client", cli.Raw}}
		for _, c := range certs {
			zc, err := zx509.ParseCertificate(c.der)
			if err != nil {
				t.Fatalf("%s %s: zcrypto parse: %v", kt, c.kind, err)
			}
			checkLints(t, lintCase{kt, c.kind}, zlint.LintCertificate(zc))
		}

		thisUpdate, nextUpdate := CRLWindow(now, 7*24*time.Hour, 24*time.Hour)
		crl, err := a.CRL([]RevokedEntry{{Serial: srv.SerialNumber, RevokedAt: now, Reason: ReasonKeyCompromise}, {Serial: srvIP.SerialNumber, RevokedAt: now, Reason: ReasonUnspecified}}, big.NewInt(1), nil, thisUpdate, nextUpdate)
		if err != nil {
			t.Fatal(err)
		}
		crlHold, err := a.CRL([]RevokedEntry{{Serial: srv.SerialNumber, RevokedAt: now, Reason: ReasonKeyCompromise}, {Serial: cli.SerialNumber, RevokedAt: now, Reason: ReasonCertificateHold}}, big.NewInt(2), nil, thisUpdate, nextUpdate)
		if err != nil {
			t.Fatal(err)
		}
		delta, err := a.CRL([]RevokedEntry{{Serial: cli.SerialNumber, RevokedAt: now, Reason: ReasonRemoveFromCRL}}, big.NewInt(3), big.NewInt(2), thisUpdate, now.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			kind string
			der  []byte
		}{{"crl", crl}, {"crl-hold", crlHold}, {"delta", delta}} {
			rl, err := zx509.ParseRevocationList(c.der)
			if err != nil {
				t.Fatalf("%s %s: zcrypto parse: %v", kt, c.kind, err)
			}
			checkLints(t, lintCase{kt, c.kind}, zlint.LintRevocationList(rl))
		}
	}
}

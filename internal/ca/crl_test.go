package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// TestCRLsWithOpenSSL signs full and delta CRLs with a CA of every key
// type and checks them with openssl: verify -crl_check rejects revoked
// certificates and accepts the others, -use_deltas applies the delta (a
// later revocation and a released hold), and openssl crl prints the CRL
// number, the delta CRL indicator and the reasons.
func TestCRLsWithOpenSSL(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			a := newTestRoot(t, "CRL "+string(kt)+" CA", kt, "http://127.0.0.1:8080", now)
			caPath := writeTemp(t, dir, "ca.pem", certPEM(a.Cert))
			sub := testKey(t, KeyECDSAP256, 1)
			issue := func(cn string) (*x509.Certificate, string) {
				c := issueFor(t, a, profile(t, ProfileTLSServer), sub, csrSpec{CN: cn}, now)
				return c, writeTemp(t, dir, cn+".pem", certPEM(c))
			}
			good, goodPath := issue("good.example.com")
			revoked, revokedPath := issue("revoked.example.com")
			held, heldPath := issue("held.example.com")
			later, laterPath := issue("later.example.com")
			_ = good

			thisUpdate, nextUpdate := CRLWindow(now, 7*24*time.Hour, 24*time.Hour)
			full, err := a.CRL([]RevokedEntry{
				{Serial: revoked.SerialNumber, RevokedAt: now, Reason: ReasonKeyCompromise},
				{Serial: held.SerialNumber, RevokedAt: now, Reason: ReasonCertificateHold},
			}, big.NewInt(1), nil, thisUpdate, nextUpdate)
			if err != nil {
				t.Fatalf("full CRL: %v", err)
			}
			delta, err := a.CRL([]RevokedEntry{
				{Serial: later.SerialNumber, RevokedAt: now, Reason: ReasonSuperseded},
				{Serial: held.SerialNumber, RevokedAt: now, Reason: ReasonRemoveFromCRL},
			}, big.NewInt(2), big.NewInt(1), thisUpdate, now.Add(24*time.Hour))
			if err != nil {
				t.Fatalf("delta CRL: %v", err)
			}
			fullPath := writeTemp(t, dir, "full.crl", crlPEM(full))
			bothPath := writeTemp(t, dir, "both.crl", append(crlPEM(full), crlPEM(delta)...))

			verify := func(crlFile string, useDeltas bool, cert string) (string, error) {
				args := []string{"verify", "-crl_check", "-CAfile", caPath, "-CRLfile", crlFile}
				if useDeltas {
					args = append(args, "-use_deltas")
				}
				return runOpenSSL(t, append(args, cert)...)
			}
			expect := func(crlFile string, useDeltas bool, cert string, wantOK bool) {
				t.Helper()
				out, err := verify(crlFile, useDeltas, cert)
				if wantOK && (err != nil || !strings.Contains(out, ": OK")) {
					t.Errorf("openssl verify (deltas %v) %s: want OK, got %v\n%s", useDeltas, cert, err, out)
				}
				if !wantOK && (err == nil || !strings.Contains(out, "certificate revoked")) {
					t.Errorf("openssl verify (deltas %v) %s: want revoked, got %v\n%s", useDeltas, cert, err, out)
				}
			}
			expect(fullPath, false, goodPath, true)
			expect(fullPath, false, revokedPath, false)
			expect(fullPath, false, heldPath, false)
			expect(fullPath, false, laterPath, true)
			expect(bothPath, true, goodPath, true)
			expect(bothPath, true, revokedPath, false)
			expect(bothPath, true, heldPath, true) // hold released in the delta
			expect(bothPath, true, laterPath, false)

			fullText := mustOpenSSL(t, "crl", "-inform", "DER", "-in", writeTemp(t, dir, "full.der", full), "-noout", "-text")
			for _, want := range []string{"X509v3 CRL Number", "    1\n", "Freshest CRL", a.CRLURL(true), SerialString(revoked.SerialNumber), "Key Compromise", "Certificate Hold"} {
				if !strings.Contains(fullText, want) {
					t.Errorf("openssl crl (full) lacks %q:\n%s", want, fullText)
				}
			}
			if strings.Contains(fullText, "Delta CRL Indicator") {
				t.Errorf("full CRL carries a delta CRL indicator:\n%s", fullText)
			}
			deltaText := mustOpenSSL(t, "crl", "-inform", "DER", "-in", writeTemp(t, dir, "delta.der", delta), "-noout", "-text")
			for _, want := range []string{"X509v3 CRL Number", "    2\n", "X509v3 Delta CRL Indicator: critical", "Remove From CRL", "Superseded", SerialString(later.SerialNumber)} {
				if !strings.Contains(deltaText, want) {
					t.Errorf("openssl crl (delta) lacks %q:\n%s", want, deltaText)
				}
			}

			// Go's parser agrees.
			rl, err := x509.ParseRevocationList(delta)
			if err != nil {
				t.Fatal(err)
			}
			if err := rl.CheckSignatureFrom(a.Cert); err != nil {
				t.Errorf("delta signature: %v", err)
			}
			if rl.Number.Cmp(big.NewInt(2)) != 0 || len(rl.RevokedCertificateEntries) != 2 {
				t.Errorf("delta number %v entries %d", rl.Number, len(rl.RevokedCertificateEntries))
			}
			var base *big.Int
			for _, e := range rl.Extensions {
				if e.Id.Equal(oidExtDeltaCRLIndicator) {
					if !e.Critical {
						t.Error("delta CRL indicator not critical")
					}
					if _, err := asn1.Unmarshal(e.Value, &base); err != nil || base.Cmp(big.NewInt(1)) != 0 {
						t.Errorf("delta CRL indicator %v, %v", base, err)
					}
				}
			}
			if base == nil {
				t.Error("no delta CRL indicator")
			}
			if !bytes.Equal(rl.AuthorityKeyId, a.Cert.SubjectKeyId) {
				t.Errorf("CRL AKI %x, CA SKI %x", rl.AuthorityKeyId, a.Cert.SubjectKeyId)
			}
		})
	}
}

func TestCRLEntriesSortedAndReasons(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "Sorted CA", KeyEd25519, "", now)
	entries := []RevokedEntry{
		{Serial: big.NewInt(0x30), RevokedAt: now, Reason: ReasonUnspecified},
		{Serial: big.NewInt(0x10), RevokedAt: now, Reason: ReasonAACompromise},
		{Serial: big.NewInt(0x20), RevokedAt: now, Reason: ReasonPrivilegeWithdrawn},
	}
	der, err := a.CRL(entries, big.NewInt(5), nil, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ serial, reason int }{{0x10, 10}, {0x20, 9}, {0x30, 0}}
	for i, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber.Int64() != int64(want[i].serial) || e.ReasonCode != want[i].reason {
			t.Errorf("entry %d: %s reason %d", i, SerialString(e.SerialNumber), e.ReasonCode)
		}
	}
	// No base URL: no Freshest CRL extension.
	for _, e := range rl.Extensions {
		if e.Id.Equal(oidExtFreshestCRL) {
			t.Error("Freshest CRL without a base URL")
		}
	}
	// The unspecified reason is written as no reasonCode extension.
	if len(rl.RevokedCertificateEntries[2].Extensions) != 0 {
		t.Errorf("unspecified entry has extensions %v", rl.RevokedCertificateEntries[2].Extensions)
	}
	// An empty CRL is fine.
	if _, err := a.CRL(nil, big.NewInt(6), nil, now, now.Add(time.Hour)); err != nil {
		t.Errorf("empty CRL: %v", err)
	}
}

func TestCRLRejects(t *testing.T) {
	now := time.Now()
	a := newTestRoot(t, "Strict CA", KeyECDSAP256, "", now)
	one, two := big.NewInt(1), big.NewInt(2)
	e := func(serial int64, reason int) RevokedEntry {
		return RevokedEntry{Serial: big.NewInt(serial), RevokedAt: now, Reason: reason}
	}
	huge := new(big.Int).Lsh(big.NewInt(1), 160)
	cases := []struct {
		name       string
		entries    []RevokedEntry
		number     *big.Int
		base       *big.Int
		this, next time.Time
		want       error
	}{
		{"nil number", nil, nil, nil, now, now.Add(time.Hour), ErrBadCRL},
		{"zero number", nil, big.NewInt(0), nil, now, now.Add(time.Hour), ErrBadCRL},
		{"number over 20 octets", nil, huge, nil, now, now.Add(time.Hour), ErrBadCRL},
		{"base equals number", nil, two, two, now, now.Add(time.Hour), ErrBadCRL},
		{"base above number", nil, one, two, now, now.Add(time.Hour), ErrBadCRL},
		{"zero base", nil, two, big.NewInt(0), now, now.Add(time.Hour), ErrBadCRL},
		{"next before this", nil, one, nil, now, now.Add(-time.Hour), ErrBadCRL},
		{"next equals this", nil, one, nil, now, now, ErrBadCRL},
		{"duplicate serial", []RevokedEntry{e(5, 1), e(5, 4)}, one, nil, now, now.Add(time.Hour), ErrBadCRL},
		{"zero time", []RevokedEntry{{Serial: big.NewInt(5)}}, one, nil, now, now.Add(time.Hour), ErrBadCRL},
		{"revoked after thisUpdate", []RevokedEntry{{Serial: big.NewInt(5), RevokedAt: now.Add(2 * time.Second)}}, one, nil, now, now.Add(time.Hour), ErrBadCRL},
		{"bad serial", []RevokedEntry{e(0, 1)}, one, nil, now, now.Add(time.Hour), ErrBadSerial},
		{"nil serial", []RevokedEntry{{RevokedAt: now}}, one, nil, now, now.Add(time.Hour), ErrBadSerial},
		{"reason 7", []RevokedEntry{e(5, 7)}, one, nil, now, now.Add(time.Hour), ErrBadReason},
		{"reason 11", []RevokedEntry{e(5, 11)}, one, nil, now, now.Add(time.Hour), ErrBadReason},
		{"removeFromCRL on a full CRL", []RevokedEntry{e(5, ReasonRemoveFromCRL)}, one, nil, now, now.Add(time.Hour), ErrBadReason},
	}
	for _, c := range cases {
		if _, err := a.CRL(c.entries, c.number, c.base, c.this, c.next); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := (&Authority{}).CRL(nil, one, nil, now, now.Add(time.Hour)); !errors.Is(err, ErrNotCA) {
		t.Errorf("empty authority: %v", err)
	}
}

package service

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
)

var oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}

// readCRL parses a published CRL file and returns it with its Delta CRL
// Indicator (nil for a full CRL).
func readCRL(t *testing.T, path string) (*x509.RevocationList, *big.Int) {
	t.Helper()
	der, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var base *big.Int
	for _, e := range crl.Extensions {
		if e.Id.Equal(oidDeltaCRLIndicator) {
			if !e.Critical {
				t.Errorf("%s: Delta CRL Indicator not critical", path)
			}
			base = new(big.Int)
			if _, err := asn1.Unmarshal(e.Value, &base); err != nil {
				t.Fatal(err)
			}
		}
	}
	return crl, base
}

// entries maps serial to reason code on a CRL.
func entries(crl *x509.RevocationList) map[string]int {
	m := map[string]int{}
	for _, e := range crl.RevokedCertificateEntries {
		m[ca.SerialString(e.SerialNumber)] = e.ReasonCode
	}
	return m
}

func TestCRLNumbersSharedAndMonotonic(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	full, base := readCRL(t, c.crlPath(false))
	if full.Number.Int64() != 1 || base != nil {
		t.Fatalf("Init's full CRL: number %v base %v", full.Number, base)
	}
	delta, base := readCRL(t, c.crlPath(true))
	if delta.Number.Int64() != 2 || base == nil || base.Int64() != 1 {
		t.Fatalf("Init's delta CRL: number %v base %v", delta.Number, base)
	}
	steps := []struct {
		delta      bool
		number     int64
		baseNumber int64
	}{{false, 3, 0}, {true, 4, 3}, {true, 5, 3}, {false, 6, 0}, {true, 7, 6}}
	for _, s := range steps {
		info, err := c.PublishCRL(ctx, s.delta)
		if err != nil {
			t.Fatal(err)
		}
		if info.Number.Int64() != s.number || info.Delta != s.delta {
			t.Fatalf("PublishCRL(delta=%v) = number %v, want %d", s.delta, info.Number, s.number)
		}
		if info.Path != c.crlPath(s.delta) || info.URL != "http://127.0.0.1:8080/CertEnroll/Test%20CA"+map[bool]string{false: ".crl", true: "+.crl"}[s.delta] {
			t.Errorf("path %q url %q", info.Path, info.URL)
		}
		crl, base := readCRL(t, info.Path)
		if crl.Number.Int64() != s.number {
			t.Errorf("file number %v, want %d", crl.Number, s.number)
		}
		if err := crl.CheckSignatureFrom(c.Certificate()); err != nil {
			t.Errorf("CRL %d signature: %v", s.number, err)
		}
		if s.delta {
			if base == nil || base.Int64() != s.baseNumber || info.BaseNumber.Int64() != s.baseNumber {
				t.Errorf("delta %d base = %v (info %v), want %d", s.number, base, info.BaseNumber, s.baseNumber)
			}
		} else if base != nil || info.BaseNumber != nil {
			t.Errorf("full CRL %d carries a base %v", s.number, base)
		}
	}
}

func TestCRLOpenSSLVerify(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	rs := issueN(t, c, 2)
	good, bad := rs[0], rs[1]
	if _, err := c.Revoke(ctx, strings.ToLower(bad.Certificate.Serial), "keyCompromise", time.Time{}); err != nil {
		t.Fatal(err)
	}
	full, err := c.PublishCRL(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	delta, err := c.PublishCRL(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	goodPath := writeFile(t, tmp, "good.pem", ca.EncodeCertsPEM(parseCert(t, good.Certificate.DER)))
	badPath := writeFile(t, tmp, "bad.pem", ca.EncodeCertsPEM(parseCert(t, bad.Certificate.DER)))
	caPath := c.Dir().CACertPath()

	out := mustOpenSSL(t, "verify", "-crl_check", "-CRLfile", full.Path, "-CAfile", caPath, goodPath)
	if !strings.Contains(out, "OK") {
		t.Errorf("openssl verify of the good certificate: %s", out)
	}
	out, err = runOpenSSL(t, "verify", "-crl_check", "-CRLfile", full.Path, "-CAfile", caPath, badPath)
	if err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify accepted the revoked certificate (err %v):\n%s", err, out)
	}

	text := mustOpenSSL(t, "crl", "-inform", "DER", "-in", full.Path, "-noout", "-text")
	for _, want := range []string{"X509v3 CRL Number", "Key Compromise", bad.Certificate.Serial, "Freshest CRL", "Test%20CA+.crl"} {
		if !strings.Contains(text, want) {
			t.Errorf("openssl crl -text of the full CRL lacks %q:\n%s", want, text)
		}
	}
	text = mustOpenSSL(t, "crl", "-inform", "DER", "-in", delta.Path, "-noout", "-text")
	for _, want := range []string{"X509v3 Delta CRL Indicator: critical", full.Number.String()} {
		if !strings.Contains(text, want) {
			t.Errorf("openssl crl -text of the delta CRL lacks %q:\n%s", want, text)
		}
	}
	mustOpenSSL(t, "crl", "-inform", "DER", "-in", delta.Path, "-noout", "-CAfile", caPath)
}

func TestDeltaCRLHoldRelease(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	rs := issueN(t, c, 3)
	held, later := rs[0].Certificate.Serial, rs[1].Certificate.Serial
	if _, err := c.Revoke(ctx, held, "certificateHold", time.Time{}); err != nil {
		t.Fatal(err)
	}
	full, err := c.PublishCRL(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	crl, _ := readCRL(t, full.Path)
	if got := entries(crl); len(got) != 1 || got[held] != ca.ReasonCertificateHold {
		t.Fatalf("full CRL entries %v, want %s on hold", got, held)
	}
	d0, err := c.PublishCRL(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if d0.Entries != 0 {
		t.Errorf("delta right after the full CRL has %d entries", d0.Entries)
	}

	if _, err := c.Unrevoke(ctx, held); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, later, "superseded", time.Time{}); err != nil {
		t.Fatal(err)
	}
	d1, err := c.PublishCRL(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	dcrl, base := readCRL(t, d1.Path)
	if base.Cmp(full.Number) != 0 {
		t.Errorf("delta base %v, want %v", base, full.Number)
	}
	got := entries(dcrl)
	if len(got) != 2 || got[held] != ca.ReasonRemoveFromCRL || got[later] != ca.ReasonSuperseded {
		t.Errorf("delta entries %v, want %s removeFromCRL and %s superseded", got, held, later)
	}
	if text := mustOpenSSL(t, "crl", "-inform", "DER", "-in", d1.Path, "-noout", "-text"); !strings.Contains(text, "Remove From CRL") {
		t.Errorf("openssl does not show Remove From CRL:\n%s", text)
	}

	full2, err := c.PublishCRL(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	crl2, _ := readCRL(t, full2.Path)
	if got := entries(crl2); len(got) != 1 || got[later] != ca.ReasonSuperseded {
		t.Errorf("next full CRL entries %v, want only %s", got, later)
	}
	d2, err := c.PublishCRL(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Entries != 0 || d2.BaseNumber.Cmp(full2.Number) != 0 {
		t.Errorf("delta after the new full CRL: %d entries, base %v", d2.Entries, d2.BaseNumber)
	}
}

func TestDeltaCRLsDisabled(t *testing.T) {
	c := newCA(t, withConfig(func(cfg *datadir.Config) { cfg.DeltaCRLValidity = 0 }))
	if _, err := os.Stat(c.crlPath(true)); !os.IsNotExist(err) {
		t.Errorf("delta CRL published although disabled: %v", err)
	}
	before := lastLSN(c)
	_, err := c.PublishCRL(context.Background(), true)
	wantCode(t, err, apierr.InvalidArg)
	if lastLSN(c) != before {
		t.Error("refused delta CRL wrote to the log")
	}
	if names := dynamicNames(c); strings.Join(names, ",") != "Test CA.crt,Test CA.crl" {
		t.Errorf("dynamic files %v", names)
	}
}

// TestDeltaCRLsSwitchedOff: a CA that published delta CRLs and has them
// switched off publishes full CRLs without a Freshest CRL extension and
// removes the old delta, which would never be renewed.
func TestDeltaCRLsSwitchedOff(t *testing.T) {
	dir := initDir(t)
	c := openCA(t, dir)
	if _, err := os.Stat(c.crlPath(true)); err != nil {
		t.Fatalf("no delta CRL while deltas are on: %v", err)
	}
	c.Close()
	cfg, err := dir.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DeltaCRLValidity = 0
	if err := dir.SaveConfig(cfg); err != nil {
		t.Fatal(err)
	}
	c = openCA(t, dir)
	info, err := c.PublishCRL(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	der, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range crl.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 46}) {
			t.Error("the full CRL points at a delta CRL (Freshest CRL) although deltas are off")
		}
	}
	if _, err := os.Stat(c.crlPath(true)); !os.IsNotExist(err) {
		t.Errorf("the stale delta CRL is still published: %v", err)
	}
}

func dynamicNames(c *CA) []string {
	var out []string
	for _, f := range c.DynamicFiles() {
		out = append(out, f.Name)
	}
	return out
}

func TestDynamicFiles(t *testing.T) {
	c := newCA(t)
	files := c.DynamicFiles()
	if len(files) != 3 {
		t.Fatalf("DynamicFiles = %+v", files)
	}
	want := []struct{ name, url string }{
		{"Test CA.crt", "http://127.0.0.1:8080/CertEnroll/Test%20CA.crt"},
		{"Test CA.crl", "http://127.0.0.1:8080/CertEnroll/Test%20CA.crl"},
		{"Test CA+.crl", "http://127.0.0.1:8080/CertEnroll/Test%20CA+.crl"},
	}
	for i, f := range files {
		fi, err := os.Stat(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name != want[i].name || f.URL != want[i].url || f.Size != fi.Size() || filepath.Dir(f.Path) != c.Dir().PublishDir() {
			t.Errorf("file %d = %+v, want %s at %s", i, f, want[i].name, want[i].url)
		}
	}
}

// TestPublisherSchedule drives the publisher's decisions with a fake clock:
// nothing is due right after Init, a delta falls due after its interval,
// a full CRL after its own, and each new full CRL is followed by a delta
// based on it.
func TestPublisherSchedule(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	clock := &fakeClock{t: time.Now()}
	c.now = clock.now
	before := lastLSN(c)
	wait, stop := c.publishDue(ctx, false)
	if stop || lastLSN(c) != before {
		t.Fatalf("publisher published right after Init (stop %v)", stop)
	}
	if wait <= 0 || wait > time.Hour {
		t.Errorf("wait %v, want at most the delta interval (1h)", wait)
	}
	clock.advance(time.Hour + time.Minute)
	if _, stop := c.publishDue(ctx, false); stop {
		t.Fatal("stopped")
	}
	d, _ := c.Store().LastCRL(ctx, true)
	f, _ := c.Store().LastCRL(ctx, false)
	if d.Number != 3 || f.Number != 1 {
		t.Errorf("after an hour: full %d delta %d, want full 1 delta 3", f.Number, d.Number)
	}
	clock.advance(24 * time.Hour)
	if _, stop := c.publishDue(ctx, false); stop {
		t.Fatal("stopped")
	}
	d, _ = c.Store().LastCRL(ctx, true)
	f, _ = c.Store().LastCRL(ctx, false)
	if f.Number != 4 || d.Number != 5 || d.BaseNumber != 4 {
		t.Errorf("after a day: full %d delta %d base %d, want full 4 delta 5 base 4", f.Number, d.Number, d.BaseNumber)
	}
}

// TestRunPublisherRepairsFiles removes and damages the published CRLs and
// checks that a starting publisher rewrites them from the database without
// using new CRL numbers, and that it returns when its context ends.
func TestRunPublisherRepairsFiles(t *testing.T) {
	c := newCA(t)
	ctx, cancel := context.WithCancel(context.Background())
	fullRec, _ := c.Store().LastCRL(ctx, false)
	deltaRec, _ := c.Store().LastCRL(ctx, true)
	if err := os.Remove(c.crlPath(false)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.crlPath(true), []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := lastLSN(c)
	done := make(chan struct{})
	go func() { c.RunPublisher(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, _ := os.ReadFile(c.crlPath(false))
		d, _ := os.ReadFile(c.crlPath(true))
		if bytes.Equal(f, fullRec.DER) && bytes.Equal(d, deltaRec.DER) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("publisher did not restore the published CRLs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunPublisher did not return after cancel")
	}
	if lastLSN(c) != before {
		t.Errorf("repair recorded %d new records; it should reuse the recorded CRLs", lastLSN(c)-before)
	}
}

// TestDeltaCompleteUnderConcurrentRevocation revokes certificates while
// full and delta CRLs are published concurrently, then checks the rule
// relying parties depend on: the last full CRL plus the last delta CRL
// based on it list every revoked certificate, none missed in the gap
// between reading the revocations and recording the CRL.
func TestDeltaCompleteUnderConcurrentRevocation(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	rs := issueN(t, c, 40)
	done := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() {
		defer close(pubErr)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if _, err := c.PublishCRL(ctx, i%3 != 0); err != nil {
				pubErr <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(rs); i += 4 {
				if _, err := c.Revoke(ctx, rs[i].Certificate.Serial, "keyCompromise", time.Time{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	delta, err := c.PublishCRL(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	full, base := readCRL(t, c.crlPath(false))
	dcrl, dbase := readCRL(t, delta.Path)
	if base != nil || dbase.Cmp(full.Number) != 0 {
		t.Fatalf("delta base %v, published full CRL %v", dbase, full.Number)
	}
	union := entries(full)
	for s, r := range entries(dcrl) {
		union[s] = r
	}
	for _, r := range rs {
		if union[r.Certificate.Serial] != ca.ReasonKeyCompromise {
			t.Errorf("revoked %s is on neither the full CRL %v nor its delta %v", r.Certificate.Serial, full.Number, dcrl.Number)
		}
	}
	if len(union) != len(rs) {
		t.Errorf("full+delta list %d certificates, want %d", len(union), len(rs))
	}
}

// TestCRLNumbersAfterRestore: a restored database (need-full-backup set)
// does not know CRLs published after its backup, so the publisher
// republishes at once with numbers at least the current Unix time, above
// any number used before; numbering is by one again after a full backup
// clears the flag.
func TestCRLNumbersAfterRestore(t *testing.T) {
	c := newCA(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before, _ := c.Store().LastCRL(ctx, false)
	if before.Number > 10 {
		t.Fatalf("fresh CA's CRL number %d", before.Number)
	}
	if err := c.Store().SetNeedFullBackup(ctx, true); err != nil {
		t.Fatal(err)
	}
	floor := uint64(time.Now().Unix())
	done := make(chan struct{})
	go func() { c.RunPublisher(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	var full, delta *big.Int
	for {
		f, _ := readCRLIfAny(c.crlPath(false))
		d, _ := readCRLIfAny(c.crlPath(true))
		if f != nil && d != nil && f.Number.Uint64() >= floor && d.Number.Uint64() > f.Number.Uint64() {
			full, delta = f.Number, d.Number
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the publisher did not republish under the post-restore floor")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	info, err := c.PublishCRL(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if info.Number.Cmp(delta) <= 0 || info.Number.Uint64() < floor {
		t.Fatalf("next full CRL %v after %v/%v", info.Number, full, delta)
	}
	if err := c.Store().SetNeedFullBackup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	next, err := c.PublishCRL(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if next.Number.Uint64() != info.Number.Uint64()+1 {
		t.Fatalf("after the full backup the number went %v -> %v, want +1", info.Number, next.Number)
	}
}

// readCRLIfAny parses a published CRL file, or returns nil if it is
// missing or unreadable (the publisher may be writing it).
func readCRLIfAny(path string) (*x509.RevocationList, error) {
	der, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return x509.ParseRevocationList(der)
}

package service

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

func TestSubmitEveryKeyTypeAndProfile(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	roots := x509.NewCertPool()
	roots.AddCert(c.Certificate())
	for i, kt := range ca.KeyTypes() {
		key := testKey(t, kt, 0)
		for _, tc := range []struct {
			profile string
			spec    csrSpec
			eku     x509.ExtKeyUsage
		}{
			{"tls-server", csrSpec{CN: fmt.Sprintf("h%d.example.test", i), IPs: []string{"192.0.2.7"}}, x509.ExtKeyUsageServerAuth},
			{"tls-client", csrSpec{CN: "user " + string(kt), Emails: []string{"user@example.test"}}, x509.ExtKeyUsageClientAuth},
		} {
			t.Run(string(kt)+"/"+tc.profile, func(t *testing.T) {
				before := lastLSN(c)
				r, err := c.Submit(ctx, "alice", makeCSR(t, key, tc.spec), tc.profile)
				if err != nil {
					t.Fatal(err)
				}
				if lastLSN(c) != before+1 {
					t.Errorf("auto-issue wrote %d log records, want 1", lastLSN(c)-before)
				}
				if r.Status != store.StatusIssued || r.Certificate == nil {
					t.Fatalf("status %v, certificate %v", r.Status, r.Certificate)
				}
				if r.Requester != "alice" || r.Profile != tc.profile || !strings.Contains(r.Subject, tc.spec.CN) {
					t.Errorf("request = requester %q profile %q subject %q", r.Requester, r.Profile, r.Subject)
				}
				cert := parseCert(t, r.Certificate.DER)
				if ca.SerialString(cert.SerialNumber) != r.Certificate.Serial {
					t.Errorf("stored serial %s, certificate serial %s", r.Certificate.Serial, ca.SerialString(cert.SerialNumber))
				}
				if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tc.eku}}); err != nil {
					t.Errorf("issued certificate does not verify: %v", err)
				}
				if !cert.NotAfter.Equal(r.Certificate.NotAfter) || !cert.NotBefore.Equal(r.Certificate.NotBefore) {
					t.Errorf("stored validity %v..%v, certificate %v..%v", r.Certificate.NotBefore, r.Certificate.NotAfter, cert.NotBefore, cert.NotAfter)
				}
				if r.Certificate.Subject != cert.Subject.String() {
					t.Errorf("stored subject %q, certificate subject %q", r.Certificate.Subject, cert.Subject.String())
				}
				got, err := c.Request(ctx, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Certificate == nil || !bytes.Equal(got.Certificate.DER, r.Certificate.DER) {
					t.Fatal("Request does not return the issued certificate")
				}
				if got.Certificate.Subject != cert.Subject.String() || !got.Certificate.NotBefore.Equal(cert.NotBefore) || !got.Certificate.NotAfter.Equal(cert.NotAfter) {
					t.Errorf("read back subject %q validity %v..%v, certificate %q %v..%v", got.Certificate.Subject, got.Certificate.NotBefore, got.Certificate.NotAfter, cert.Subject.String(), cert.NotBefore, cert.NotAfter)
				}
				wantSAN := "email:user@example.test"
				if tc.profile == "tls-server" {
					wantSAN = "IP:192.0.2.7"
				}
				if !slices.Contains(got.SANs, wantSAN) {
					t.Errorf("recorded SANs %v lack %q", got.SANs, wantSAN)
				}
			})
		}
	}
}

func TestPendingApproveDeny(t *testing.T) {
	c := newCA(t, pendingProfiles())
	ctx := context.Background()

	r, err := c.Submit(ctx, "bob", serverCSR(t, "manual.example.test"), "manual")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.StatusPending || r.Certificate != nil {
		t.Fatalf("manual profile: status %v certificate %v, want pending without certificate", r.Status, r.Certificate)
	}
	got, err := c.Request(ctx, r.ID)
	if err != nil || got.Status != store.StatusPending || len(got.CSR) == 0 {
		t.Fatalf("Request(pending) = %+v, %v", got, err)
	}
	a, err := c.Approve(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != store.StatusIssued || a.Certificate == nil {
		t.Fatalf("approved: status %v", a.Status)
	}
	// The answer is the request as the database now holds it.
	if stored, err := c.Request(ctx, r.ID); err != nil || !reflect.DeepEqual(stored, a) {
		t.Errorf("Approve answered\n%+v\n%+v\nthe database holds\n%+v\n%+v (%v)", a, a.Certificate, stored, stored.Certificate, err)
	}
	cert := parseCert(t, a.Certificate.DER)
	if err := cert.CheckSignatureFrom(c.Certificate()); err != nil || cert.DNSNames[0] != "manual.example.test" {
		t.Errorf("approved certificate: %v, names %v", err, cert.DNSNames)
	}

	before := lastLSN(c)
	_, err = c.Approve(ctx, r.ID)
	wantCode(t, err, apierr.BadRequestStatus)
	_, err = c.Deny(ctx, r.ID, "too late")
	wantCode(t, err, apierr.BadRequestStatus)

	r2, err := c.Submit(ctx, "bob", serverCSR(t, "denied.example.test"), "manual")
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Deny(ctx, r2.ID, "not our host")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != store.StatusDenied || d.DenyReason != "not our host" || d.Certificate != nil {
		t.Fatalf("denied request = %+v", d)
	}
	if stored, err := c.Request(ctx, r2.ID); err != nil || !reflect.DeepEqual(stored, d) {
		t.Errorf("Deny answered\n%+v\nthe database holds\n%+v (%v)", d, stored, err)
	}
	before = lastLSN(c)
	_, err = c.Approve(ctx, r2.ID)
	wantCode(t, err, apierr.BadRequestStatus)
	_, err = c.Approve(ctx, 9999)
	wantCode(t, err, apierr.NoRequest)
	_, err = c.Deny(ctx, 9999, "")
	wantCode(t, err, apierr.NoRequest)
	_, err = c.Request(ctx, 9999)
	wantCode(t, err, apierr.NoRequest)
	if lastLSN(c) != before {
		t.Errorf("refused approve/deny wrote %d records", lastLSN(c)-before)
	}
}

// TestSubmitRejectsBadRequests submits every kind of bad request and checks
// that each gets its own error and that nothing reaches the log.
func TestSubmitRejectsBadRequests(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	good := serverCSR(t, "good.example.test")
	block, _ := pem.Decode(good)
	der := block.Bytes

	badSig := bytes.Clone(der)
	badSig[len(badSig)-3] ^= 0x55 // inside the signature value

	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	huge := append(bytes.Clone(der), make([]byte, ca.MaxCSRSize)...)

	type want struct {
		code     apierr.Code
		sentinel error
		detail   string // substring of the message that tells the cases apart
	}
	cases := []struct {
		name    string
		csr     []byte
		profile string
		want    want
	}{
		{"malformed", []byte("this is not a request"), "", want{apierr.BadRequest, ca.ErrMalformedCSR, "not a certificate request: expected PEM 'CERTIFICATE REQUEST' or DER PKCS#10"}},
		{"truncated", der[:len(der)/2], "", want{apierr.BadRequest, ca.ErrMalformedCSR, "truncated"}},
		{"bad signature", badSig, "", want{apierr.BadRequest, ca.ErrBadSignature, "signature"}},
		{"rsa-1024", makeCSR(t, rsaKey(t, 1024), csrSpec{CN: "small.example.test"}), "", want{apierr.PolicyDenied, ca.ErrKeyNotAllowed, "rsa-1024"}},
		{"unsupported key", makeCSR(t, p521, csrSpec{CN: "p521.example.test"}), "", want{apierr.PolicyDenied, ca.ErrKeyNotAllowed, "P-521"}},
		{"oversized", huge, "", want{apierr.TooLarge, ca.ErrTooLarge, "exceeds"}},
		{"SAN not allowed", makeCSR(t, testKey(t, ca.KeyECDSAP256, 1), csrSpec{CN: "mail.example.test", Emails: []string{"a@example.test"}}), "", want{apierr.PolicyDenied, ca.ErrSANNotAllowed, "email"}},
		{"bad DNS name", makeCSR(t, testKey(t, ca.KeyECDSAP256, 1), csrSpec{CN: "under_score.example.test"}), "", want{apierr.PolicyDenied, ca.ErrSubjectNotAllowed, "under_score"}},
		{"unknown profile", good, "code-signing", want{apierr.PolicyDenied, ca.ErrUnknownProfile, "code-signing"}},
	}
	counts0, err := c.Store().Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := lastLSN(c)
	seen := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.Submit(ctx, "mallory", tc.csr, tc.profile)
			if err == nil {
				t.Fatalf("accepted: request %d", r.ID)
			}
			wantCode(t, err, tc.want.code)
			if !errors.Is(err, tc.want.sentinel) {
				t.Errorf("err = %v, want it to match %v", err, tc.want.sentinel)
			}
			if !strings.Contains(err.Error(), tc.want.detail) {
				t.Errorf("err = %q, want it to mention %q", err, tc.want.detail)
			}
			if strings.Contains(err.Error(), "asn1") {
				t.Errorf("err = %q shows the ASN.1 decoder's message", err)
			}
			key := tc.want.code.Reason + "|" + tc.want.sentinel.Error() + "|" + tc.want.detail
			if prev, dup := seen[key]; dup {
				t.Errorf("error of %q is not distinct from %q", tc.name, prev)
			}
			seen[key] = tc.name
			if lastLSN(c) != before {
				t.Errorf("refused request wrote %d log records", lastLSN(c)-before)
			}
		})
	}
	var kpe *ca.KeyPolicyError
	_, err = c.Submit(ctx, "mallory", cases[3].csr, "")
	if !errors.As(err, &kpe) || kpe.Key != "rsa-1024" {
		t.Errorf("rsa-1024: err = %v, want a *ca.KeyPolicyError for rsa-1024", err)
	}
	_, err = c.Submit(ctx, "", good, "")
	wantCode(t, err, apierr.InvalidArg)
	counts1, err := c.Store().Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts1 != counts0 {
		t.Errorf("counts changed: %+v -> %+v", counts0, counts1)
	}
	if lastLSN(c) != before {
		t.Errorf("refused requests wrote %d log records", lastLSN(c)-before)
	}
	// The good request still goes through.
	if _, err := c.Submit(ctx, "alice", good, ""); err != nil {
		t.Fatal(err)
	}
}

func TestViewFilters(t *testing.T) {
	c := newCA(t, pendingProfiles())
	ctx := context.Background()
	var issued []*Request
	for i := range 3 {
		r, err := c.Submit(ctx, "alice", serverCSR(t, fmt.Sprintf("v%d.example.test", i)), "")
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, r)
	}
	pend, err := c.Submit(ctx, "bob", serverCSR(t, "pending.example.test"), "manual")
	if err != nil {
		t.Fatal(err)
	}
	all, err := c.View(ctx, store.Filter{})
	if err != nil || len(all) != 4 {
		t.Fatalf("View(all) = %d, %v", len(all), err)
	}
	p, err := c.View(ctx, store.Filter{Status: store.StatusPending})
	if err != nil || len(p) != 1 || p[0].ID != pend.ID {
		t.Fatalf("View(pending) = %v, %v", p, err)
	}
	serial := issued[1].Certificate.Serial
	for _, form := range []string{serial, strings.ToLower(serial), "00" + serial, colons(serial)} {
		rs, err := c.View(ctx, store.Filter{Serial: form})
		if err != nil || len(rs) != 1 || rs[0].ID != issued[1].ID {
			t.Errorf("View(serial %q) = %v, %v", form, rs, err)
		}
	}
	bob, err := c.View(ctx, store.Filter{Requester: "bob"})
	if err != nil || len(bob) != 1 {
		t.Errorf("View(requester bob) = %d, %v", len(bob), err)
	}
	_, err = c.View(ctx, store.Filter{Serial: "not hex"})
	wantCode(t, err, apierr.InvalidArg)
}

// colons writes a canonical serial as colon-separated lower-case octets.
func colons(s string) string {
	var parts []string
	for i := 0; i < len(s); i += 2 {
		parts = append(parts, strings.ToLower(s[i:i+2]))
	}
	return strings.Join(parts, ":")
}

// TestConcurrentApprove: officers racing to approve one request issue
// exactly one certificate; the others get BadRequestStatus.
func TestConcurrentApprove(t *testing.T) {
	c := newCA(t, pendingProfiles())
	ctx := context.Background()
	r, err := c.Submit(ctx, "bob", serverCSR(t, "race.example.test"), "manual")
	if err != nil {
		t.Fatal(err)
	}
	const officers = 8
	errs := make(chan error, officers)
	var wg sync.WaitGroup
	for range officers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Approve(ctx, r.ID)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !isCode(err, apierr.BadRequestStatus):
			t.Errorf("losing Approve = %v, want BadRequestStatus", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d approvals succeeded, want 1", ok)
	}
	counts, err := c.Store().Counts(ctx)
	if err != nil || counts.Certificates != 1 {
		t.Errorf("certificates stored = %d, %v; want 1", counts.Certificates, err)
	}
}

// TestConcurrentSubmit issues from many goroutines and checks that every
// request got its own ID and serial and is stored.
func TestConcurrentSubmit(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	const n = 64
	csrs := make([][]byte, n)
	for i := range csrs {
		csrs[i] = serverCSR(t, fmt.Sprintf("c%d.example.test", i))
	}
	var (
		mu      sync.Mutex
		ids     = map[int64]bool{}
		serials = map[string]bool{}
		wg      sync.WaitGroup
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Submit(ctx, "alice", csrs[i], "")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids[r.ID], serials[r.Certificate.Serial] = true, true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) != n || len(serials) != n {
		t.Fatalf("%d IDs and %d serials for %d requests", len(ids), len(serials), n)
	}
	all, err := c.View(ctx, store.Filter{Status: store.StatusIssued})
	if err != nil || len(all) != n {
		t.Fatalf("View(issued) = %d, %v", len(all), err)
	}
}

// A database refusing writes for a full disk is ERROR_DISK_FULL on the
// API, with the store's explanation; other store failures stay
// E_UNEXPECTED.
func TestDiskFullIsItsOwnCondition(t *testing.T) {
	stalled := fmt.Errorf("enroll: %w: /data/log has 900 KiB free, below the reserve of 1 MiB", store.ErrStalled)
	err := internal("enroll", stalled)
	if apierr.Of(err) != apierr.DiskFull || !errors.Is(err, store.ErrStalled) || !strings.Contains(err.Error(), "below the reserve") {
		t.Errorf("stalled store: %v (%v)", err, apierr.Of(err))
	}
	if got := storeError("enroll", stalled); apierr.Of(got) != apierr.DiskFull {
		t.Errorf("storeError of a stalled store: %v", apierr.Of(got))
	}
	if got := internal("enroll", fmt.Errorf("x: %w", store.ErrFailed)); apierr.Of(got) != apierr.Unexpected || !strings.Contains(got.Error(), "restart the CA") {
		t.Errorf("failed store: %v (%v), want E_UNEXPECTED saying to restart", got, apierr.Of(got))
	}
	damaged := fmt.Errorf("%w: %w", store.ErrFailed, fmt.Errorf("file damaged: certsrv restore ...: %w", store.ErrIntegrity))
	if got := internal("enroll", damaged); strings.Contains(got.Error(), "restart the CA") {
		t.Errorf("damaged store: %v, want no restart advice (a restart does not repair it)", got)
	}
}

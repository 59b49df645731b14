package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

// issueN issues n tls-server certificates and returns their requests.
func issueN(t *testing.T, c *CA, n int) []*Request {
	t.Helper()
	out := make([]*Request, n)
	for i := range out {
		r, err := c.Submit(context.Background(), "alice", serverCSR(t, fmt.Sprintf("r%d.example.test", i)), "")
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

func TestRevokeReasonsAndSerialForms(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	rs := issueN(t, c, 6)
	cases := []struct {
		serial string
		reason string
		want   int
	}{
		{strings.ToLower(rs[0].Certificate.Serial), "keyCompromise", ca.ReasonKeyCompromise},
		{colons(rs[1].Certificate.Serial), "SUPERSEDED", ca.ReasonSuperseded},
		{"0000" + rs[2].Certificate.Serial, "5", ca.ReasonCessationOfOperation},
		{"0x" + rs[3].Certificate.Serial, "", ca.ReasonUnspecified},
		{"serial=" + rs[4].Certificate.Serial, "9", ca.ReasonPrivilegeWithdrawn},
		{" " + rs[5].Certificate.Serial + " ", "affiliationchanged", ca.ReasonAffiliationChanged},
	}
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i, tc := range cases {
		cert, err := c.Revoke(ctx, tc.serial, tc.reason, at)
		if err != nil {
			t.Fatalf("Revoke(%q, %q): %v", tc.serial, tc.reason, err)
		}
		if cert.Serial != rs[i].Certificate.Serial || !cert.Revoked || cert.RevocationReason != tc.want || !cert.RevokedAt.Equal(at) {
			t.Errorf("Revoke(%q, %q) = serial %s revoked %v reason %d at %v; want reason %d at %v",
				tc.serial, tc.reason, cert.Serial, cert.Revoked, cert.RevocationReason, cert.RevokedAt, tc.want, at)
		}
		r, err := c.Request(ctx, rs[i].ID)
		if err != nil || r.Status != store.StatusRevoked {
			t.Errorf("request %d status %v, %v; want revoked", rs[i].ID, r.Status, err)
		}
	}
	before := lastLSN(c)
	_, err := c.Revoke(ctx, rs[0].Certificate.Serial, "keyCompromise", time.Time{})
	wantCode(t, err, apierr.BadRequestStatus)
	if want := "certificate " + rs[0].Certificate.Serial + " is already revoked (reason code "; !errors.Is(err, store.ErrAlreadyRevoked) ||
		!strings.Contains(err.Error(), want) || strings.Count(err.Error(), rs[0].Certificate.Serial) != 1 {
		t.Errorf("second revoke = %v, want store.ErrAlreadyRevoked as cause, saying %q once", err, want)
	}

	fresh := issueN(t, c, 1)[0].Certificate.Serial
	before = lastLSN(c)
	for _, bad := range []struct{ serial, reason string }{
		{fresh, "7"}, {fresh, "removeFromCRL"}, {fresh, "8"}, {fresh, "whenever"}, {"xyz", "1"}, {"", "1"},
	} {
		_, err := c.Revoke(ctx, bad.serial, bad.reason, time.Time{})
		wantCode(t, err, apierr.InvalidArg)
	}
	_, err = c.Revoke(ctx, fresh, "1", time.Now().Add(time.Hour))
	wantCode(t, err, apierr.InvalidArg)
	_, err = c.Revoke(ctx, "0A1B2C3D4E5F", "1", time.Time{})
	wantCode(t, err, apierr.NotFound)
	if lastLSN(c) != before {
		t.Errorf("refused revocations wrote %d log records", lastLSN(c)-before)
	}
	cert, err := c.CertificateBySerial(ctx, fresh)
	if err != nil || cert.Revoked {
		t.Errorf("certificate %s revoked by a refused call: %v", fresh, err)
	}
}

func TestHoldAndUnrevoke(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	rs := issueN(t, c, 3)
	s0, s1, s2 := rs[0].Certificate.Serial, rs[1].Certificate.Serial, rs[2].Certificate.Serial

	if _, err := c.Revoke(ctx, s0, "certificateHold", time.Time{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Revoke(ctx, s0, "6", time.Time{})
	wantCode(t, err, apierr.BadRequestStatus)
	cert, err := c.Unrevoke(ctx, strings.ToLower(s0))
	if err != nil {
		t.Fatal(err)
	}
	if cert.Revoked {
		t.Errorf("after Unrevoke the certificate is still revoked (reason %d)", cert.RevocationReason)
	}
	before := lastLSN(c)
	_, err = c.Unrevoke(ctx, s0)
	wantCode(t, err, apierr.BadRequestStatus)
	if !errors.Is(err, store.ErrNotOnHold) || !strings.HasSuffix(err.Error(), " is not on hold") || strings.Count(err.Error(), "certificate") != 1 {
		t.Errorf("Unrevoke of a released certificate = %v, want store.ErrNotOnHold as cause, said once", err)
	}
	if _, err := c.Revoke(ctx, s1, "keyCompromise", time.Time{}); err != nil {
		t.Fatal(err)
	}
	before = lastLSN(c)
	_, err = c.Unrevoke(ctx, s1)
	wantCode(t, err, apierr.BadRequestStatus)
	_, err = c.Unrevoke(ctx, "0BADBEEF")
	wantCode(t, err, apierr.NotFound)
	_, err = c.Unrevoke(ctx, "zz")
	wantCode(t, err, apierr.InvalidArg)
	if lastLSN(c) != before {
		t.Errorf("refused Unrevoke wrote %d log records", lastLSN(c)-before)
	}

	// A hold can be made final.
	if _, err := c.Revoke(ctx, s2, "certificateHold", time.Time{}); err != nil {
		t.Fatal(err)
	}
	cert, err = c.Revoke(ctx, s2, "keyCompromise", time.Time{})
	if err != nil || cert.RevocationReason != ca.ReasonKeyCompromise {
		t.Fatalf("revoking a held certificate for key compromise: %v, reason %d", err, cert.RevocationReason)
	}
	_, err = c.Unrevoke(ctx, s2)
	wantCode(t, err, apierr.BadRequestStatus)
}

package service

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

// maxRevocationSkew is how far in the future a revocation time may lie
// (clock skew between an officer's machine and the CA).
const maxRevocationSkew = 5 * time.Minute

// Revoke revokes the certificate with serial (any form ca.ParseSerial
// reads: upper or lower case, colons, leading zeros, "0x", "serial=").
// reason is an RFC 5280 reason by name in any case ("keyCompromise") or by
// number ("1"); empty means unspecified; removeFromCRL (8) is refused. at
// is the revocation date; the zero time means now, and a time more than
// five minutes ahead is refused.
//
// Errors: InvalidArg for a malformed serial, reason or time; NotFound for
// a serial the CA does not hold; BadRequestStatus for a certificate already
// revoked (a certificate on hold may be revoked again with another reason).
// On any error nothing is written.
func (c *CA) Revoke(ctx context.Context, serial string, reason string, at time.Time) (*store.Certificate, error) {
	s, err := canonicalSerial(serial)
	if err != nil {
		return nil, err
	}
	code := ca.ReasonUnspecified
	if strings.TrimSpace(reason) != "" {
		if code, err = ca.ParseReason(reason); err != nil {
			return nil, apierr.New(apierr.InvalidArg, "%w", err)
		}
	}
	if err := ca.CheckRevocationReason(code); err != nil {
		return nil, apierr.New(apierr.InvalidArg, "%w", err)
	}
	now := c.now()
	if at.IsZero() {
		at = now
	}
	if at.After(now.Add(maxRevocationSkew)) {
		return nil, apierr.New(apierr.InvalidArg, "revocation time %s is in the future", at.UTC().Format(time.RFC3339))
	}
	c.revMu.RLock()
	cert, err := c.db.Revoke(ctx, s, code, at)
	c.revMu.RUnlock()
	if err != nil {
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, apierr.New(apierr.NotFound, "certificate %s does not exist", s)
		case errors.Is(err, store.ErrAlreadyRevoked):
			return nil, apierr.New(apierr.BadRequestStatus, "%w", err)
		}
		return nil, storeError("revoke "+s, err)
	}
	c.change(ctx, "certificate revoked", "serial", s, "reason", ca.ReasonName(code), "lsn", cert.RevokedLSN)
	return &cert, nil
}

// Unrevoke releases the certificate with serial from certificateHold. The
// next delta CRL lists it with reason removeFromCRL and the next full CRL
// no longer lists it. InvalidArg for a malformed serial; NotFound for an
// unknown one; BadRequestStatus for a certificate that is not on hold (not
// revoked, or revoked with another reason, which is final).
func (c *CA) Unrevoke(ctx context.Context, serial string) (*store.Certificate, error) {
	s, err := canonicalSerial(serial)
	if err != nil {
		return nil, err
	}
	c.revMu.RLock()
	cert, err := c.db.Unrevoke(ctx, s)
	c.revMu.RUnlock()
	if err != nil {
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, apierr.New(apierr.NotFound, "certificate %s does not exist", s)
		case errors.Is(err, store.ErrNotOnHold):
			return nil, apierr.New(apierr.BadRequestStatus, "%w", err)
		}
		return nil, storeError("unrevoke "+s, err)
	}
	c.change(ctx, "certificate released from hold", "serial", s, "lsn", cert.RevokedLSN)
	return &cert, nil
}

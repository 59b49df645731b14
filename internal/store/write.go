package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// validSerial reports whether s is canonical: non-empty upper-case
// hexadecimal with an even number of digits.
func validSerial(s string) error {
	if s == "" || len(s)%2 != 0 || len(s) > 128 {
		return invalid("serial %q: want an even number (2-128) of upper-case hexadecimal digits", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return invalid("serial %q: want upper-case hexadecimal digits", s)
		}
	}
	return nil
}

// validReason accepts the RFC 5280 CRLReason codes a revocation can carry:
// 0-6, 9 and 10 (7 is unused, removeFromCRL (8) is what Unrevoke records).
func validReason(r int) error {
	if r < 0 || r > 10 || r == 7 || r == reasonRemoveFromCRL {
		return invalid("revocation reason %d", r)
	}
	return nil
}

func validCert(c NewCertificate) error {
	if err := validSerial(c.Serial); err != nil {
		return err
	}
	if len(c.DER) == 0 {
		return invalid("certificate %s: empty DER", c.Serial)
	}
	return nil
}

func certOf(c NewCertificate) certFields {
	return certFields{Serial: c.Serial, DER: c.DER, Subject: c.Subject,
		NotBefore: normTime(c.NotBefore), NotAfter: normTime(c.NotAfter)}
}

func serialKey(s string) string  { return "c:" + s }
func requestKey(id int64) string { return "r:" + strconv.FormatInt(id, 10) }

// serialExists reports whether a certificate with serial is stored.
func (d *DB) serialExists(ctx context.Context, serial string) error {
	var one int
	err := d.rdb.QueryRowContext(ctx, `SELECT 1 FROM requests WHERE serial = ?`, serial).Scan(&one)
	switch {
	case err == nil:
		return fmt.Errorf("certificate %s: %w", serial, ErrDuplicateSerial)
	case errors.Is(err, sql.ErrNoRows):
		return nil
	}
	return fmt.Errorf("look up serial %s: %w", serial, err)
}

// requestPending returns nil if request id exists and is pending.
func (d *DB) requestPending(ctx context.Context, id int64) error {
	var status int64
	err := d.rdb.QueryRowContext(ctx, `SELECT status FROM requests WHERE id = ?`, id).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("request %d: %w", id, ErrNotFound)
	case err != nil:
		return fmt.Errorf("look up request %d: %w", id, err)
	case Status(status) != StatusPending:
		return fmt.Errorf("request %d is %s: %w", id, Status(status), ErrNotPending)
	}
	return nil
}

func (o *submitOp) request(lsn uint64) Request {
	return Request{ID: o.ID, Status: StatusPending, CSR: o.CSR, Subject: o.Subject, Profile: o.Profile,
		Requester: o.Requester, SANs: o.SANs, Submitted: o.Submitted, SubmittedLSN: lsn}
}

func (c *certFields) certificate(reqID int64, issued time.Time, lsn uint64) Certificate {
	return Certificate{Serial: c.Serial, RequestID: reqID, DER: c.DER, Subject: c.Subject,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Issued: issued, IssuedLSN: lsn}
}

func newSubmitOp(id int64, r NewRequest, now time.Time) submitOp {
	return submitOp{ID: id, CSR: r.CSR, Subject: r.Subject, Profile: r.Profile, Requester: r.Requester,
		SANs: slices.Clone(r.SANs), Submitted: now}
}

// SubmitRequest stores a new pending request and returns it with its ID.
// IDs increase in the order they are handed out (by commit, once the
// write is admitted); a call that fails after its record was refused by the
// log leaves a gap, one refused before (ErrStalled) does not.
func (d *DB) SubmitRequest(ctx context.Context, r NewRequest) (Request, error) {
	done, err := d.begin()
	if err != nil {
		return Request{}, err
	}
	defer done()
	o := newSubmitOp(0, r, normTime(time.Now())) // commit gives it its ID
	lsn, err := d.commit(ctx, &o)
	if err != nil {
		return Request{}, err
	}
	return o.request(lsn), nil
}

// IssueRequest issues pending request id with certificate c. It fails with
// ErrNotFound for an unknown request, ErrNotPending for one already
// resolved, ErrDuplicateSerial if c's serial is taken.
func (d *DB) IssueRequest(ctx context.Context, id int64, c NewCertificate) (Certificate, error) {
	done, err := d.begin()
	if err != nil {
		return Certificate{}, err
	}
	defer done()
	if err := validCert(c); err != nil {
		return Certificate{}, err
	}
	unlock, err := d.locks.lock(ctx, requestKey(id), serialKey(c.Serial))
	if err != nil {
		return Certificate{}, err
	}
	defer unlock()
	if err := d.requestPending(ctx, id); err != nil {
		return Certificate{}, err
	}
	if err := d.serialExists(ctx, c.Serial); err != nil {
		return Certificate{}, err
	}
	o := issueOp{RequestID: id, Cert: certOf(c), Issued: normTime(time.Now())}
	lsn, err := d.commit(ctx, &o)
	if err != nil {
		return Certificate{}, err
	}
	return o.Cert.certificate(id, o.Issued, lsn), nil
}

// Enroll stores a request and its certificate in one record (automatic
// issuance). It fails with ErrDuplicateSerial if c's serial is taken.
func (d *DB) Enroll(ctx context.Context, r NewRequest, c NewCertificate) (Request, Certificate, error) {
	done, err := d.begin()
	if err != nil {
		return Request{}, Certificate{}, err
	}
	defer done()
	if err := validCert(c); err != nil {
		return Request{}, Certificate{}, err
	}
	unlock, err := d.locks.lock(ctx, serialKey(c.Serial))
	if err != nil {
		return Request{}, Certificate{}, err
	}
	defer unlock()
	if err := d.serialExists(ctx, c.Serial); err != nil {
		return Request{}, Certificate{}, err
	}
	now := normTime(time.Now())
	o := enrollOp{Req: newSubmitOp(0, r, now), Cert: certOf(c), Issued: now} // commit gives it its ID
	lsn, err := d.commit(ctx, &o)
	if err != nil {
		return Request{}, Certificate{}, err
	}
	req := o.Req.request(lsn)
	cert := o.Cert.certificate(o.Req.ID, now, lsn)
	req.Status, req.Resolved, req.ResolvedLSN, req.Certificate = StatusIssued, now, lsn, &cert
	return req, cert, nil
}

// DenyRequest denies pending request id and returns the time it recorded
// and the record's LSN. It fails with ErrNotFound or
// ErrNotPending.
func (d *DB) DenyRequest(ctx context.Context, id int64, reason string) (at time.Time, lsn uint64, err error) {
	done, err := d.begin()
	if err != nil {
		return time.Time{}, 0, err
	}
	defer done()
	unlock, err := d.locks.lock(ctx, requestKey(id))
	if err != nil {
		return time.Time{}, 0, err
	}
	defer unlock()
	if err := d.requestPending(ctx, id); err != nil {
		return time.Time{}, 0, err
	}
	o := denyOp{RequestID: id, Reason: reason, At: normTime(time.Now())}
	if lsn, err = d.commit(ctx, &o); err != nil {
		return time.Time{}, 0, err
	}
	return o.At, lsn, nil
}

// Revoke revokes the certificate serial with an RFC 5280 reason code at
// time at (zero: now), and returns the certificate as revoked. It fails
// with ErrNotFound for an unknown serial and ErrAlreadyRevoked for a
// revoked one, except that a certificate on hold (reason 6) may be revoked
// again with another reason.
func (d *DB) Revoke(ctx context.Context, serial string, reason int, at time.Time) (Certificate, error) {
	if err := validReason(reason); err != nil {
		return Certificate{}, err
	}
	if at.IsZero() {
		at = time.Now()
	}
	o := revokeOp{Serial: serial, Reason: reason, At: normTime(at)}
	return d.changeRevocation(ctx, serial, &o, revocationChange{
		refuse: func(c Certificate) error {
			if c.Revoked && (c.RevocationReason != ReasonCertificateHold || reason == ReasonCertificateHold) {
				return fmt.Errorf("certificate %s is %w (reason code %d)", serial, ErrAlreadyRevoked, c.RevocationReason)
			}
			return nil
		},
		apply: func(c *Certificate, lsn uint64) {
			c.Revoked, c.RevocationReason, c.RevokedAt, c.RevokedLSN = true, reason, o.At, lsn
		},
	})
}

// Unrevoke releases the certificate serial from certificateHold and returns
// it as released. It fails with ErrNotFound for an unknown serial and
// ErrNotOnHold unless the certificate is revoked with reason
// certificateHold.
func (d *DB) Unrevoke(ctx context.Context, serial string) (Certificate, error) {
	return d.changeRevocation(ctx, serial, &unrevokeOp{Serial: serial, At: normTime(time.Now())}, revocationChange{
		refuse: func(c Certificate) error {
			if !c.Revoked || c.RevocationReason != ReasonCertificateHold {
				return fmt.Errorf("certificate %s is %w", serial, ErrNotOnHold)
			}
			return nil
		},
		apply: func(c *Certificate, lsn uint64) {
			c.Revoked, c.RevocationReason, c.RevokedAt, c.RevokedLSN = false, 0, time.Time{}, lsn
		},
	})
}

// revocationChange is what Revoke or Unrevoke does to a certificate:
// refuse says why the certificate as it is cannot take the change (nil:
// it can); apply makes it what the change's record, at lsn, made it.
type revocationChange struct {
	refuse func(Certificate) error
	apply  func(c *Certificate, lsn uint64)
}

// changeRevocation is Revoke and Unrevoke: under the serial's lock it reads
// the certificate, lets ch refuse it (then nothing is committed), commits
// o, and returns the certificate with ch applied. The answer is built, not
// read back: while the database is stalled a durable record may not be
// applied yet.
func (d *DB) changeRevocation(ctx context.Context, serial string, o op, ch revocationChange) (Certificate, error) {
	done, err := d.begin()
	if err != nil {
		return Certificate{}, err
	}
	defer done()
	if err := validSerial(serial); err != nil {
		return Certificate{}, err
	}
	unlock, err := d.locks.lock(ctx, serialKey(serial))
	if err != nil {
		return Certificate{}, err
	}
	defer unlock()
	cert, err := d.CertificateBySerial(ctx, serial)
	if err != nil {
		return Certificate{}, err
	}
	if err := ch.refuse(cert); err != nil {
		return Certificate{}, err
	}
	lsn, err := d.commit(ctx, o)
	if err != nil {
		return Certificate{}, err
	}
	ch.apply(&cert, lsn)
	return cert, nil
}

// RecordCRL records a published CRL and returns it with its LSN. Its number
// must exceed every recorded CRL's number, full or delta (ErrCRLNumber); a
// delta CRL's BaseNumber must be a smaller, non-zero number.
func (d *DB) RecordCRL(ctx context.Context, c CRL) (CRL, error) {
	done, err := d.begin()
	if err != nil {
		return CRL{}, err
	}
	defer done()
	switch {
	case c.Number == 0 || c.Number > math.MaxInt64:
		return CRL{}, invalid("CRL number %d", c.Number)
	case len(c.DER) == 0:
		return CRL{}, invalid("CRL %d: empty DER", c.Number)
	case c.Delta && (c.BaseNumber == 0 || c.BaseNumber >= c.Number):
		return CRL{}, invalid("delta CRL %d: base number %d", c.Number, c.BaseNumber)
	case !c.Delta && c.BaseNumber != 0:
		return CRL{}, invalid("full CRL %d with a base number", c.Number)
	}
	unlock, err := d.locks.lock(ctx, "crl")
	if err != nil {
		return CRL{}, err
	}
	defer unlock()
	var last int64
	if err := d.rdb.QueryRowContext(ctx, `SELECT coalesce(max(number), 0) FROM crls`).Scan(&last); err != nil {
		return CRL{}, fmt.Errorf("look up last CRL: %w", err)
	}
	if c.Number <= uint64(last) {
		return CRL{}, fmt.Errorf("CRL number %d, last %d: %w", c.Number, last, ErrCRLNumber)
	}
	c.ThisUpdate, c.NextUpdate = normTime(c.ThisUpdate), normTime(c.NextUpdate)
	c.LSN = 0
	o := crlOp{CRL: c}
	lsn, err := d.commit(ctx, &o)
	if err != nil {
		return CRL{}, err
	}
	c.LSN = lsn
	return c, nil
}

// GrantRoles adds roles to principal (creating it) and, if fingerprint is
// not empty, binds that certificate fingerprint to it. It fails with
// ErrPrincipalRevoked for a revoked principal and ErrInvalidArgument if the
// fingerprint is bound to another principal.
func (d *DB) GrantRoles(ctx context.Context, principal string, roles []string, fingerprint string) error {
	done, err := d.begin()
	if err != nil {
		return err
	}
	defer done()
	if principal == "" {
		return invalid("empty principal name")
	}
	roles = slices.Clone(roles)
	slices.Sort(roles)
	roles = slices.Compact(roles)
	if slices.Contains(roles, "") {
		return invalid("empty role name")
	}
	keys := []string{"p:" + principal}
	if fingerprint != "" {
		keys = append(keys, "f:"+fingerprint)
	}
	unlock, err := d.locks.lock(ctx, keys...)
	if err != nil {
		return err
	}
	defer unlock()
	var revoked int64
	err = d.rdb.QueryRowContext(ctx, `SELECT revoked FROM principals WHERE name = ?`, principal).Scan(&revoked)
	switch {
	case err == nil && revoked != 0:
		return fmt.Errorf("principal %q: %w", principal, ErrPrincipalRevoked)
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("look up principal %q: %w", principal, err)
	}
	if fingerprint != "" {
		var owner string
		err := d.rdb.QueryRowContext(ctx, `SELECT name FROM principal_certs WHERE fingerprint = ?`, fingerprint).Scan(&owner)
		switch {
		case err == nil && owner != principal:
			return invalid("fingerprint %s belongs to principal %q", fingerprint, owner)
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("look up fingerprint: %w", err)
		}
	}
	_, err = d.commit(ctx, &grantOp{Principal: principal, Roles: roles, Fingerprint: fingerprint})
	return err
}

// RevokePrincipal revokes principal: its roles and fingerprints stay on
// record but Principal reports it revoked. It fails with ErrNotFound or
// ErrAlreadyRevoked.
func (d *DB) RevokePrincipal(ctx context.Context, principal string) error {
	done, err := d.begin()
	if err != nil {
		return err
	}
	defer done()
	unlock, err := d.locks.lock(ctx, "p:"+principal)
	if err != nil {
		return err
	}
	defer unlock()
	var revoked int64
	err = d.rdb.QueryRowContext(ctx, `SELECT revoked FROM principals WHERE name = ?`, principal).Scan(&revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("principal %q: %w", principal, ErrNotFound)
	case err != nil:
		return fmt.Errorf("look up principal %q: %w", principal, err)
	case revoked != 0:
		return fmt.Errorf("principal %q is %w", principal, ErrAlreadyRevoked)
	}
	_, err = d.commit(ctx, &revokePrincipalOp{Principal: principal, At: normTime(time.Now())})
	return err
}

// RecordBackup records a completed backup in the log and the database,
// then writes a checkpoint so the checkpoint file names it as the last full
// or last incremental backup. A full backup clears the need-full-backup
// flag. A zero Time means now.
func (d *DB) RecordBackup(ctx context.Context, b BackupRecord) error {
	done, err := d.begin()
	if err != nil {
		return err
	}
	defer done()
	switch {
	case b.Type != BackupFull && b.Type != BackupLogsOnly:
		return invalid("backup type %d", b.Type)
	case b.FirstGen > b.LastGen || b.FirstLSN > b.LastLSN || b.LastLSN > math.MaxInt64:
		return invalid("backup range: generations %d-%d, LSNs %d-%d", b.FirstGen, b.LastGen, b.FirstLSN, b.LastLSN)
	}
	if b.Time.IsZero() {
		b.Time = time.Now()
	}
	b.Time = normTime(b.Time)
	unlock, err := d.locks.lock(ctx, "backup")
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := d.commit(ctx, &backupOp{B: b}); err != nil {
		return err
	}
	if err := d.checkpoint(ctx); err != nil {
		return fmt.Errorf("record backup: %w", err)
	}
	return nil
}

// SetNeedFullBackup sets or clears the flag that makes the next backup
// FULL (set after a restore). Setting it to its current value writes
// nothing.
func (d *DB) SetNeedFullBackup(ctx context.Context, on bool) error {
	done, err := d.begin()
	if err != nil {
		return err
	}
	defer done()
	unlock, err := d.locks.lock(ctx, "backup")
	if err != nil {
		return err
	}
	defer unlock()
	if d.NeedFullBackup() == on {
		return nil
	}
	_, err = d.commit(ctx, &needFullOp{On: on})
	return err
}

// ImportCertificate stores a certificate issued outside the normal flow (a
// certificate re-added after logs were lost) under a new request ID, and
// returns that request. It fails with ErrDuplicateSerial if the serial is
// taken.
func (d *DB) ImportCertificate(ctx context.Context, c NewCertificate) (Request, error) {
	done, err := d.begin()
	if err != nil {
		return Request{}, err
	}
	defer done()
	if err := validCert(c); err != nil {
		return Request{}, err
	}
	unlock, err := d.locks.lock(ctx, serialKey(c.Serial))
	if err != nil {
		return Request{}, err
	}
	defer unlock()
	if err := d.serialExists(ctx, c.Serial); err != nil {
		return Request{}, err
	}
	now := normTime(time.Now())
	o := importOp{Cert: certOf(c), At: now} // commit gives it its ID
	lsn, err := d.commit(ctx, &o)
	if err != nil {
		return Request{}, err
	}
	cert := o.Cert.certificate(o.RequestID, now, lsn)
	return Request{ID: o.RequestID, Status: StatusIssued, Subject: c.Subject, SANs: nil, Submitted: now, Resolved: now,
		Imported: true, SubmittedLSN: lsn, ResolvedLSN: lsn, Certificate: &cert}, nil
}

// appendNoop writes a record that changes nothing but applied_lsn; tests
// and benchmarks use it.
func (d *DB) appendNoop(ctx context.Context, data []byte) (uint64, error) {
	done, err := d.begin()
	if err != nil {
		return 0, err
	}
	defer done()
	return d.commit(ctx, &noopOp{Data: data})
}

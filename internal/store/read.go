package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// requestColumns are the columns scanRequest reads, in order.
const requestColumns = `id, status, csr, subject, profile, requester, sans, submitted, resolved,
	deny_reason, imported, submitted_lsn, resolved_lsn,
	serial, der, cert_subject, not_before, not_after, revoked, revocation_reason, revoked_at, revoked_lsn`

type rowScanner interface{ Scan(dest ...any) error }

func scanRequest(s rowScanner) (Request, error) {
	var (
		r                                           Request
		status, submitted, imported, subLSN, resLSN int64
		resolved                                    sql.NullInt64
		sans                                        string
		serial, csubject                            sql.NullString
		der                                         []byte
		nb, na, revokedAt                           sql.NullInt64
		rv, rr, rLSN                                int64
	)
	err := s.Scan(&r.ID, &status, &r.CSR, &r.Subject, &r.Profile, &r.Requester, &sans, &submitted, &resolved,
		&r.DenyReason, &imported, &subLSN, &resLSN,
		&serial, &der, &csubject, &nb, &na, &rv, &rr, &revokedAt, &rLSN)
	if err != nil {
		return Request{}, err
	}
	r.Status = Status(status)
	r.Submitted = fromMicros(submitted)
	if resolved.Valid {
		r.Resolved = fromMicros(resolved.Int64)
	}
	r.Imported = imported != 0
	r.SubmittedLSN, r.ResolvedLSN = uint64(subLSN), uint64(resLSN)
	if err := json.Unmarshal([]byte(sans), &r.SANs); err != nil {
		return Request{}, fmt.Errorf("request %d: SAN list: %w", r.ID, err)
	}
	if len(r.SANs) == 0 {
		r.SANs = nil
	}
	if serial.Valid {
		c := &Certificate{
			Serial: serial.String, RequestID: r.ID, DER: der, Subject: csubject.String,
			NotBefore: fromMicros(nb.Int64), NotAfter: fromMicros(na.Int64), Issued: r.Resolved,
			IssuedLSN: r.ResolvedLSN, Revoked: rv != 0, RevocationReason: int(rr), RevokedLSN: uint64(rLSN),
		}
		if revokedAt.Valid {
			c.RevokedAt = fromMicros(revokedAt.Int64)
		}
		r.Certificate = c
		if c.Revoked && r.Status == StatusIssued {
			r.Status = StatusRevoked
		}
	}
	return r, nil
}

// Request returns request id with its certificate, or ErrNotFound.
func (d *DB) Request(ctx context.Context, id int64) (Request, error) {
	rs, err := d.Requests(ctx, Filter{RequestID: id, Limit: 1})
	if err != nil {
		return Request{}, err
	}
	if len(rs) == 0 {
		return Request{}, fmt.Errorf("request %d: %w", id, ErrNotFound)
	}
	return rs[0], nil
}

// Requests returns the requests f selects, ordered by ID.
func (d *DB) Requests(ctx context.Context, f Filter) ([]Request, error) {
	done, err := d.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	var (
		where []string
		args  []any
	)
	switch f.Status {
	case 0:
	case StatusPending:
		where = append(where, "status = 1") // a literal, so the partial index applies
	case StatusDenied:
		where = append(where, "status = 3")
	case StatusIssued:
		where = append(where, "status = 2 AND revoked = 0")
	case StatusRevoked:
		where = append(where, "status = 2 AND revoked = 1")
	default:
		return nil, invalid("filter status %d", f.Status)
	}
	if f.RequestID != 0 {
		where, args = append(where, "id = ?"), append(args, f.RequestID)
	}
	if f.Serial != "" {
		where, args = append(where, "serial = ?"), append(args, f.Serial)
	}
	if f.Requester != "" {
		where, args = append(where, "requester = ?"), append(args, f.Requester)
	}
	if f.SubjectContains != "" {
		where = append(where, "(instr(subject, ?) > 0 OR instr(cert_subject, ?) > 0)")
		args = append(args, f.SubjectContains, f.SubjectContains)
	}
	if !f.ExpiresBefore.IsZero() {
		where, args = append(where, "not_after < ?"), append(args, timeMicros(f.ExpiresBefore))
	}
	if !f.ExpiresAfter.IsZero() {
		where, args = append(where, "not_after > ?"), append(args, timeMicros(f.ExpiresAfter))
	}
	if f.AfterID != 0 {
		where, args = append(where, "id > ?"), append(args, f.AfterID)
	}
	q := "SELECT " + requestColumns + " FROM requests"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return queryRequests(ctx, d.rdb, q, args...)
}

type rowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryRequests(ctx context.Context, q rowsQuerier, query string, args ...any) ([]Request, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query requests: %w", err)
	}
	defer rows.Close()
	var out []Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("query requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query requests: %w", err)
	}
	return out, nil
}

// CertificateBySerial returns the certificate serial, or ErrNotFound.
func (d *DB) CertificateBySerial(ctx context.Context, serial string) (Certificate, error) {
	rs, err := d.Requests(ctx, Filter{Serial: serial, Limit: 1})
	if err != nil {
		return Certificate{}, err
	}
	if len(rs) == 0 || rs[0].Certificate == nil {
		return Certificate{}, fmt.Errorf("certificate %s: %w", serial, ErrNotFound)
	}
	return *rs[0].Certificate, nil
}

// Revocation is one entry of a CRL: a revoked certificate, or (Revoked
// false, only from RevocationChangesSince) a certificate released from hold.
type Revocation struct {
	Serial    string
	Revoked   bool
	Reason    int       // RFC 5280 reason; meaningful when Revoked
	RevokedAt time.Time // zero when not Revoked
	NotAfter  time.Time
	LSN       uint64 // LSN of the certificate's latest revoke or unrevoke record
}

func (d *DB) queryRevocations(ctx context.Context, query string, args ...any) ([]Revocation, error) {
	done, err := d.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	rows, err := d.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query revocations: %w", err)
	}
	defer rows.Close()
	var out []Revocation
	for rows.Next() {
		var (
			r                        Revocation
			revoked, reason, na, lsn int64
			at                       sql.NullInt64
		)
		if err := rows.Scan(&r.Serial, &revoked, &reason, &at, &na, &lsn); err != nil {
			return nil, fmt.Errorf("query revocations: %w", err)
		}
		r.Revoked, r.Reason, r.NotAfter, r.LSN = revoked != 0, int(reason), fromMicros(na), uint64(lsn)
		if at.Valid {
			r.RevokedAt = fromMicros(at.Int64)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query revocations: %w", err)
	}
	return out, nil
}

// RevokedCertificates returns every revoked certificate (on hold included)
// that has not expired at time at, ordered by serial; a zero at returns
// them all.
func (d *DB) RevokedCertificates(ctx context.Context, at time.Time) ([]Revocation, error) {
	q := `SELECT serial, revoked, revocation_reason, revoked_at, not_after, revoked_lsn FROM requests WHERE revoked = 1`
	var args []any
	if !at.IsZero() {
		q += ` AND not_after >= ?`
		args = append(args, timeMicros(at))
	}
	return d.queryRevocations(ctx, q+` ORDER BY serial`, args...)
}

// RevocationChangesSince returns the current state of every certificate
// revoked or released from hold by a record with LSN > afterLSN, ordered by
// serial: what a delta CRL based on a CRL recorded at afterLSN lists.
// Entries with Revoked false are releases from hold (removeFromCRL).
func (d *DB) RevocationChangesSince(ctx context.Context, afterLSN uint64) ([]Revocation, error) {
	return d.queryRevocations(ctx, `SELECT serial, revoked, revocation_reason, revoked_at, not_after, revoked_lsn
		FROM requests WHERE serial IN (SELECT serial FROM revocation_events WHERE lsn > ?) ORDER BY serial`, int64(afterLSN))
}

func scanCRL(s rowScanner) (CRL, error) {
	var (
		c                        CRL
		num, delta, base, tu, nu int64
		lsn                      int64
	)
	if err := s.Scan(&num, &delta, &base, &tu, &nu, &c.DER, &lsn); err != nil {
		return CRL{}, err
	}
	c.Number, c.Delta, c.BaseNumber, c.LSN = uint64(num), delta != 0, uint64(base), uint64(lsn)
	c.ThisUpdate, c.NextUpdate = fromMicros(tu), fromMicros(nu)
	return c, nil
}

// LastCRL returns the recorded CRL with the highest number of the kind
// asked for (delta or full), or ErrNotFound.
func (d *DB) LastCRL(ctx context.Context, delta bool) (CRL, error) {
	done, err := d.begin()
	if err != nil {
		return CRL{}, err
	}
	defer done()
	c, err := scanCRL(d.rdb.QueryRowContext(ctx, `SELECT number, delta, base_number, this_update, next_update, der, lsn
		FROM crls WHERE delta = ? ORDER BY number DESC LIMIT 1`, boolInt(delta)))
	if errors.Is(err, sql.ErrNoRows) {
		kind := "full"
		if delta {
			kind = "delta"
		}
		return CRL{}, fmt.Errorf("%s CRL: %w", kind, ErrNotFound)
	}
	if err != nil {
		return CRL{}, fmt.Errorf("look up last CRL: %w", err)
	}
	return c, nil
}

// Principal returns the principal name, or ErrNotFound.
func (d *DB) Principal(ctx context.Context, name string) (Principal, error) {
	done, err := d.begin()
	if err != nil {
		return Principal{}, err
	}
	defer done()
	return principal(ctx, d.rdb, name)
}

// PrincipalsWithRole returns the names of the principals that hold role
// and were not revoked, sorted.
func (d *DB) PrincipalsWithRole(ctx context.Context, role string) ([]string, error) {
	done, err := d.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	names, err := strings1(ctx, d.rdb, `SELECT r.name FROM principal_roles r JOIN principals p ON p.name = r.name
		WHERE r.role = ? AND p.revoked = 0 ORDER BY r.name`, role)
	if err != nil {
		return nil, fmt.Errorf("list principals with role %s: %w", role, err)
	}
	return names, nil
}

// PrincipalByFingerprint returns the principal a certificate fingerprint is
// bound to, or ErrNotFound.
func (d *DB) PrincipalByFingerprint(ctx context.Context, fingerprint string) (Principal, error) {
	done, err := d.begin()
	if err != nil {
		return Principal{}, err
	}
	defer done()
	var name string
	err = d.rdb.QueryRowContext(ctx, `SELECT name FROM principal_certs WHERE fingerprint = ?`, fingerprint).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, fmt.Errorf("fingerprint %s: %w", fingerprint, ErrNotFound)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("look up fingerprint: %w", err)
	}
	return principal(ctx, d.rdb, name)
}

type principalQuerier interface {
	querier
	rowsQuerier
}

func principal(ctx context.Context, q principalQuerier, name string) (Principal, error) {
	p := Principal{Name: name}
	var revoked int64
	err := q.QueryRowContext(ctx, `SELECT revoked FROM principals WHERE name = ?`, name).Scan(&revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, fmt.Errorf("principal %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("look up principal %q: %w", name, err)
	}
	p.Revoked = revoked != 0
	if p.Roles, err = strings1(ctx, q, `SELECT role FROM principal_roles WHERE name = ? ORDER BY role`, name); err != nil {
		return Principal{}, err
	}
	if p.Fingerprints, err = strings1(ctx, q, `SELECT fingerprint FROM principal_certs WHERE name = ? ORDER BY fingerprint`, name); err != nil {
		return Principal{}, err
	}
	return p, nil
}

// strings1 runs a query returning one text column.
func strings1(ctx context.Context, q rowsQuerier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Meta returns the database's signatures, applied LSN and
// need-full-backup flag.
func (d *DB) Meta() Meta {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	return Meta{Signatures: d.sigs, AppliedLSN: d.applied.Load(), NeedFullBackup: d.needFull}
}

// NeedFullBackup reports whether the next backup must be FULL.
func (d *DB) NeedFullBackup() bool {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	return d.needFull
}

// LastBackups returns the last recorded full and logs-only backups; nil
// when there is none.
func (d *DB) LastBackups() (full, incremental *BackupRecord) {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	return copyBackup(d.lastFull), copyBackup(d.lastIncr)
}

// Counts returns row counts.
func (d *DB) Counts(ctx context.Context) (Counts, error) {
	done, err := d.begin()
	if err != nil {
		return Counts{}, err
	}
	defer done()
	var c Counts
	err = d.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM requests),
		(SELECT count(*) FROM requests WHERE status = 1),
		(SELECT count(*) FROM requests WHERE serial IS NOT NULL AND revoked = 0),
		(SELECT count(*) FROM requests WHERE status = 3),
		(SELECT count(*) FROM requests WHERE revoked = 1),
		(SELECT count(serial) FROM requests),
		(SELECT count(*) FROM crls),
		(SELECT count(*) FROM principals),
		(SELECT count(*) FROM backups)`).
		Scan(&c.Requests, &c.Pending, &c.Issued, &c.Denied, &c.Revoked, &c.Certificates, &c.CRLs, &c.Principals, &c.Backups)
	if err != nil {
		return Counts{}, fmt.Errorf("count rows: %w", err)
	}
	return c, nil
}

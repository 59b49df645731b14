package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/certsrv/certsrv/internal/wal"
)

// item is one record on its way into the database: its LSN, type and
// decoded payload, and values derived from the payload that newItem
// computes before the item reaches the applying goroutine, which is the
// bottleneck of a replay.
type item struct {
	lsn  uint64
	typ  wal.RecordType
	op   op
	sans string // stored form of the request's SANs (submit, enroll); "" if not computed
}

// newItem returns the item for record lsn of type t decoded as o, with its
// derived values computed.
func newItem(lsn uint64, t wal.RecordType, o op) item {
	it := item{lsn: lsn, typ: t, op: o}
	switch o := o.(type) {
	case *submitOp:
		it.sans = sansJSON(o.SANs)
	case *enrollOp:
		it.sans = sansJSON(o.Req.SANs)
	}
	return it
}

// sansOf returns the stored form of sans, computed by newItem when it was.
func (it *item) sansOf(sans []string) string {
	if it.sans != "" {
		return it.sans
	}
	return sansJSON(sans)
}

// applyConn is a dedicated writer connection with its prepared statements.
// Apply functions are deterministic: the same record applied to the same
// state gives the same rows, so replay rebuilds exactly what the live path
// wrote. A record whose preconditions do not hold (the live path checks them
// before appending) is an *ApplyError, never a silent no-op.
//
// The apply path talks to the SQLite driver directly (inside
// sql.Conn.Raw): it is the engine's hot loop, run for every record live and
// at replay, and database/sql's per-statement bookkeeping is a measurable
// part of its cost.
type applyConn struct {
	conn *sql.Conn
	st   map[string]driver.Stmt // prepared on conn's driver connection; used only inside Raw
	dc   driver.Conn            // valid only inside Raw
	args []driver.NamedValue    // reused argument buffer
}

// applyStatements are prepared once per writer connection.
var applyStatements = map[string]string{
	"insReq": `INSERT INTO requests (id, status, csr, subject, profile, requester, sans, submitted, resolved,
		imported, submitted_lsn, resolved_lsn, serial, der, cert_subject, not_before, not_after)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	"issueReq": `UPDATE requests SET status = 2, resolved = ?, resolved_lsn = ?, serial = ?, der = ?, cert_subject = ?,
		not_before = ?, not_after = ? WHERE id = ? AND status = 1`,
	"denyReq": `UPDATE requests SET status = 3, resolved = ?, resolved_lsn = ?, deny_reason = ? WHERE id = ? AND status = 1`,
	"revoke": `UPDATE requests SET revoked = 1, revocation_reason = ?, revoked_at = ?, revoked_lsn = ?
		WHERE serial = ? AND (revoked = 0 OR (revocation_reason = 6 AND ? <> 6))`,
	"unrevoke": `UPDATE requests SET revoked = 0, revocation_reason = 0, revoked_at = NULL, revoked_lsn = ?
		WHERE serial = ? AND revoked = 1 AND revocation_reason = 6`,
	"insEvent": `INSERT INTO revocation_events (lsn, serial, revoked, reason, at) VALUES (?, ?, ?, ?, ?)`,
	"maxCRL":   `SELECT coalesce(max(number), 0) FROM crls`,
	"insCRL": `INSERT INTO crls (number, delta, base_number, this_update, next_update, der, lsn)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
	"insPrincipal":    `INSERT INTO principals (name, created_lsn) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
	"principalState":  `SELECT revoked FROM principals WHERE name = ?`,
	"insRole":         `INSERT INTO principal_roles (name, role) VALUES (?, ?) ON CONFLICT DO NOTHING`,
	"insFingerprint":  `INSERT INTO principal_certs (fingerprint, name) VALUES (?, ?) ON CONFLICT DO NOTHING`,
	"fingerprintName": `SELECT name FROM principal_certs WHERE fingerprint = ?`,
	"revokePrincipal": `UPDATE principals SET revoked = 1, revoked_lsn = ? WHERE name = ? AND revoked = 0`,
	"insBackup": `INSERT INTO backups (lsn, type, first_gen, last_gen, first_lsn, last_lsn, time)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
	"setNeedFull": `UPDATE meta SET need_full_backup = ? WHERE id = 1`,
	"setApplied":  `UPDATE meta SET applied_lsn = ? WHERE id = 1`,
}

// newApplyConn takes a dedicated connection from a writer pool and prepares
// the apply statements on it.
func newApplyConn(ctx context.Context, pool *sql.DB) (*applyConn, error) {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open writer connection: %w", err)
	}
	a := &applyConn{conn: conn, st: make(map[string]driver.Stmt, len(applyStatements))}
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return errors.New("SQLite driver connection cannot prepare statements")
		}
		for name, q := range applyStatements {
			s, err := pc.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("prepare %s: %w", name, err)
			}
			a.st[name] = s
		}
		return nil
	})
	if err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

func (a *applyConn) close() error {
	a.conn.Raw(func(any) error {
		for _, s := range a.st {
			s.Close()
		}
		return nil
	})
	return a.conn.Close()
}

// applyBatch applies items, in order, in one transaction that also sets
// applied_lsn to the last item's LSN. Items must be consecutive LSNs after
// the database's applied_lsn. On error the transaction is rolled back and
// nothing of the batch is kept.
func (a *applyConn) applyBatch(ctx context.Context, items []item) error {
	if len(items) == 0 {
		return nil
	}
	return a.conn.Raw(func(dc any) error {
		a.dc = dc.(driver.Conn)
		defer func() { a.dc = nil }()
		if err := a.execSQL(ctx, "BEGIN IMMEDIATE"); err != nil {
			return fmt.Errorf("begin apply transaction: %w", err)
		}
		err := func() error {
			for i := range items {
				if err := a.apply(ctx, &items[i]); err != nil {
					return &ApplyError{LSN: items[i].lsn, Type: items[i].typ, Err: err}
				}
			}
			if _, err := a.exec(ctx, "setApplied", int64(items[len(items)-1].lsn)); err != nil {
				return fmt.Errorf("set applied_lsn: %w", err)
			}
			if err := a.execSQL(ctx, "COMMIT"); err != nil {
				return fmt.Errorf("commit apply transaction: %w", err)
			}
			return nil
		}()
		if err != nil {
			a.execSQL(context.Background(), "ROLLBACK")
		}
		return err
	})
}

// execSQL runs a statement without arguments on the driver connection.
func (a *applyConn) execSQL(ctx context.Context, q string) error {
	ec, ok := a.dc.(driver.ExecerContext)
	if !ok {
		return errors.New("SQLite driver connection cannot execute statements")
	}
	_, err := ec.ExecContext(ctx, q, nil)
	return err
}

// bind fills the reused argument buffer. Go ints become int64, the
// integer type the driver binds.
func (a *applyConn) bind(args []driver.Value) []driver.NamedValue {
	a.args = a.args[:0]
	for i, v := range args {
		if x, ok := v.(int); ok {
			v = int64(x)
		}
		a.args = append(a.args, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	return a.args
}

// exec runs a prepared statement and returns the number of rows it changed.
func (a *applyConn) exec(ctx context.Context, name string, args ...driver.Value) (int64, error) {
	res, err := a.st[name].(driver.StmtExecContext).ExecContext(ctx, a.bind(args))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// queryOne runs a prepared query and returns the first column of its first
// row; ok is false when there is no row.
func (a *applyConn) queryOne(ctx context.Context, name string, args ...driver.Value) (v driver.Value, ok bool, err error) {
	rows, err := a.st[name].(driver.StmtQueryContext).QueryContext(ctx, a.bind(args))
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(dest); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return dest[0], true, nil
}

// execOne runs a prepared statement that must change exactly one row;
// otherwise it returns none.
func (a *applyConn) execOne(ctx context.Context, none error, name string, args ...driver.Value) error {
	n, err := a.exec(ctx, name, args...)
	if err != nil {
		return err
	}
	if n != 1 {
		return none
	}
	return nil
}

// sansJSON is the stored form of a SAN list: a JSON array, "[]" when empty.
func sansJSON(sans []string) string {
	if len(sans) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(sans) // a []string always marshals
	return string(b)
}

// nullable returns nil (SQL NULL) for a nil slice.
func nullable(b []byte) driver.Value {
	if b == nil {
		return nil
	}
	return b
}

// apply applies one record inside the open transaction.
func (a *applyConn) apply(ctx context.Context, it *item) error {
	lsn := int64(it.lsn)
	switch o := it.op.(type) {
	case *submitOp:
		_, err := a.exec(ctx, "insReq", o.ID, int64(StatusPending), nullable(o.CSR), o.Subject, o.Profile, o.Requester,
			it.sansOf(o.SANs), timeMicros(o.Submitted), nil, 0, lsn, 0, nil, nil, nil, nil, nil)
		if err != nil {
			return fmt.Errorf("insert request %d: %w", o.ID, err)
		}
	case *issueOp:
		c := &o.Cert
		n, err := a.exec(ctx, "issueReq", timeMicros(o.Issued), lsn, c.Serial, c.DER, c.Subject,
			timeMicros(c.NotBefore), timeMicros(c.NotAfter), o.RequestID)
		if err != nil {
			return fmt.Errorf("issue request %d as %s: %w", o.RequestID, c.Serial, err)
		}
		if n != 1 {
			return fmt.Errorf("request %d: %w", o.RequestID, ErrNotPending)
		}
	case *enrollOp:
		c := &o.Cert
		_, err := a.exec(ctx, "insReq", o.Req.ID, int64(StatusIssued), nullable(o.Req.CSR), o.Req.Subject, o.Req.Profile,
			o.Req.Requester, it.sansOf(o.Req.SANs), timeMicros(o.Req.Submitted), timeMicros(o.Issued), 0, lsn, lsn,
			c.Serial, c.DER, c.Subject, timeMicros(c.NotBefore), timeMicros(c.NotAfter))
		if err != nil {
			return fmt.Errorf("insert request %d with certificate %s: %w", o.Req.ID, c.Serial, err)
		}
	case *denyOp:
		return a.execOne(ctx, fmt.Errorf("request %d: %w", o.RequestID, ErrNotPending),
			"denyReq", timeMicros(o.At), lsn, o.Reason, o.RequestID)
	case *revokeOp:
		if err := a.execOne(ctx, fmt.Errorf("certificate %s is %w", o.Serial, ErrAlreadyRevoked),
			"revoke", o.Reason, timeMicros(o.At), lsn, o.Serial, o.Reason); err != nil {
			return err
		}
		_, err := a.exec(ctx, "insEvent", lsn, o.Serial, 1, o.Reason, timeMicros(o.At))
		return err
	case *unrevokeOp:
		if err := a.execOne(ctx, fmt.Errorf("certificate %s is %w", o.Serial, ErrNotOnHold),
			"unrevoke", lsn, o.Serial); err != nil {
			return err
		}
		_, err := a.exec(ctx, "insEvent", lsn, o.Serial, 0, reasonRemoveFromCRL, timeMicros(o.At))
		return err
	case *crlOp:
		v, _, err := a.queryOne(ctx, "maxCRL")
		if err != nil {
			return err
		}
		last, _ := v.(int64)
		if int64(o.CRL.Number) <= last {
			return fmt.Errorf("CRL number %d, last %d: %w", o.CRL.Number, last, ErrCRLNumber)
		}
		_, err = a.exec(ctx, "insCRL", int64(o.CRL.Number), boolInt(o.CRL.Delta), int64(o.CRL.BaseNumber),
			timeMicros(o.CRL.ThisUpdate), timeMicros(o.CRL.NextUpdate), o.CRL.DER, lsn)
		return err
	case *grantOp:
		if _, err := a.exec(ctx, "insPrincipal", o.Principal, lsn); err != nil {
			return err
		}
		v, _, err := a.queryOne(ctx, "principalState", o.Principal)
		if err != nil {
			return err
		}
		if revoked, _ := v.(int64); revoked != 0 {
			return fmt.Errorf("principal %q: %w", o.Principal, ErrPrincipalRevoked)
		}
		for _, r := range o.Roles {
			if _, err := a.exec(ctx, "insRole", o.Principal, r); err != nil {
				return err
			}
		}
		if o.Fingerprint != "" {
			if _, err := a.exec(ctx, "insFingerprint", o.Fingerprint, o.Principal); err != nil {
				return err
			}
			v, _, err := a.queryOne(ctx, "fingerprintName", o.Fingerprint)
			if err != nil {
				return err
			}
			if owner := asString(v); owner != o.Principal {
				return invalid("fingerprint %s belongs to principal %q", o.Fingerprint, owner)
			}
		}
	case *revokePrincipalOp:
		return a.execOne(ctx, fmt.Errorf("principal %q is %w", o.Principal, ErrAlreadyRevoked),
			"revokePrincipal", lsn, o.Principal)
	case *backupOp:
		if _, err := a.exec(ctx, "insBackup", lsn, int64(o.B.Type), int64(o.B.FirstGen), int64(o.B.LastGen),
			int64(o.B.FirstLSN), int64(o.B.LastLSN), timeMicros(o.B.Time)); err != nil {
			return err
		}
		if o.B.Type == BackupFull {
			_, err := a.exec(ctx, "setNeedFull", 0)
			return err
		}
	case *importOp:
		at, c := timeMicros(o.At), &o.Cert
		_, err := a.exec(ctx, "insReq", o.RequestID, int64(StatusIssued), nil, c.Subject, "", "",
			"[]", at, at, 1, lsn, lsn, c.Serial, c.DER, c.Subject, timeMicros(c.NotBefore), timeMicros(c.NotAfter))
		if err != nil {
			return fmt.Errorf("insert request %d with certificate %s: %w", o.RequestID, c.Serial, err)
		}
	case *needFullOp:
		_, err := a.exec(ctx, "setNeedFull", boolInt(o.On))
		return err
	case *noopOp:
	default:
		return errors.New("no apply function")
	}
	return nil
}

// reasonRemoveFromCRL is the RFC 5280 reason code recorded with a release
// from hold.
const reasonRemoveFromCRL = 8

// asString returns a TEXT column value as a string.
func asString(v driver.Value) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

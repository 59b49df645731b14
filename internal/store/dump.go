package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Dump is a logical dump of every table, in a fixed order. Every value in
// it comes from log records, so two databases built from the same records
// dump identically (reflect.DeepEqual); tests and restore verification
// compare dumps.
type Dump struct {
	Meta             Meta
	Requests         []Request // with certificates, by ID
	RevocationEvents []RevocationEvent
	CRLs             []CRL // by number
	Principals       []Principal
	Backups          []BackupEntry
}

// RevocationEvent is one revoke or release-from-hold record as stored.
type RevocationEvent struct {
	LSN     uint64
	Serial  string
	Revoked bool
	Reason  int
	At      time.Time
}

// BackupEntry is a recorded backup and the LSN of its record.
type BackupEntry struct {
	LSN uint64
	BackupRecord
}

// Dump returns a logical dump of the database, read in one transaction.
func (d *DB) Dump(ctx context.Context) (*Dump, error) {
	done, err := d.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	return dumpPool(ctx, d.rdb, requestColumns)
}

// DumpFile dumps the database file at path, which no DB has open (a
// snapshot copy or a restored file).
func DumpFile(ctx context.Context, path string) (*Dump, error) {
	return dumpFile(ctx, path, requestColumns)
}

// DumpFileCompact is DumpFile without what each request holds in bulk: its
// CSR, its SAN list and its certificate's DER (Request.CSR, Request.SANs
// and Certificate.DER are nil). It keeps a few hundred bytes per request,
// for checks of a database larger than memory; EachCertificate reads the
// certificates themselves one at a time.
func DumpFileCompact(ctx context.Context, path string) (*Dump, error) {
	return dumpFile(ctx, path, requestColumnsCompact)
}

// requestColumnsCompact are requestColumns with the CSR and the
// certificate's DER read as NULL and the SAN list as empty.
const requestColumnsCompact = `id, status, NULL, subject, profile, requester, '[]', submitted, resolved,
	deny_reason, imported, submitted_lsn, resolved_lsn,
	serial, NULL, cert_subject, not_before, not_after, revoked, revocation_reason, revoked_at, revoked_lsn`

func dumpFile(ctx context.Context, path, columns string) (*Dump, error) {
	pool, err := openPool(path, connRead, 1)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	return dumpPool(ctx, pool, columns)
}

// EachCertificate calls fn with every certificate in the database file at
// path, which no DB has open, in the order of their requests' IDs, reading
// one at a time in one read transaction; fn must not keep c. It stops at
// the first error fn returns, or when ctx ends.
func EachCertificate(ctx context.Context, path string, fn func(c *Certificate) error) error {
	pool, err := openPool(path, connRead, 1)
	if err != nil {
		return err
	}
	defer pool.Close()
	tx, err := pool.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("read certificates: %w", err)
	}
	defer tx.Rollback()
	return dumpRows(ctx, tx, "SELECT "+requestColumns+" FROM requests WHERE serial IS NOT NULL ORDER BY id", func(s rowScanner) error {
		r, err := scanRequest(s)
		if err != nil {
			return err
		}
		if r.Certificate == nil {
			return nil
		}
		return fn(r.Certificate)
	})
}

// dumpPool dumps the database of pool in one read transaction, reading
// the requests' columns given (requestColumns or requestColumnsCompact).
func dumpPool(ctx context.Context, pool *sql.DB, columns string) (*Dump, error) {
	tx, err := pool.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	defer tx.Rollback()
	out := &Dump{}
	if out.Meta, err = readMeta(ctx, tx); err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	if out.Requests, err = queryRequests(ctx, tx, "SELECT "+columns+
		" FROM requests ORDER BY id"); err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	if err := dumpRows(ctx, tx, `SELECT lsn, serial, revoked, reason, at FROM revocation_events ORDER BY lsn`, func(s rowScanner) error {
		var e RevocationEvent
		var lsn, rv, rs, at int64
		if err := s.Scan(&lsn, &e.Serial, &rv, &rs, &at); err != nil {
			return err
		}
		e.LSN, e.Revoked, e.Reason, e.At = uint64(lsn), rv != 0, int(rs), fromMicros(at)
		out.RevocationEvents = append(out.RevocationEvents, e)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := dumpRows(ctx, tx, `SELECT number, delta, base_number, this_update, next_update, der, lsn FROM crls ORDER BY number`, func(s rowScanner) error {
		c, err := scanCRL(s)
		out.CRLs = append(out.CRLs, c)
		return err
	}); err != nil {
		return nil, err
	}
	names, err := strings1(ctx, tx, `SELECT name FROM principals ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	for _, n := range names {
		p, err := principal(ctx, tx, n)
		if err != nil {
			return nil, fmt.Errorf("dump: %w", err)
		}
		out.Principals = append(out.Principals, p)
	}
	if err := dumpRows(ctx, tx, `SELECT lsn, type, first_gen, last_gen, first_lsn, last_lsn, time FROM backups ORDER BY lsn`, func(s rowScanner) error {
		var lsn, typ, fg, lg, fl, ll, tm int64
		if err := s.Scan(&lsn, &typ, &fg, &lg, &fl, &ll, &tm); err != nil {
			return err
		}
		out.Backups = append(out.Backups, BackupEntry{LSN: uint64(lsn), BackupRecord: BackupRecord{Type: BackupType(typ),
			FirstGen: uint32(fg), LastGen: uint32(lg), FirstLSN: uint64(fl), LastLSN: uint64(ll), Time: fromMicros(tm)}})
		return nil
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func dumpRows(ctx context.Context, tx *sql.Tx, query string, fn func(rowScanner) error) error {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	return nil
}

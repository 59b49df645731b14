package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"

	"github.com/certsrv/certsrv/internal/wal"
)

// schemaVersion is the version of the schema below, stored in meta.
const schemaVersion = 1

// schema creates an empty database. doc.go describes every table.
var schema = []string{
	`CREATE TABLE meta (
		id               INTEGER PRIMARY KEY CHECK (id = 1),
		schema_version   INTEGER NOT NULL,
		db_signature     BLOB    NOT NULL,
		log_signature    BLOB    NOT NULL,
		applied_lsn      INTEGER NOT NULL,
		need_full_backup INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE TABLE requests (
		id                INTEGER PRIMARY KEY,
		status            INTEGER NOT NULL,
		csr               BLOB,
		subject           TEXT    NOT NULL,
		profile           TEXT    NOT NULL,
		requester         TEXT    NOT NULL,
		sans              TEXT    NOT NULL,
		submitted         INTEGER NOT NULL,
		resolved          INTEGER,
		deny_reason       TEXT    NOT NULL DEFAULT '',
		imported          INTEGER NOT NULL DEFAULT 0,
		submitted_lsn     INTEGER NOT NULL,
		resolved_lsn      INTEGER NOT NULL DEFAULT 0,
		serial            TEXT    UNIQUE,
		der               BLOB,
		cert_subject      TEXT,
		not_before        INTEGER,
		not_after         INTEGER,
		revoked           INTEGER NOT NULL DEFAULT 0,
		revocation_reason INTEGER NOT NULL DEFAULT 0,
		revoked_at        INTEGER,
		revoked_lsn       INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX requests_pending ON requests(id) WHERE status = 1`,
	`CREATE INDEX requests_revoked ON requests(serial) WHERE revoked = 1`,
	`CREATE TABLE revocation_events (
		lsn     INTEGER PRIMARY KEY,
		serial  TEXT    NOT NULL,
		revoked INTEGER NOT NULL,
		reason  INTEGER NOT NULL,
		at      INTEGER NOT NULL
	)`,
	`CREATE TABLE crls (
		number      INTEGER PRIMARY KEY,
		delta       INTEGER NOT NULL,
		base_number INTEGER NOT NULL,
		this_update INTEGER NOT NULL,
		next_update INTEGER NOT NULL,
		der         BLOB    NOT NULL,
		lsn         INTEGER NOT NULL
	)`,
	`CREATE TABLE principals (
		name        TEXT    PRIMARY KEY,
		revoked     INTEGER NOT NULL DEFAULT 0,
		created_lsn INTEGER NOT NULL,
		revoked_lsn INTEGER NOT NULL DEFAULT 0
	) WITHOUT ROWID`,
	`CREATE TABLE principal_roles (
		name TEXT NOT NULL,
		role TEXT NOT NULL,
		PRIMARY KEY (name, role)
	) WITHOUT ROWID`,
	`CREATE TABLE principal_certs (
		fingerprint TEXT PRIMARY KEY,
		name        TEXT NOT NULL
	) WITHOUT ROWID`,
	`CREATE TABLE backups (
		lsn       INTEGER PRIMARY KEY,
		type      INTEGER NOT NULL,
		first_gen INTEGER NOT NULL,
		last_gen  INTEGER NOT NULL,
		first_lsn INTEGER NOT NULL,
		last_lsn  INTEGER NOT NULL,
		time      INTEGER NOT NULL
	)`,
}

// ofdOnce enables OFD locking once per process; ofdErr is its outcome.
var (
	ofdOnce sync.Once
	ofdErr  error
)

// ensureOFD switches SQLite to Linux open-file-description locks before the
// first database file is opened in the process, once. With POSIX locks (the
// default) any close(2) of any descriptor of the database file in this
// process — the snapshot reader's included — silently drops SQLite's locks.
// If SQLite was already used in the process with POSIX locks, or the kernel
// refuses OFD locks, the store refuses to open: ErrOFDLocking.
func ensureOFD() error {
	ofdOnce.Do(func() {
		if _, err := sqlite.OFDLocking(true); err != nil {
			ofdErr = fmt.Errorf("%w: %w", ErrOFDLocking, err)
		}
	})
	if ofdErr != nil {
		return ofdErr
	}
	if !sqlite.OFDLockingEnabled() {
		return fmt.Errorf("%w: the kernel or file system refused OFD locks", ErrOFDLocking)
	}
	return nil
}

// connKind selects the pragmas of a connection pool.
type connKind int

const (
	connWrite connKind = iota // applier, fence, checkpoints: BEGIN IMMEDIATE
	connRead                  // readers and the snapshot pin: query_only
)

// sqliteBusyTimeout is how long a connection waits for a SQLite lock.
const sqliteBusyTimeout = 10 * time.Second

// dsn returns the modernc.org/sqlite data source name for path. Every
// connection has a busy timeout and SQLite's automatic checkpoints off (the
// engine owns checkpoints, see doc.go); writers run in WAL mode with
// synchronous=NORMAL and begin transactions with BEGIN IMMEDIATE.
func dsn(path string, kind connKind) string {
	q := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()),
		"_pragma=wal_autocheckpoint(0)",
		"_pragma=foreign_keys(0)",
	}
	switch kind {
	case connWrite:
		// page_size only takes effect on a new, empty file, and must come
		// before the switch to WAL mode (_journal_mode is applied after the
		// _pragma list).
		q = append(q, "_pragma=page_size(16384)", "_journal_mode=WAL", "_pragma=synchronous(NORMAL)",
			"_pragma=journal_size_limit(67108864)", "_pragma=cache_size(-16384)", "_txlock=immediate")
	case connRead:
		q = append(q, "_pragma=query_only(1)")
	}
	return path + "?" + strings.Join(q, "&")
}

// openPool opens a connection pool on the database file at path.
func openPool(path string, kind connKind, maxConns int) (*sql.DB, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, invalid("database path %q contains '?' or '#'", path)
	}
	if err := ensureOFD(); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn(path, kind))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// createSchema makes the tables and the meta row in a new database.
func createSchema(ctx context.Context, conn *sql.Conn, sigs Signatures) error {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	for _, s := range schema {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
			return fmt.Errorf("create schema: %w", err)
		}
	}
	if _, err := conn.ExecContext(ctx,
		`INSERT INTO meta (id, schema_version, db_signature, log_signature, applied_lsn) VALUES (1, ?, ?, ?, 0)`,
		schemaVersion, sigs.Database[:], sigs.Log[:]); err != nil {
		conn.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("create schema: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		conn.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}

// querier is what readMeta needs: a connection, pool or transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readMeta reads the meta row. A file without a meta table or with another
// schema version is ErrSchema.
func readMeta(ctx context.Context, q querier) (Meta, error) {
	var (
		m        Meta
		ver      int64
		dbs, lgs []byte
		applied  int64
		needFull int64
	)
	err := q.QueryRowContext(ctx,
		`SELECT schema_version, db_signature, log_signature, applied_lsn, need_full_backup FROM meta WHERE id = 1`).
		Scan(&ver, &dbs, &lgs, &applied, &needFull)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) || strings.Contains(err.Error(), "no such table") {
			return Meta{}, fmt.Errorf("read meta: %v: %w", err, ErrSchema)
		}
		return Meta{}, fmt.Errorf("read meta: %w", err)
	}
	if ver != schemaVersion {
		return Meta{}, fmt.Errorf("read meta: schema version %d, want %d: %w", ver, schemaVersion, ErrSchema)
	}
	if len(dbs) != len(m.Database) || len(lgs) != len(wal.Signature{}) || applied < 0 {
		return Meta{}, fmt.Errorf("read meta: malformed signatures or LSN: %w", ErrSchema)
	}
	copy(m.Database[:], dbs)
	copy(m.Log[:], lgs)
	m.AppliedLSN = uint64(applied)
	m.NeedFullBackup = needFull != 0
	return m, nil
}

package backupset

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/certsrv/certsrv/internal/wal"
)

// DBMeta is what a database snapshot records about itself in its meta
// table: the database and log-set signatures and the LSN of the last log
// record it reflects (the snapshot LSN S).
type DBMeta struct {
	DBSignature  [16]byte
	LogSignature wal.Signature
	AppliedLSN   uint64
}

// ReadDBMeta reads the meta row of the certsrv database file at path. It
// opens the file read-only as immutable, so SQLite takes no lock and creates
// no -wal or -shm file next to it; the file must not change while it is
// read (a file in a backup set does not). Any failure matches ErrDatabase.
func ReadDBMeta(ctx context.Context, path string) (DBMeta, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return DBMeta{}, fmt.Errorf("%w: %s: %v", ErrDatabase, path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return DBMeta{}, fmt.Errorf("%w: %v", ErrDatabase, err)
	}
	if !fi.Mode().IsRegular() {
		return DBMeta{}, fmt.Errorf("%w: %s is not a regular file", ErrDatabase, path)
	}
	db, err := sql.Open("sqlite", "file:"+uriPath(abs)+"?mode=ro&immutable=1")
	if err != nil {
		return DBMeta{}, fmt.Errorf("%w: open %s: %v", ErrDatabase, path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var (
		m        DBMeta
		dbs, lgs []byte
		applied  int64
	)
	err = db.QueryRowContext(ctx, `SELECT db_signature, log_signature, applied_lsn FROM meta WHERE id = 1`).
		Scan(&dbs, &lgs, &applied)
	if err != nil {
		return DBMeta{}, fmt.Errorf("%w: read meta of %s: %v", ErrDatabase, path, err)
	}
	if len(dbs) != len(m.DBSignature) || len(lgs) != len(m.LogSignature) || applied < 0 {
		return DBMeta{}, fmt.Errorf("%w: %s: malformed meta row", ErrDatabase, path)
	}
	copy(m.DBSignature[:], dbs)
	copy(m.LogSignature[:], lgs)
	m.AppliedLSN = uint64(applied)
	return m, nil
}

// uriPath escapes an absolute path for a SQLite file: URI: '%', '?' and
// '#' become %XX, everything else stays as it is.
func uriPath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

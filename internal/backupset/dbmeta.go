package backupset

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
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

// sqliteHeaderSize is the size of the SQLite database header.
const sqliteHeaderSize = 100

// checkDBLength compares the length of the database file at p (rel in the
// set) with the one its SQLite header records: the page size (offset 16)
// times the database size in pages (offset 28), which SQLite keeps valid
// when the version-valid-for number (offset 92) equals the change counter
// (offset 24). A shorter file was truncated (a *FileError matching
// ErrTruncated); a file that is not a whole number of pages was cut or
// extended (ErrSizeMismatch). A file whose header is not SQLite's matches
// ErrDatabase.
func checkDBLength(p, rel string) error {
	f, err := os.Open(p)
	if err != nil {
		return &FileError{Path: rel, Err: fmt.Errorf("%w: %v", ErrDatabase, err)}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return &FileError{Path: rel, Err: fmt.Errorf("%w: %v", ErrDatabase, err)}
	}
	h := make([]byte, sqliteHeaderSize)
	if _, err := io.ReadFull(f, h); err != nil {
		return &FileError{Path: rel, Want: "at least a 100-byte SQLite header", Got: strconv.FormatInt(fi.Size(), 10) + " bytes", Err: ErrTruncated}
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return &FileError{Path: rel, Err: fmt.Errorf("%w: no SQLite header", ErrDatabase)}
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return &FileError{Path: rel, Err: fmt.Errorf("%w: page size %d in the SQLite header", ErrDatabase, pageSize)}
	}
	size := fi.Size()
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	valid := pages > 0 && binary.BigEndian.Uint32(h[24:28]) == binary.BigEndian.Uint32(h[92:96])
	if valid && size < pages*pageSize {
		return &FileError{Path: rel, Want: fmt.Sprintf("%d bytes (%s of %d, as its SQLite header says)", pages*pageSize, countOf(pages, "page", "pages"), pageSize),
			Got: strconv.FormatInt(size, 10) + " bytes", Err: ErrTruncated}
	}
	if size%pageSize != 0 {
		return &FileError{Path: rel, Want: fmt.Sprintf("a whole number of %d-byte pages", pageSize),
			Got: strconv.FormatInt(size, 10) + " bytes", Err: ErrSizeMismatch}
	}
	return nil
}

// maxQuickCheckErrors bounds the problems quick_check lists.
const maxQuickCheckErrors = 10

// quickCheck runs SQLite's PRAGMA quick_check on the database file at p,
// opened read-only and immutable as ReadDBMeta opens it. It reads every
// page and checks the structure of every b-tree; it returns an error
// matching ErrDatabase naming what SQLite found, or nil when it says "ok".
func quickCheck(ctx context.Context, p string) error {
	abs, err := filepath.Abs(p)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDatabase, err)
	}
	db, err := sql.Open("sqlite", "file:"+uriPath(abs)+"?mode=ro&immutable=1")
	if err != nil {
		return fmt.Errorf("%w: open %s: %v", ErrDatabase, p, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, fmt.Sprintf("PRAGMA quick_check(%d)", maxQuickCheckErrors))
	if err != nil {
		return fmt.Errorf("%w: quick_check: %v", ErrDatabase, err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("%w: quick_check: %v", ErrDatabase, err)
		}
		found = append(found, line)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: quick_check: %v", ErrDatabase, err)
	}
	if len(found) == 1 && found[0] == "ok" {
		return nil
	}
	return fmt.Errorf("%w: SQLite's quick_check: %s", ErrDatabase, strings.Join(found, "; "))
}

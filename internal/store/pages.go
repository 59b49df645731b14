package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// CheckPages runs SQLite's PRAGMA quick_check on the open database: every
// page is read and its b-tree structure checked (integrity_check also
// cross-checks the indexes, which Check does offline). It takes about a
// second per gigabyte and runs beside writers. On damage the database is
// failed (ErrFailed, ErrIntegrity) so that nothing more is issued from it,
// and the error says how to recover: the log still holds every change, so
// a restore with catch-up loses nothing. ctx ending stops the check
// without a verdict.
func (d *DB) CheckPages(ctx context.Context) (time.Duration, error) {
	done, err := d.begin()
	if err != nil {
		return 0, err
	}
	defer done()
	start := time.Now()
	lines, err := strings1(ctx, d.rdb, "PRAGMA quick_check")
	if err != nil {
		if ctx.Err() != nil {
			return time.Since(start), ctx.Err()
		}
		lines = []string{err.Error()}
	}
	if len(lines) == 1 && lines[0] == "ok" {
		return time.Since(start), nil
	}
	lines = strings.Split(strings.Join(lines, "\n"), "\n") // SQLite puts several in one row
	if len(lines) > 5 {
		lines = append(lines[:5], fmt.Sprintf("and %d more", len(lines)-5))
	}
	cause := fmt.Errorf("database file %s is damaged (PRAGMA quick_check: %s): restore it from a backup with catch-up, which loses nothing the log holds (certsrv restore SET --data DIR --force; docs/restore.md case 1): %w",
		d.opts.DBPath, strings.Join(lines, "; "), ErrIntegrity)
	d.fail(cause)
	return time.Since(start), d.failure()
}

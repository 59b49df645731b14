package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/certsrv/certsrv/internal/wal"
)

// A full disk (or quota) is the one apply failure the database recovers
// from in process. The records the applier could not apply are already
// durable in the log, so their writers are answered as for an applied
// record: the write happened, and replay or a later apply makes it visible.
// From then on the database is stalled: every new write is refused with
// ErrStalled before it reaches the log (so no client is ever told that a
// write failed which later appears), reads see the state before the held
// records (the write methods answer from what they wrote, never from a
// read, so a held writer's answer is right), and the applier tries the
// held records again, every stallRetryMin at first and backing off to
// stallRetryMax. When every held
// record is applied the stall ends and writes are accepted again: an
// operator frees space and the CA carries on without a restart. Any other
// apply failure still fails the database (ErrFailed).
//
// So that a full disk is rarely reached at all, the engine also keeps a
// reserve (Options.MinFreeSpace; by default 64 MiB, or a twentieth of a
// smaller file system): it reads the free
// space of the log's and the database's file systems every
// sqlCheckpointTick, and on the write path at most every spaceCheckEvery,
// and while either is below the reserve new writes are refused the same
// way, nothing reaching the log. Should the disk fill anyway, the log
// drops the records it had not made durable (wal.ErrNoSpace: commit refuses
// the write with ErrStalled) and the stall above covers the database file.
//
// Keys stay consistent: a held record's writer releases its key locks
// when answered, but no write can be validated against the stale state,
// since none is accepted until the held records are applied.
const (
	stallRetryMin = 250 * time.Millisecond
	stallRetryMax = 5 * time.Second
)

// errHeld answers the writer of a record the applier holds during a stall:
// the record is durable, commit returns success.
var errHeld = errors.New("record held until the database can be written")

// diskFull reports whether err is the database or its disk being full:
// SQLite's SQLITE_FULL, or ENOSPC or EDQUOT from the file system.
func diskFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// IsDiskFull reports whether err comes from a full disk under the
// database or its log: a write refused while stalled or below the reserve
// (ErrStalled), records the log dropped (wal.ErrNoSpace), or SQLite or the
// file system reporting no space (a snapshot's checkpoint, say).
func IsDiskFull(err error) bool {
	return errors.Is(err, ErrStalled) || errors.Is(err, wal.ErrNoSpace) || diskFull(err)
}

// stall records that the applier holds records back because of err.
func (d *DB) stall(err error) {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	if d.stallErr == nil {
		d.stallAt = time.Now()
		d.logger.Error("database full: new writes are refused until the records waiting in the log are applied; free space on the database's file system",
			"err", err)
	}
	d.stallErr = err
	d.noWrite.Store(true)
}

// unstall ends a stall, if there is one.
func (d *DB) unstall() {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	if d.stallErr != nil {
		d.logger.Info("database writable again: the waiting records are applied",
			"stalled_for", time.Since(d.stallAt).Round(time.Millisecond), "applied_lsn", d.applied.Load())
		d.stallErr = nil
		d.noWrite.Store(d.spaceErr != nil)
	}
}

// spaceCheckEvery is how often a write reads the free space at most: at
// the speed SQLite's WAL can grow under a single writer (about 80 MB/s
// here) the reserve shrinks by well under a megabyte between two reads.
const spaceCheckEvery = 10 * time.Millisecond

// maybeCheckSpace runs checkSpace if nobody did in the last
// spaceCheckEvery.
func (d *DB) maybeCheckSpace() {
	if d.opts.MinFreeSpace < 0 {
		return
	}
	now := time.Now().UnixNano()
	last := d.spaceNS.Load()
	if now-last < int64(spaceCheckEvery) || !d.spaceNS.CompareAndSwap(last, now) {
		return
	}
	d.checkSpace()
}

// checkSpace compares the free space of the log's and the database's file
// systems with MinFreeSpace and refuses or accepts writes accordingly. A
// file system whose free space cannot be read is not held against writes.
func (d *DB) checkSpace() {
	if d.opts.MinFreeSpace < 0 {
		return
	}
	d.stateMu.Lock()
	wasLow := d.spaceErr != nil
	d.stateMu.Unlock()
	var low error
	for _, dir := range []string{d.opts.LogDir, filepath.Dir(d.opts.DBPath)} {
		free, reserve, ok := freeSpace(dir, d.opts.MinFreeSpace)
		if !ok {
			continue
		}
		if free < reserve || (wasLow && free < reserve+reserve/4) {
			low = fmt.Errorf("%s has %s free, below the reserve of %s", dir, sizeString(free), sizeString(reserve))
			break
		}
	}
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	switch {
	case low != nil && d.spaceErr == nil:
		d.spaceAt = time.Now()
		d.logger.Error("disk nearly full: new writes are refused until there is space again", "err", low)
	case low == nil && d.spaceErr != nil:
		d.logger.Info("disk space available again: writes are accepted",
			"refused_for", time.Since(d.spaceAt).Round(time.Millisecond))
	}
	d.spaceErr = low
	d.noWrite.Store(d.stallErr != nil || d.spaceErr != nil)
}

// freeSpace returns the free space of dir's file system (for an
// unprivileged user) and the reserve opt (Options.MinFreeSpace) means
// there: opt itself, or for 0 the default rule. ok is false when the file
// system cannot be read.
func freeSpace(dir string, opt int64) (free, reserve int64, ok bool) {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return 0, 0, false
	}
	free = int64(st.Bavail) * int64(st.Bsize)
	reserve = opt
	if opt == 0 {
		reserve = min(DefaultMinFreeSpace, int64(st.Blocks)*int64(st.Bsize)/20)
	}
	return free, reserve, true
}

// writableFor is writable for a record of type t. The reserve is there for
// the records that keep the CA trustworthy and free space: a CRL (relying
// parties must not be left with an expired one), a backup (whose
// truncation frees log space) and the full-backup requirement a restore
// records. These are written below the reserve; during a stall nothing is.
func (d *DB) writableFor(t wal.RecordType) error {
	d.maybeCheckSpace()
	switch t {
	case RecordCRL, RecordBackup, RecordNeedFullBackup:
		d.stateMu.Lock()
		held := d.stallErr != nil
		d.stateMu.Unlock()
		if !held {
			return nil
		}
	}
	return d.stalled()
}

// sizeString writes n bytes in MiB (with a decimal below 10 MiB), or KiB
// below one MiB.
func sizeString(n int64) string {
	switch {
	case n < 1<<20:
		return fmt.Sprintf("%d KiB", n>>10)
	case n < 10<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// stalled returns the error a write gets while the database is stalled or
// short of free space (matching ErrStalled), or nil.
func (d *DB) stalled() error {
	if !d.noWrite.Load() {
		return nil
	}
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	switch {
	case d.stallErr != nil:
		return fmt.Errorf("%w since %s (%v); records already written wait in the log and are applied when there is space again, after which writes are accepted without a restart",
			ErrStalled, d.stallAt.UTC().Format(time.RFC3339), d.stallErr)
	case d.spaceErr != nil:
		return fmt.Errorf("%w: %v, since %s; nothing was written; writes are accepted again, without a restart, once there is space",
			ErrStalled, d.spaceErr, d.spaceAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// Stalled returns, while the database is stalled, the error writes get
// (matching ErrStalled); nil otherwise.
func (d *DB) Stalled() error { return d.stalled() }

// heldIn counts the records in pending whose writers were already
// answered while the records wait.
func heldIn(pending map[uint64]*pendingItem) int {
	n := 0
	for _, p := range pending {
		if p.answered {
			n++
		}
	}
	return n
}

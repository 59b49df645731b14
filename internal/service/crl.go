package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/store"
)

// CRLInfo describes a published CRL.
type CRLInfo struct {
	// Number is the CRL number; full and delta CRLs share one sequence.
	Number *big.Int
	// Delta is true for a delta CRL; BaseNumber is then the number of the
	// full CRL it is based on (nil for a full CRL).
	Delta      bool
	BaseNumber *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time
	// Entries is the number of entries (a delta counts removeFromCRL
	// entries too).
	Entries int
	// Path is the published file; URL where it is served ("" without a
	// base URL).
	Path string
	URL  string
}

// crlPath returns publish/<Name>.crl, or publish/<Name>+.crl for a delta.
func (c *CA) crlPath(delta bool) string {
	name := c.auth.Name + ".crl"
	if delta {
		name = c.auth.Name + "+.crl"
	}
	return filepath.Join(c.dir.PublishDir(), name)
}

// DeltaCRLsEnabled reports whether the configuration enables delta CRLs
// (a non-zero delta_crl_validity).
func (c *CA) DeltaCRLsEnabled() bool { return c.crlTimes.deltaValidity > 0 }

// PublishCRL signs, records and publishes a CRL now: a full CRL, or with
// delta set a delta CRL. The number is one more than the highest number of
// any CRL recorded, full or delta (RFC 5280 §5.2.3: the two share one
// sequence), so numbers only grow.
//
// A full CRL lists every revoked certificate (holds included) that has not
// expired. A delta CRL carries the Delta CRL Indicator holding the number
// of the last full CRL and lists the current state of every certificate
// whose revocation state changed after that full CRL was recorded: revoked
// ones with their reason, and ones released from hold with reason
// removeFromCRL. Without a full CRL to base it on, a full CRL is
// published first. Validity: a full CRL runs crl_validity plus crl_overlap
// past now; a delta CRL delta_crl_validity plus the overlap (at most half
// the delta validity), the window computed by ca.CRLWindow.
//
// The CRL is recorded durably in the database first, then written to
// publish/<Name>.crl (or <Name>+.crl) atomically. A crash between the two
// leaves the previous file; RunPublisher rewrites it from the database when
// it starts. With delta CRLs disabled, a delta request is InvalidArg.
func (c *CA) PublishCRL(ctx context.Context, delta bool) (*CRLInfo, error) {
	if delta && !c.DeltaCRLsEnabled() {
		return nil, apierr.New(apierr.InvalidArg, "delta CRLs are disabled (delta_crl_validity is 0)")
	}
	c.revMu.Lock()
	defer c.revMu.Unlock()
	if delta {
		if _, err := c.db.LastCRL(ctx, false); errors.Is(err, store.ErrNotFound) {
			if _, err := c.publishLocked(ctx, false); err != nil {
				return nil, err
			}
		}
	}
	return c.publishLocked(ctx, delta)
}

// lastCRLNumber returns the highest recorded CRL number (0 if none) and
// the last full CRL (ok false if none).
func (c *CA) lastCRLNumber(ctx context.Context) (last uint64, full store.CRL, ok bool, err error) {
	full, err = c.db.LastCRL(ctx, false)
	switch {
	case err == nil:
		ok = true
		last = full.Number
	case !errors.Is(err, store.ErrNotFound):
		return 0, store.CRL{}, false, internal("read last CRL", err)
	}
	d, err := c.db.LastCRL(ctx, true)
	switch {
	case err == nil:
		last = max(last, d.Number)
	case !errors.Is(err, store.ErrNotFound):
		return 0, store.CRL{}, false, internal("read last delta CRL", err)
	}
	return last, full, ok, nil
}

// publishLocked does PublishCRL's work; the caller holds revMu exclusively.
func (c *CA) publishLocked(ctx context.Context, delta bool) (*CRLInfo, error) {
	last, base, haveBase, err := c.lastCRLNumber(ctx)
	if err != nil {
		return nil, err
	}
	if delta && !haveBase {
		return nil, apierr.New(apierr.BadRequestStatus, "no full CRL to base a delta CRL on")
	}
	number := last + 1
	now := c.now()
	if c.db.NeedFullBackup() {
		number = max(number, restoredCRLFloor(now))
	}
	var (
		entries              []ca.RevokedEntry
		thisUpdate, nextUpdt time.Time
		baseNumber           *big.Int
	)
	if delta {
		thisUpdate, nextUpdt = ca.CRLWindow(now, c.crlTimes.deltaValidity, c.crlTimes.deltaOverlap())
		changes, err := c.db.RevocationChangesSince(ctx, base.LSN)
		if err != nil {
			return nil, internal("read revocation changes", err)
		}
		entries, err = crlEntries(changes, thisUpdate)
		if err != nil {
			return nil, err
		}
		baseNumber = new(big.Int).SetUint64(base.Number)
	} else {
		thisUpdate, nextUpdt = ca.CRLWindow(now, c.crlTimes.validity, c.crlTimes.overlap)
		revoked, err := c.db.RevokedCertificates(ctx, now)
		if err != nil {
			return nil, internal("read revoked certificates", err)
		}
		entries, err = crlEntries(revoked, thisUpdate)
		if err != nil {
			return nil, err
		}
	}
	num := new(big.Int).SetUint64(number)
	der, err := c.auth.CRL(entries, num, baseNumber, thisUpdate, nextUpdt)
	if err != nil {
		return nil, internal("sign CRL", err)
	}
	rec := store.CRL{Number: number, Delta: delta, ThisUpdate: thisUpdate, NextUpdate: nextUpdt, DER: der}
	if delta {
		rec.BaseNumber = base.Number
	}
	recorded, err := c.db.RecordCRL(ctx, rec)
	if err != nil {
		return nil, storeError("record CRL", err)
	}
	path := c.crlPath(delta)
	if err := fsutil.WriteFileAtomic(path, der, 0o644); err != nil {
		return nil, internal("write CRL", &FileError{Op: "publish CRL", Path: path, Err: err})
	}
	if !delta && c.auth.NoDeltaCRLs {
		// Delta CRLs were switched off: a delta published before would
		// be served, never renewed, until it expired.
		if err := os.Remove(c.crlPath(true)); err == nil {
			c.logger.Info("removed the delta CRL published before delta CRLs were switched off", "path", c.crlPath(true))
		} else if !errors.Is(err, fs.ErrNotExist) {
			c.logger.Warn("could not remove the stale delta CRL", "path", c.crlPath(true), "err", err)
		}
	}
	c.change(ctx, "CRL published", "number", number, "delta", delta, "entries", len(entries), "next_update", nextUpdt, "lsn", recorded.LSN)
	return &CRLInfo{
		Number: num, Delta: delta, BaseNumber: baseNumber,
		ThisUpdate: thisUpdate.UTC().Truncate(time.Second), NextUpdate: nextUpdt.UTC().Truncate(time.Second),
		Entries: len(entries), Path: path, URL: c.auth.CRLURL(delta),
	}, nil
}

// crlEntries converts stored revocations to CRL entries. A release from
// hold (Revoked false) becomes a removeFromCRL entry dated releasedAt,
// because the store keeps no revocation date for it.
func crlEntries(rs []store.Revocation, releasedAt time.Time) ([]ca.RevokedEntry, error) {
	out := make([]ca.RevokedEntry, 0, len(rs))
	for _, r := range rs {
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, internal("build CRL", fmt.Errorf("stored serial %q is not hexadecimal", r.Serial))
		}
		e := ca.RevokedEntry{Serial: n, RevokedAt: r.RevokedAt, Reason: r.Reason}
		if !r.Revoked {
			e.Reason, e.RevokedAt = ca.ReasonRemoveFromCRL, releasedAt
		}
		out = append(out, e)
	}
	return out, nil
}

// publisherRetry is how long RunPublisher waits after a failed publication.
const publisherRetry = time.Minute

// RunPublisher publishes CRLs on schedule until ctx is done: a full CRL
// when crl_interval has passed since the last one (or its nextUpdate is a
// minute away), and, with delta CRLs enabled, a delta CRL when
// delta_crl_interval has passed since the last delta or a newer full CRL
// was published since. On start it publishes whatever is missing or due
// and rewrites a published file that is missing or differs from the last
// recorded CRL of its kind (the crash window of PublishCRL). A failed
// publication is logged and retried after a minute. RunPublisher returns
// when ctx is done or the database is closed.
func (c *CA) RunPublisher(ctx context.Context) {
	repair := true
	for {
		wait, stop := c.publishDue(ctx, repair)
		if stop {
			return
		}
		repair = false
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// crlDue returns when a CRL recorded as r should be replaced: interval
// after its thisUpdate, but no later than a minute before its nextUpdate.
// (A thisUpdate backdated for clock skew only makes it fall due a little
// early.)
func crlDue(r store.CRL, interval time.Duration) time.Time {
	due := r.ThisUpdate.Add(interval)
	if limit := r.NextUpdate.Add(-time.Minute); limit.Before(due) {
		due = limit
	}
	return due
}

// restoredCRLFloor is the lowest CRL number used after a restore, until
// the next full backup: the current Unix time in seconds. A restored
// database does not know the CRLs the CA published after the backup it was
// restored from, and clients may hold them; RFC 5280 §5.2.3 requires CRL
// numbers to grow. Numbers grow by one per CRL, far slower than one per
// second, so the time is above every number published before the restore,
// and later restores move the floor up again.
func restoredCRLFloor(now time.Time) uint64 { return uint64(now.Unix()) }

// renumberDue reports whether full is the last full CRL of a restored
// database that has not been republished under the post-restore floor: the
// publisher then publishes a full CRL (and a delta on it) at once, so
// clients holding a CRL from after the backup get a newer one.
func (c *CA) renumberDue(full store.CRL) bool {
	return c.db.NeedFullBackup() && full.Number < restoredCRLFloor(full.ThisUpdate)
}

// publishDue publishes what is due (and with repair, rewrites stale
// files) and returns how long to wait before the next check, or stop when
// the database is closed or ctx is done.
func (c *CA) publishDue(ctx context.Context, repair bool) (wait time.Duration, stop bool) {
	failed := func(what string, err error) (time.Duration, bool) {
		if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
			return 0, true
		}
		c.logger.Error("CRL publication failed; retrying", "crl", what, "err", err, "retry_in", publisherRetry)
		return publisherRetry, false
	}
	full, err := c.db.LastCRL(ctx, false)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && (!c.now().Before(crlDue(full, c.crlTimes.interval)) || c.renumberDue(full))):
		if _, err := c.PublishCRL(ctx, false); err != nil {
			return failed("full", err)
		}
		if full, err = c.db.LastCRL(ctx, false); err != nil {
			return failed("full", err)
		}
	case err != nil:
		return failed("full", err)
	case repair:
		c.repairCRLFile(full)
	}
	wait = crlDue(full, c.crlTimes.interval).Sub(c.now())
	if c.DeltaCRLsEnabled() {
		d, err := c.db.LastCRL(ctx, true)
		switch {
		case errors.Is(err, store.ErrNotFound) || (err == nil && (d.BaseNumber != full.Number || !c.now().Before(crlDue(d, c.crlTimes.deltaInterval)))):
			if _, err := c.PublishCRL(ctx, true); err != nil {
				return failed("delta", err)
			}
			if d, err = c.db.LastCRL(ctx, true); err != nil {
				return failed("delta", err)
			}
		case err != nil:
			return failed("delta", err)
		case repair:
			c.repairCRLFile(d)
		}
		wait = min(wait, crlDue(d, c.crlTimes.deltaInterval).Sub(c.now()))
	}
	return max(wait, time.Second), false
}

// repairCRLFile rewrites the published file of r's kind from the database
// when the file is missing or holds other bytes and r has not expired.
func (c *CA) repairCRLFile(r store.CRL) {
	path := c.crlPath(r.Delta)
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, r.DER) {
		return
	}
	if !c.now().Before(r.NextUpdate) {
		return
	}
	if err := fsutil.WriteFileAtomic(path, r.DER, 0o644); err != nil {
		c.logger.Error("rewrite published CRL", "path", path, "err", err)
		return
	}
	c.logger.Warn("published CRL was missing or stale; rewrote it from the database", "path", path, "number", r.Number)
}

// DynamicFile is a file under publish/: what the backup API lists as
// dynamic files and the HTTP endpoint serves under /CertEnroll/.
type DynamicFile struct {
	Name string // file name, e.g. "certsrv CA.crl"
	Path string // absolute path
	URL  string // HTTP URL, "" without a configured base URL
	Size int64
}

// DynamicFiles lists the CA certificate, the full CRL and the delta CRL
// under publish/, in that order, skipping any that does not exist.
func (c *CA) DynamicFiles() []DynamicFile {
	cands := []struct{ path, url string }{
		{filepath.Join(c.dir.PublishDir(), c.auth.Name+".crt"), c.auth.CertURL()},
		{c.crlPath(false), c.auth.CRLURL(false)},
		{c.crlPath(true), c.auth.CRLURL(true)},
	}
	var out []DynamicFile
	for _, f := range cands {
		fi, err := os.Lstat(f.path)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		out = append(out, DynamicFile{Name: filepath.Base(f.path), Path: f.path, URL: f.url, Size: fi.Size()})
	}
	return out
}

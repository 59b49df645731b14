package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// pendingItem is an appended record waiting for the applier, and the
// channel its writer waits on. answered is set once the writer has had
// its answer while the record still waits (a stall, stall.go).
type pendingItem struct {
	item
	done     chan error
	answered bool
}

// answer tells p's writer err, once.
func (p *pendingItem) answer(err error) {
	if !p.answered {
		p.answered = true
		p.done <- err
	}
}

// commit is the write path: append o durably to the log (group commit),
// hand it to the applier and wait until it is applied. It returns the
// record's LSN. A failure after the record may have reached the log fails
// the database, because the database would otherwise diverge from the log.
func (d *DB) commit(ctx context.Context, o op) (uint64, error) {
	t := o.recordType()
	if err := d.writableFor(t); err != nil {
		return 0, err
	}
	if nr, ok := o.(newRequest); ok {
		nr.setID(d.nextID.Add(1))
	}
	lsn, err := d.log.Append(ctx, t, encodeOp(o))
	if err != nil {
		err = fmt.Errorf("append %s record: %w", TypeName(t), err)
		// A done context or an oversized payload is refused before the
		// record is queued, and a full file system makes the log drop
		// what it had not made durable: nothing reached the log. Anything
		// else means the log failed with the record's fate unknown.
		if errors.Is(err, wal.ErrNoSpace) {
			return 0, fmt.Errorf("%w: %w", ErrStalled, err)
		}
		refused := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
			errors.Is(err, wal.ErrTooLarge)
		if !refused {
			d.fail(err)
		}
		return 0, err
	}
	p := &pendingItem{item: newItem(lsn, t, o), done: make(chan error, 1)}
	d.applyCh <- p
	if err := <-p.done; err != nil && !errors.Is(err, errHeld) {
		return lsn, err
	}
	// Applied, or held by a stall: durable in the log either way, and
	// applied before any later write is accepted.
	return lsn, nil
}

// runApplier is the one goroutine that applies live records to SQLite,
// strictly in LSN order: records arrive out of order from concurrent
// appenders, wait in a pending set, and the contiguous run after
// applied_lsn is applied in one transaction, after which its writers are
// woken.
func (d *DB) runApplier() {
	defer close(d.applierDone)
	pending := make(map[uint64]*pendingItem)
	var (
		batch   []item
		waiters []*pendingItem
		retry   <-chan time.Time // set while stalled: when to try the held records again
		backoff time.Duration
		held    bool // a stall holds answered records in pending
	)
	for {
		if _, ready := pending[d.applied.Load()+1]; !ready || retry != nil {
			select {
			case p := <-d.applyCh:
				pending[p.lsn] = p
			case <-d.wake:
			case <-retry:
				retry = nil
			case <-d.applierStop:
				for _, p := range pending {
					p.answer(ErrClosed)
				}
				return
			}
		}
	drain:
		for {
			select {
			case p := <-d.applyCh:
				pending[p.lsn] = p
			default:
				break drain
			}
		}
		if err := d.failure(); err != nil {
			for lsn, p := range pending {
				p.answer(err)
				delete(pending, lsn)
			}
			continue
		}
		if retry != nil {
			// Still stalled: records appended before the stall began
			// wait with the others.
			for _, p := range pending {
				p.answer(errHeld)
			}
			continue
		}
		batch, waiters = batch[:0], waiters[:0]
		next := d.applied.Load() + 1
		for len(batch) < maxApplyBatch {
			p, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			batch = append(batch, p.item)
			waiters = append(waiters, p)
			next++
		}
		if len(batch) == 0 {
			continue
		}
		d.writeGate.Lock()
		err := d.ac.applyBatch(context.Background(), batch)
		if err == nil {
			d.applied.Store(batch[len(batch)-1].lsn)
			d.noteApplied(batch)
		}
		d.writeGate.Unlock()
		switch {
		case err == nil:
			// Only after a stall: pending may still hold answered records.
			if held && heldIn(pending) == 0 {
				d.unstall()
				held, backoff = false, 0
			}
		case diskFull(err):
			// The records are durable in the log; they wait, and no
			// write is accepted, until the database takes them again.
			for _, w := range waiters {
				pending[w.lsn] = w
			}
			d.stall(err)
			held = true
			for _, p := range pending {
				p.answer(errHeld)
			}
			backoff = min(max(2*backoff, stallRetryMin), stallRetryMax)
			retry = time.After(backoff)
			continue
		default:
			d.fail(err)
			err = d.failure()
			for lsn, p := range pending {
				p.answer(err)
				delete(pending, lsn)
			}
		}
		for _, w := range waiters {
			w.answer(err)
		}
	}
}

// noteApplied updates the in-memory state that mirrors applied records.
func (d *DB) noteApplied(batch []item) {
	for _, it := range batch {
		switch o := it.op.(type) {
		case *backupOp:
			b := o.B
			d.stateMu.Lock()
			if b.Type == BackupFull {
				d.lastFull = &b
				d.needFull = false
			} else {
				d.lastIncr = &b
			}
			d.stateMu.Unlock()
		case *needFullOp:
			d.stateMu.Lock()
			d.needFull = o.On
			d.stateMu.Unlock()
		}
	}
}

// keyLocks serialise writes that touch the same request, certificate,
// principal or singleton, from validation until the record is applied, so
// that validation always sees every earlier record on its keys. Writes on
// different keys run concurrently and share log fsyncs.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int
}

// lock takes the locks on keys in sorted order (no deadlock between calls
// with overlapping keys) and returns the function that releases them.
func (k *keyLocks) lock(ctx context.Context, keys ...string) (func(), error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	held := make([]string, 0, len(keys))
	unlock := func() {
		for _, key := range held {
			k.release(key, true)
		}
	}
	for _, key := range keys {
		k.mu.Lock()
		l := k.m[key]
		if l == nil {
			l = &keyLock{ch: make(chan struct{}, 1)}
			k.m[key] = l
		}
		l.refs++
		k.mu.Unlock()
		select {
		case l.ch <- struct{}{}:
			held = append(held, key)
		case <-ctx.Done():
			k.release(key, false)
			unlock()
			return nil, ctx.Err()
		}
	}
	return unlock, nil
}

// release drops one reference to key, unlocking it if locked is true.
func (k *keyLocks) release(key string, locked bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.m[key]
	if locked {
		<-l.ch
	}
	l.refs--
	if l.refs == 0 {
		delete(k.m, key)
	}
}

// softRecover replays the live log after applied (soft recovery) and logs what
// it replayed.
func (d *DB) softRecover(ctx context.Context, applied uint64) error {
	start := time.Now()
	last := d.log.LastLSN()
	gens := d.log.Generations()
	oldest := gens[0]
	if applied > last {
		return fmt.Errorf("open database: the database is at LSN %d but the log in %s ends at LSN %d: %w",
			applied, d.opts.LogDir, last, ErrLogBehind)
	}
	if applied+1 < oldest.BaseLSN {
		return fmt.Errorf("open database: %w", &MissingLogError{
			Dir: d.opts.LogDir, Gen: oldest.Gen - 1, NeedLSN: applied + 1, Oldest: oldest.Gen,
			Reason: fmt.Sprintf("the database is at LSN %d and the oldest generation present, %d, starts at LSN %d",
				applied, oldest.Gen, oldest.BaseLSN),
		})
	}
	r := newReplayer(d.ac, applied, 0, time.Time{})
	err := r.finish(d.log.ReadFrom(ctx, applied+1, r.add))
	if err != nil {
		if errors.Is(err, wal.ErrMissingGeneration) {
			var ce *wal.CorruptError
			errors.As(err, &ce)
			me := &MissingLogError{Dir: d.opts.LogDir, NeedLSN: r.next(), Oldest: oldest.Gen, Reason: "a generation the replay needs is absent", Err: err}
			if ce != nil {
				me.Gen = ce.Gen
			}
			return fmt.Errorf("open database: %w", me)
		}
		return fmt.Errorf("open database: replay: %w", err)
	}
	d.applied.Store(r.applied)
	res := r.res
	res.AppliedLSN = r.applied
	d.recovery = res
	if res.Records > 0 {
		d.logger.Info("soft recovery replayed log records",
			"records", res.Records, "first_lsn", res.FirstLSN, "last_lsn", res.LastLSN,
			"first_gen", res.FirstGen, "last_gen", res.LastGen, "duration", time.Since(start))
	} else {
		d.logger.Info("soft recovery: nothing to replay", "applied_lsn", applied, "duration", time.Since(start))
	}
	return nil
}

// runBackground backfills the SQLite WAL into the database file every
// sqlCheckpointTick (paused while a snapshot is pinned) and takes periodic
// checkpoints.
func (d *DB) runBackground() {
	defer close(d.bgDone)
	tick := time.NewTicker(sqlCheckpointTick)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-d.bgStop:
			return
		case <-tick.C:
		}
		if d.failure() != nil {
			continue
		}
		d.checkSpace()
		if d.pins.Load() == 0 {
			d.sqlCkptMu.Lock()
			if d.pins.Load() == 0 {
				d.backfill()
			}
			d.sqlCkptMu.Unlock()
		}
		due := d.opts.CheckpointInterval > 0 && time.Since(last) >= d.opts.CheckpointInterval
		if !due {
			d.stateMu.Lock()
			gen := d.ckpt.Gen
			d.stateMu.Unlock()
			due = d.log.Current() >= gen+uint32(d.opts.CheckpointGenerations)
		}
		if due {
			if err := d.checkpoint(context.Background()); err != nil {
				d.logger.Warn("periodic checkpoint failed", "err", err)
			}
			last = time.Now()
		}
	}
}

// walRestartFrames is the SQLite WAL length, in frames, past which the
// background backfill also restarts the WAL: about journal_size_limit
// (64 MiB) of 16 KiB pages.
var walRestartFrames int64 = 64 << 20 / (16<<10 + 24) // a variable for tests

// walRestartWait bounds how long a WAL restart waits for readers (and
// holds off the applier meanwhile); walRestartEvery is the least time
// between two restarts, so that a CA whose readers keep long transactions
// stalls its writes for at most that wait every few seconds.
var (
	walRestartWait  = 100 * time.Millisecond
	walRestartEvery = 2 * time.Second
)

// backfill copies the SQLite WAL into the database file (PASSIVE: it never
// waits). Under a steady load of reads and writes the WAL is never free
// of readers at the moment a writer could start it over, so it would grow
// without bound (a gigabyte for a 35 MB database); once it is longer than
// walRestartFrames, a RESTART checkpoint waits up to walRestartWait for
// the readers of the WAL to finish, after which the next write starts the
// WAL over and SQLite cuts the file to journal_size_limit. The caller
// holds sqlCkptMu and no snapshot is pinned. At most one restart runs
// every walRestartEvery.
func (d *DB) backfill() {
	ctx := context.Background()
	_, walFrames, _, err := d.sqliteCheckpoint(ctx, "PASSIVE")
	if err != nil {
		d.logger.Warn("SQLite checkpoint failed", "err", err)
		return
	}
	if walFrames < walRestartFrames || time.Since(d.walRestarted) < walRestartEvery {
		return
	}
	d.walRestarted = time.Now()
	if _, err := d.ckConn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout=%d", walRestartWait.Milliseconds())); err != nil {
		d.logger.Warn("SQLite checkpoint failed", "err", err)
		return
	}
	defer func() {
		if _, err := d.ckConn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout=%d", sqliteBusyTimeout.Milliseconds())); err != nil {
			d.logger.Warn("SQLite busy timeout not restored", "err", err)
		}
	}()
	busy, frames, done, err := d.sqliteCheckpoint(ctx, "RESTART")
	if err != nil {
		d.logger.Warn("SQLite WAL restart failed", "err", err)
		return
	}
	d.logger.Debug("SQLite WAL restart", "busy", busy, "wal_frames", frames, "backfilled", done)
}

// sqliteCheckpoint runs PRAGMA wal_checkpoint(mode) on the checkpoint
// connection and returns SQLite's answer: whether it was blocked, the frames
// in the WAL and the frames backfilled. The caller holds sqlCkptMu.
func (d *DB) sqliteCheckpoint(ctx context.Context, mode string) (busy bool, walFrames, done int64, err error) {
	var b int64
	if err := d.ckConn.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&b, &walFrames, &done); err != nil {
		return false, 0, 0, fmt.Errorf("SQLite checkpoint (%s): %w", mode, err)
	}
	return b != 0, walFrames, done, nil
}

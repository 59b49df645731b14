package store

import (
	"context"
	"fmt"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// checkpoint makes the database durable up to the applied LSN X and writes
// the checkpoint file (X, the generation holding X+1, the last backups).
// With circular logging it then deletes the generations below that
// generation.
//
// Durability: records up to X are committed in SQLite, either already
// backfilled into the database file or in its -wal file. Both files are
// fsynced here (SQLite itself, with synchronous=NORMAL, does not fsync at
// commit); SQLite only reuses WAL space after a completed, fsynced
// backfill. Closing the descriptors used for the fsync is harmless because
// the engine runs SQLite with OFD locks.
func (d *DB) checkpoint(ctx context.Context) error {
	d.ckptMu.Lock()
	defer d.ckptMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	x := d.applied.Load()
	if err := syncFile(d.opts.DBPath + "-wal"); err != nil && !isNotExist(err) {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := syncFile(d.opts.DBPath); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	gen := d.genFor(x + 1)
	d.stateMu.Lock()
	c := Checkpoint{
		Signatures:      d.sigs,
		LSN:             x,
		Gen:             gen,
		Written:         time.Now().UTC(),
		LastFull:        copyBackup(d.lastFull),
		LastIncremental: copyBackup(d.lastIncr),
	}
	d.stateMu.Unlock()
	if err := writeCheckpoint(d.opts.CheckpointPath(), c); err != nil {
		return err
	}
	d.stateMu.Lock()
	d.ckpt = c
	d.stateMu.Unlock()
	if d.opts.CircularLogging && gen > 1 {
		if err := d.deleteCircular(gen); err != nil {
			return fmt.Errorf("checkpoint: circular logging: %w", err)
		}
	}
	return nil
}

// deleteCircular deletes the generations below gen, the checkpoint
// generation, except those a backup in progress holds (HoldLogs).
func (d *DB) deleteCircular(gen uint32) error {
	d.holds.mu.Lock()
	defer d.holds.mu.Unlock()
	through := gen - 1
	if held, ok := d.holds.lowestLocked(); ok && held <= through {
		if held == 0 {
			return nil
		}
		through = held - 1
		d.logger.Debug("circular logging keeps generations held by a backup in progress", "held_from", held, "checkpoint_gen", gen)
	}
	deleted, err := d.log.DeleteThrough(through)
	if len(deleted) > 0 {
		d.logger.Info("circular logging deleted log generations", "first", deleted[0], "last", deleted[len(deleted)-1], "count", len(deleted))
	}
	return err
}

func copyBackup(b *BackupRecord) *BackupRecord {
	if b == nil {
		return nil
	}
	c := *b
	return &c
}

// genFor returns the generation that holds, or will hold, record lsn: the
// newest generation whose first LSN is <= lsn.
func (d *DB) genFor(lsn uint64) uint32 {
	gens := d.log.Generations()
	g := gens[0].Gen
	for _, gi := range gens {
		if gi.BaseLSN <= lsn {
			g = gi.Gen
		}
	}
	return g
}

// Checkpoint takes a checkpoint now (see doc.go).
func (d *DB) Checkpoint(ctx context.Context) error {
	done, err := d.begin()
	if err != nil {
		return err
	}
	defer done()
	return d.checkpoint(ctx)
}

// CheckpointInfo returns the last checkpoint written.
func (d *DB) CheckpointInfo() Checkpoint {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	c := d.ckpt
	c.LastFull = copyBackup(c.LastFull)
	c.LastIncremental = copyBackup(c.LastIncremental)
	return c
}

// RollLog seals the current log generation (after every record appended
// before the call is durable) and starts the next. It returns the sealed
// generation's number. It blocks for at most one log fsync and one
// generation creation, and takes no context (the log's Roll cannot be
// abandoned half way).
func (d *DB) RollLog() (uint32, error) {
	done, err := d.begin()
	if err != nil {
		return 0, err
	}
	defer done()
	return d.log.Roll()
}

// Generations describes the log generations present, ascending.
func (d *DB) Generations() []wal.GenInfo { return d.log.Generations() }

// LastLSN returns the LSN of the last durable log record.
func (d *DB) LastLSN() uint64 { return d.log.LastLSN() }

// TruncateResult reports what TruncateLogs deleted. Deleted lists the
// generations removed, oldest first; Reason says in words what was done or
// why nothing was.
type TruncateResult struct {
	Deleted []uint32
	Reason  string
}

// Count returns the number of generations deleted.
func (r TruncateResult) Count() int { return len(r.Deleted) }

// TruncateLogs takes a checkpoint, then deletes, oldest first, the
// generations numbered throughGen or lower that are also strictly below the
// checkpoint generation and strictly below the lowest generation a backup
// in progress holds (HoldLogs): never the generation holding the
// checkpoint, a held generation, or a later one. The caller (the backup
// session) passes the last generation a completed backup has copied. The
// result lists exactly what was deleted, also when the deletion stopped at
// an error, and its Reason says what limited it.
func (d *DB) TruncateLogs(ctx context.Context, throughGen uint32) (TruncateResult, error) {
	done, err := d.begin()
	if err != nil {
		return TruncateResult{}, err
	}
	defer done()
	if err := d.checkpoint(ctx); err != nil {
		return TruncateResult{}, fmt.Errorf("truncate logs: %w", err)
	}
	ck := d.CheckpointInfo()
	d.holds.mu.Lock()
	defer d.holds.mu.Unlock()
	gens := d.log.Generations()
	oldest := gens[0].Gen
	// Limits in int64: a hold of generation 0 allows nothing.
	limit := int64(ck.Gen) - 1
	why := fmt.Sprintf("generation %d holds the checkpoint (LSN %d)", ck.Gen, ck.LSN)
	if held, ok := d.holds.lowestLocked(); ok && int64(held)-1 < limit {
		limit = int64(held) - 1
		why = fmt.Sprintf("generation %d is held by a backup in progress", held)
	}
	target := min(int64(throughGen), limit)
	if target < int64(oldest) {
		reason := "nothing: " + why
		if throughGen < oldest {
			reason = fmt.Sprintf("nothing: generations through %d are already gone (oldest present is %d)", throughGen, oldest)
		}
		return TruncateResult{Reason: reason}, nil
	}
	deleted, err := d.log.DeleteThrough(uint32(target))
	res := TruncateResult{Deleted: deleted}
	if len(deleted) > 0 {
		res.Reason = fmt.Sprintf("deleted %d generation(s), %d through %d", len(deleted), deleted[0], deleted[len(deleted)-1])
	} else {
		res.Reason = "nothing deleted"
	}
	if int64(throughGen) > target {
		res.Reason += fmt.Sprintf("; kept generation %d and later: %s", target+1, why)
	}
	if err != nil {
		return res, fmt.Errorf("truncate logs: %w", err)
	}
	d.logger.Info("log truncated", "deleted", len(deleted), "through", target, "checkpoint_gen", ck.Gen)
	return res, nil
}

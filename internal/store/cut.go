package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// LogCut reports what CutLogAfter did.
type LogCut struct {
	// CutResult is the log's part: the generation the log now ends in, its
	// size, the bytes cut from it and the generations moved to keepDir.
	wal.CutResult
	// Checkpoint is the checkpoint written because the old one pointed past
	// the cut; nil when the old one was kept or there was none.
	Checkpoint *Checkpoint
}

// CutLogAfter makes the live log of a closed database end right after the
// record with LSN lsn, for a point-in-time restore: after Replay stopped at
// lsn (UntilLSN or UntilTime), the log directory still holds later records
// that Open would apply. The generation that takes the next record is
// truncated after record lsn and every later generation is moved into
// keepDir, never deleted (wal.TruncateAfter gives the details, the errors
// for a cut point outside the log and the crash guarantees); Open then
// continues the same log set from lsn+1, and the chain verifies (Check).
//
// The database file must exist and must not reflect records after lsn
// (its applied_lsn at most lsn; otherwise the cut would leave the log
// behind the database, an error matching ErrLogBehind); its log-set
// signature is the one every generation must carry. When the checkpoint
// file records a checkpoint LSN after lsn, or a last backup whose LSN
// range goes past lsn, it is rewritten (temporary file, fsync, rename,
// fsync directory): checkpoint LSN the database's applied_lsn, generation
// the one holding the record after it, and without the backups that
// covered records after lsn, which no longer exist. A missing checkpoint
// stays missing (Open rebuilds it); a corrupt one or another database's is
// an error and nothing is changed.
//
// The database must be closed and the caller holds the data directory's
// lock. Calling CutLogAfter again after an interruption completes it.
func CutLogAfter(ctx context.Context, opts Options, lsn uint64, keepDir string) (LogCut, error) {
	o, err := opts.normalize()
	if err != nil {
		return LogCut{}, err
	}
	meta, err := readMetaFile(ctx, o.DBPath)
	if err != nil {
		return LogCut{}, fmt.Errorf("cut log after LSN %d: %w", lsn, err)
	}
	if meta.AppliedLSN > lsn {
		return LogCut{}, fmt.Errorf("cut log after LSN %d: the database %s is at LSN %d, so the log would end before it: %w",
			lsn, o.DBPath, meta.AppliedLSN, ErrLogBehind)
	}
	ckPath := o.CheckpointPath()
	ck, ckErr := readCheckpoint(ckPath)
	switch {
	case errors.Is(ckErr, ErrCheckpointMissing):
	case ckErr != nil:
		return LogCut{}, fmt.Errorf("cut log after LSN %d: %w", lsn, ckErr)
	default:
		if err := checkCheckpointSignatures(ckPath, ck, meta.Signatures); err != nil {
			return LogCut{}, fmt.Errorf("cut log after LSN %d: %w", lsn, err)
		}
	}
	res, err := wal.TruncateAfter(ctx, o.LogDir, o.LogBase, meta.Log, lsn, keepDir)
	out := LogCut{CutResult: res}
	if err != nil {
		var ce *wal.CorruptError
		if errors.Is(err, wal.ErrSignature) && errors.As(err, &ce) {
			se := &SignatureError{Which: "log", Path: ce.Path, Gen: ce.Gen, Want: meta.Log, Err: err}
			if h, herr := wal.ReadHeader(ce.Path); herr == nil {
				se.Got = h.Signature
			}
			err = se
		}
		return out, fmt.Errorf("cut log after LSN %d: %w", lsn, err)
	}
	logCut(o.Logger, lsn, o.LogDir, keepDir, res)
	if ckErr != nil || !pastCut(ck, lsn) {
		return out, nil
	}
	gens, err := wal.ScanDir(ctx, o.LogDir, o.LogBase, meta.Log)
	if err != nil {
		return out, fmt.Errorf("cut log after LSN %d: read the cut log: %w", lsn, err)
	}
	nc := Checkpoint{
		Signatures:      meta.Signatures,
		LSN:             min(ck.LSN, meta.AppliedLSN),
		Written:         time.Now().UTC(),
		LastFull:        backupBefore(ck.LastFull, lsn),
		LastIncremental: backupBefore(ck.LastIncremental, lsn),
	}
	nc.Gen = gens[0].Gen
	for _, g := range gens {
		if g.BaseLSN <= nc.LSN+1 {
			nc.Gen = g.Gen
		}
	}
	if err := writeCheckpoint(ckPath, nc); err != nil {
		return out, fmt.Errorf("cut log after LSN %d: %w", lsn, err)
	}
	out.Checkpoint = &nc
	o.Logger.Info("checkpoint rewritten for the cut log", "path", ckPath,
		"old_lsn", ck.LSN, "old_gen", ck.Gen, "lsn", nc.LSN, "gen", nc.Gen)
	return out, nil
}

// pastCut reports whether checkpoint c refers to records after lsn.
func pastCut(c Checkpoint, lsn uint64) bool {
	return c.LSN > lsn || backupBefore(c.LastFull, lsn) != c.LastFull ||
		backupBefore(c.LastIncremental, lsn) != c.LastIncremental
}

// backupBefore returns b when it covers no record after lsn, else nil.
func backupBefore(b *BackupRecord, lsn uint64) *BackupRecord {
	if b == nil || b.LastLSN > lsn {
		return nil
	}
	return b
}

// logCut logs what a cut did.
func logCut(logger *slog.Logger, lsn uint64, dir, keepDir string, r wal.CutResult) {
	if r.Cut == 0 && len(r.Moved) == 0 {
		logger.Info("log already ends at the cut point", "lsn", lsn, "dir", dir, "gen", r.Gen)
		return
	}
	args := []any{"lsn", lsn, "dir", dir, "gen", r.Gen, "size", r.Size, "bytes_cut", r.Cut}
	if len(r.Moved) > 0 {
		args = append(args, "moved_first", r.Moved[0], "moved_last", r.Moved[len(r.Moved)-1], "keep_dir", keepDir)
	}
	logger.Info("log cut after LSN", args...)
}

// readMetaFile reads the meta row of a closed database file. A missing file
// is ErrNoDatabase.
func readMetaFile(ctx context.Context, path string) (Meta, error) {
	if _, err := os.Stat(path); err != nil {
		if isNotExist(err) {
			return Meta{}, fmt.Errorf("%s: %w", path, ErrNoDatabase)
		}
		return Meta{}, err
	}
	pool, err := openPool(path, connRead, 1)
	if err != nil {
		return Meta{}, err
	}
	defer pool.Close()
	m, err := readMeta(ctx, pool)
	if err != nil {
		return Meta{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

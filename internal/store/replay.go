package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// ReplayOptions configure Replay, the hard-recovery entry point.
type ReplayOptions struct {
	DBPath string // a closed database file (a restored snapshot)
	// LogDirs are directories of log generations (a backup set's, then the
	// live log directory). Together they must hold a contiguous run of
	// generations; a generation present in several directories must be
	// byte-identical in each (ErrLogConflict) and is read from the first.
	LogDirs []string
	LogBase string // "" means wal.DefaultBase
	// Signature is the log-set signature the logs and the database must
	// have; zero means the database's own.
	Signature wal.Signature
	// FromLSN is the first LSN to apply; 0 means the database's
	// applied_lsn+1. Records at or below applied_lsn are skipped in any case.
	FromLSN uint64
	// UntilLSN, when not 0, is the last LSN applied.
	UntilLSN uint64
	// UntilTime, when not zero, stops before the first record appended
	// after it.
	UntilTime time.Time
	Logger    *slog.Logger
}

// ReplayResult reports what Replay applied.
type ReplayResult struct {
	FirstLSN, LastLSN uint64    // range applied; 0,0 if nothing
	Records           int       // records applied
	Skipped           int       // records read but already reflected by the database
	FirstGen, LastGen uint32    // generations of the first and last record applied
	LastTime          time.Time // append time of the last record applied
	AppliedLSN        uint64    // the database's applied_lsn afterwards
	Stopped           bool      // replay ended at UntilLSN or UntilTime, not at the end of the logs
}

// logSource is one generation chosen for a replay and the directory it is
// read from.
type logSource struct {
	dir  int
	info wal.GenInfo
}

// Replay applies log records to a closed database file: the engine part of
// hard recovery. It verifies every generation in opts.LogDirs, checks that
// they form one contiguous chain of the database's log set, and applies the
// records after the database's applied_lsn (or from FromLSN) up to UntilLSN
// or UntilTime, in transactions that advance applied_lsn, so an interrupted
// Replay resumes where it stopped. The database may then be opened with
// Open; see doc.go for what the live log directory must hold by then.
func Replay(ctx context.Context, opts ReplayOptions) (ReplayResult, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := opts.LogBase
	if base == "" {
		base = wal.DefaultBase
	}
	if _, err := os.Stat(opts.DBPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ReplayResult{}, fmt.Errorf("replay: %s: %w", opts.DBPath, ErrNoDatabase)
		}
		return ReplayResult{}, fmt.Errorf("replay: %w", err)
	}
	pool, err := openPool(opts.DBPath, connWrite, 1)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: %w", err)
	}
	defer pool.Close()
	ac, err := newApplyConn(ctx, pool)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: %w", err)
	}
	defer ac.close()
	meta, err := readMeta(ctx, ac.conn)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: %s: %w", opts.DBPath, err)
	}
	sig := opts.Signature
	if sig == (wal.Signature{}) {
		sig = meta.Log
	}
	if sig != meta.Log {
		return ReplayResult{}, fmt.Errorf("replay: %w", &SignatureError{Which: "database", Path: opts.DBPath, Want: sig, Got: meta.Log})
	}
	from := opts.FromLSN
	if from == 0 {
		from = meta.AppliedLSN + 1
	}
	if from > meta.AppliedLSN+1 {
		return ReplayResult{}, fmt.Errorf("replay: from LSN %d leaves a gap after the database's applied LSN %d: %w",
			from, meta.AppliedLSN, ErrInvalidArgument)
	}
	read, err := planLogs(ctx, opts.LogDirs, base, sig, from)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: %w", err)
	}
	start := time.Now()
	r := newReplayer(ac, meta.AppliedLSN, opts.UntilLSN, opts.UntilTime)
	err = read(r.add)
	stopped := errors.Is(err, errStopReplay)
	err = r.finish(err)
	res := r.res
	res.AppliedLSN = r.applied
	res.Stopped = stopped
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	// Make the result durable before anyone relies on it.
	var b int64
	var x, y int64
	if err := ac.conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&b, &x, &y); err != nil {
		return res, fmt.Errorf("replay: checkpoint: %w", err)
	}
	if err := syncFile(opts.DBPath); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	logger.Info("hard recovery replayed log records", "records", res.Records, "skipped", res.Skipped,
		"first_lsn", res.FirstLSN, "last_lsn", res.LastLSN, "first_gen", res.FirstGen, "last_gen", res.LastGen,
		"stopped_at_bound", stopped, "duration", time.Since(start))
	return res, nil
}

// planLogs checks that the generations in dirs can deliver the records
// from LSN from on and returns the function that reads them. With one
// directory the check reads only the oldest header, and wal.ReadDir
// verifies everything as it reads; with several, every generation is
// verified first (gatherLogs) so that overlaps and the chain between
// directories can be checked before anything is applied.
func planLogs(ctx context.Context, dirs []string, base string, sig wal.Signature, from uint64) (func(func(wal.Record) error) error, error) {
	if len(dirs) == 1 {
		dir := dirs[0]
		oldest, err := oldestHeader(dir, base)
		if err != nil {
			return nil, err
		}
		if from < oldest.FirstLSN {
			return nil, &MissingLogError{Dir: dir, Gen: oldest.Gen - 1, NeedLSN: from, Oldest: oldest.Gen,
				Reason: fmt.Sprintf("the replay starts at LSN %d and the oldest generation found, %d, starts at LSN %d", from, oldest.Gen, oldest.FirstLSN)}
		}
		return func(fn func(wal.Record) error) error {
			err := wal.ReadDir(ctx, dir, base, sig, from, fn)
			var ce *wal.CorruptError
			if errors.Is(err, wal.ErrMissingGeneration) && errors.As(err, &ce) {
				return &MissingLogError{Dir: dir, Gen: ce.Gen, Oldest: oldest.Gen, Reason: "generations are not contiguous", Err: err}
			}
			return err
		}, nil
	}
	srcs, err := gatherLogs(ctx, dirs, base, sig)
	if err != nil {
		return nil, err
	}
	if len(srcs) == 0 {
		return nil, &MissingLogError{Dir: strings.Join(dirs, ", "), NeedLSN: from, Reason: "no log generations"}
	}
	if first := srcs[0].info; from < first.BaseLSN {
		return nil, &MissingLogError{Dir: dirs[srcs[0].dir], Gen: first.Gen - 1, NeedLSN: from, Oldest: first.Gen,
			Reason: fmt.Sprintf("the replay starts at LSN %d and the oldest generation found, %d, starts at LSN %d", from, first.Gen, first.BaseLSN)}
	}
	return func(fn func(wal.Record) error) error {
		return readSources(ctx, dirs, base, sig, srcs, from, fn)
	}, nil
}

// oldestHeader returns the header of the lowest-numbered generation in dir.
func oldestHeader(dir, base string) (wal.Header, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return wal.Header{}, fmt.Errorf("log directory: %w", err)
	}
	var oldest uint32
	var path string
	for _, e := range ents {
		if g, ok := wal.ParseFileName(base, e.Name()); ok && e.Type().IsRegular() && (oldest == 0 || g < oldest) {
			oldest, path = g, filepath.Join(dir, e.Name())
		}
	}
	if oldest == 0 {
		return wal.Header{}, &MissingLogError{Dir: dir, Reason: "no log generations"}
	}
	return wal.ReadHeader(path)
}

// gatherLogs verifies the generations of every directory and chooses, for
// each generation number, the first directory holding it. The result is
// ascending and contiguous.
func gatherLogs(ctx context.Context, dirs []string, base string, sig wal.Signature) ([]logSource, error) {
	chosen := map[uint32]logSource{}
	for i, dir := range dirs {
		infos, err := wal.ScanDir(ctx, dir, base, sig)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // a directory without generations contributes nothing
			}
			return nil, fmt.Errorf("log directory %s: %w", dir, err)
		}
		for _, g := range infos {
			prev, ok := chosen[g.Gen]
			if !ok {
				chosen[g.Gen] = logSource{dir: i, info: g}
				continue
			}
			if err := sameGeneration(prev.info, g); err != nil {
				return nil, err
			}
		}
	}
	srcs := make([]logSource, 0, len(chosen))
	for _, s := range chosen {
		srcs = append(srcs, s)
	}
	slices.SortFunc(srcs, func(a, b logSource) int { return int(int64(a.info.Gen) - int64(b.info.Gen)) })
	for i := 1; i < len(srcs); i++ {
		p, g := srcs[i-1].info, srcs[i].info
		if g.Gen != p.Gen+1 {
			return nil, &MissingLogError{Dir: dirs[srcs[i].dir], Gen: p.Gen + 1, Oldest: srcs[0].info.Gen,
				NeedLSN: p.LastLSN + 1, Reason: fmt.Sprintf("no directory holds it (generations %d and %d are present)", p.Gen, g.Gen)}
		}
		if srcs[i].dir != srcs[i-1].dir {
			// The chain between directories is not checked by reading one
			// directory; check it here from the header.
			h, err := wal.ReadHeader(g.Path)
			if err != nil {
				return nil, err
			}
			if !h.PrevCreated.Equal(p.Created) || h.PrevChecksum != p.Checksum || h.FirstLSN != nextAfter(p) {
				return nil, &wal.CorruptError{Path: g.Path, Gen: g.Gen, Offset: 40, Err: wal.ErrChain,
					Reason: fmt.Sprintf("does not continue generation %d in %s", p.Gen, p.Path)}
			}
		}
	}
	return srcs, nil
}

// nextAfter is the first LSN of the generation after g.
func nextAfter(g wal.GenInfo) uint64 {
	if g.LastLSN == 0 {
		return g.BaseLSN
	}
	return g.LastLSN + 1
}

// sameGeneration checks that two copies of a generation are identical, byte
// for byte over their verified length.
func sameGeneration(a, b wal.GenInfo) error {
	conflict := func(why string) error {
		return fmt.Errorf("generation %d: %s and %s differ (%s): %w", a.Gen, a.Path, b.Path, why, ErrLogConflict)
	}
	if a.Size != b.Size || a.Checksum != b.Checksum || !a.Created.Equal(b.Created) || a.BaseLSN != b.BaseLSN {
		return conflict("size, checksum, creation time or first LSN")
	}
	x, err := os.ReadFile(a.Path)
	if err != nil {
		return err
	}
	y, err := os.ReadFile(b.Path)
	if err != nil {
		return err
	}
	if int64(len(x)) < a.Size || int64(len(y)) < b.Size || !bytes.Equal(x[:a.Size], y[:b.Size]) {
		return conflict("contents")
	}
	return nil
}

// readSources reads records >= from out of the chosen generations, one run
// of consecutive generations from the same directory at a time.
func readSources(ctx context.Context, dirs []string, base string, sig wal.Signature, srcs []logSource, from uint64, fn func(wal.Record) error) error {
	for i := 0; i < len(srcs); {
		j := i
		for j+1 < len(srcs) && srcs[j+1].dir == srcs[i].dir {
			j++
		}
		lastGen := srcs[j].info.Gen
		if next := nextAfter(srcs[j].info); next > from {
			runFrom := max(from, srcs[i].info.BaseLSN)
			err := wal.ReadDir(ctx, dirs[srcs[i].dir], base, sig, runFrom, func(rec wal.Record) error {
				if rec.Gen > lastGen {
					return errRunDone
				}
				return fn(rec)
			})
			if err != nil && !errors.Is(err, errRunDone) {
				return err
			}
			from = next
		}
		i = j + 1
	}
	return nil
}

// errRunDone ends the reading of one directory's run of generations.
var errRunDone = errors.New("run done")

package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// trialOutcome is what the trial restore did and found.
type trialOutcome struct {
	copied    int64
	replay    store.ReplayResult
	integrity []string
	dump      *store.Dump
	problems  []*Problem
	// stage is the last stage reached: "copy", "replay", "integrity",
	// "dump" or "done".
	stage string
	// cleanup is the error removing the temporary directory gave, if any.
	cleanup error
}

// copyChunk is how much of the snapshot one copy step moves; the context
// is checked between steps.
const copyChunk = 64 << 20

// trialDBName is the name of the snapshot's copy in the temporary
// directory (the set's name may hold characters a SQLite file name must
// not).
const trialDBName = "trial.db"

// trialInput is what the trial restore needs to know of the set, copied
// out of the set's description before the file checks run concurrently.
type trialInput struct {
	dbPath  string        // the snapshot file
	dbRel   string        // its path in the set
	logDir  string        // the set's DataBase directory
	base    string        // log file name base
	logSig  wal.Signature // the log set
	tempDir string        // parent of the temporary directory; "" = the system's
}

// trialInputOf copies what the trial restore needs out of info.
func trialInputOf(info *setInfo, tempDir string) trialInput {
	return trialInput{dbPath: info.local(info.dbRel), dbRel: info.dbRel, logDir: filepath.Join(info.dir, backupset.DatabaseDir),
		base: info.base, logSig: info.logSig, tempDir: tempDir}
}

// runTrial restores the set into a temporary directory and checks the
// result: it copies the database snapshot, replays the set's log records
// after the snapshot's LSN onto the copy with store.Replay, runs SQLite's
// integrity_check (store.Check) and reads the restored database
// (store.DumpFile) for the CA checks. It reads the set's files and never
// writes into the set. The temporary directory is removed before runTrial
// returns, whatever happened. The caller compares the replay's result
// with the set's description.
func runTrial(ctx context.Context, in trialInput, logger *slog.Logger) (out *trialOutcome) {
	out = &trialOutcome{stage: "copy"}
	fail := func(check, format string, args ...any) *trialOutcome {
		out.problems = append(out.problems, problemf(check, "", ErrTrialRestore, format, args...))
		return out
	}
	tmp, err := os.MkdirTemp(in.tempDir, "certsrv-verify-")
	if err != nil {
		return fail(CheckTrial, "make a temporary directory: %v", err)
	}
	defer func() { out.cleanup = os.RemoveAll(tmp) }()
	dst := filepath.Join(tmp, trialDBName)
	n, err := copySnapshot(ctx, in.dbPath, dst)
	out.copied = n
	if err != nil {
		if errors.Is(err, ErrChanged) {
			out.problems = append(out.problems, &Problem{Check: CheckTrial, Path: in.dbRel, Err: err})
			return out
		}
		return fail(CheckTrial, "copy %s into %s: %v", in.dbRel, tmp, err)
	}
	logger.Debug("trial restore: snapshot copied", "bytes", n, "dir", tmp)

	out.stage = "replay"
	res, err := store.Replay(ctx, store.ReplayOptions{
		DBPath:    dst,
		LogDirs:   []string{in.logDir},
		LogBase:   in.base,
		Signature: in.logSig,
		Logger:    logger,
	})
	out.replay = res
	if err != nil {
		out.problems = append(out.problems, &Problem{Check: CheckTrial, Err: fmt.Errorf("%w: %w", ErrTrialRestore, err)})
		return out
	}
	logger.Debug("trial restore: log records replayed", "records", res.Records, "last_lsn", res.AppliedLSN)

	out.stage = "integrity"
	// Check also inspects a checkpoint and a log directory; the trial has
	// neither (the directories named do not exist), so only the
	// database's own findings count.
	crep, err := store.Check(ctx, store.Options{Layout: store.Layout{
		DBPath: dst, LogDir: filepath.Join(tmp, "no-log"), SysDir: filepath.Join(tmp, "no-sys"), LogBase: in.base,
	}})
	if err != nil {
		return fail(CheckIntegrity, "integrity check: %v", err)
	}
	out.integrity = crep.Integrity
	for _, p := range crep.Problems {
		if p.Component == "database" {
			out.problems = append(out.problems, &Problem{Check: CheckIntegrity, Err: fmt.Errorf("%w: %w", ErrIntegrity, p.Err)})
		}
	}
	if len(crep.Integrity) != 1 || crep.Integrity[0] != "ok" {
		if len(out.problems) == 0 {
			out.problems = append(out.problems, problemf(CheckIntegrity, "", ErrIntegrity, "%s", strings.Join(crep.Integrity, "; ")))
		}
		return out
	}

	out.stage = "dump"
	d, err := store.DumpFile(ctx, dst)
	if err != nil {
		out.problems = append(out.problems, &Problem{Check: CheckTrial, Err: fmt.Errorf("%w: read the restored database: %w", ErrTrialRestore, err)})
		return out
	}
	out.dump = d
	out.stage = "done"
	return out
}

// copySnapshot copies the file src to dst, a new file, in steps that the
// kernel may do without passing the bytes through user space
// (copy_file_range), and checks that src did not change meanwhile
// (ErrChanged). dst is not synced: it is a scratch copy.
func copySnapshot(ctx context.Context, src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	before, err := in.Stat()
	if err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			out.Close()
			return n, err
		}
		k, err := io.CopyN(out, in, copyChunk)
		n += k
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out.Close()
			return n, err
		}
	}
	if err := out.Close(); err != nil {
		return n, err
	}
	after, err := os.Stat(src)
	if err != nil {
		return n, err
	}
	if n != before.Size() || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return n, fmt.Errorf("%w: the database snapshot changed while it was copied (%d bytes before, %d after, %d copied)",
			ErrChanged, before.Size(), after.Size(), n)
	}
	return n, nil
}

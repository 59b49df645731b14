package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

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
	// dbPath is the restored copy in the temporary directory, which stays
	// until remove: the CA checks read its certificates one at a time.
	dbPath string
	// remove removes the temporary directory; nil when none was made.
	remove func() error
	// env, when not nil, is a failure of the machine running the trial
	// (see environmental; Dir is left for the caller to fill): the trial
	// found nothing about the set, and problems holds none of it.
	env *EnvironmentError
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
	// progress hears of each stage (nil: nothing does).
	progress *Progress
}

// trialInputOf copies what the trial restore needs out of info.
func trialInputOf(info *setInfo, tempDir string) trialInput {
	return trialInput{dbPath: info.local(info.dbRel), dbRel: info.dbRel, logDir: filepath.Join(info.dir, backupset.DatabaseDir),
		base: info.base, logSig: info.logSig, tempDir: tempDir, progress: info.progress}
}

// runTrial restores the set into a temporary directory and checks the
// result: it copies the database snapshot, replays the set's log records
// after the snapshot's LSN onto the copy with store.Replay, runs SQLite's
// integrity_check (store.Check) and reads the restored database without
// each request's bulk (store.DumpFileCompact) for the CA checks, which read the
// certificates one at a time from out.dbPath. It reads the set's files and
// never writes into the set. The caller removes the temporary directory
// with out.remove, whatever happened. The caller compares the replay's result
// with the set's description.
//
// A failure of the machine rather than of the set (environmental: the
// temporary directory cannot be made, written or grown, the context
// ended) ends the trial with out.env set and no problem: it is no verdict
// on the set.
func runTrial(ctx context.Context, in trialInput, logger *slog.Logger) (out *trialOutcome) {
	out = &trialOutcome{stage: "copy"}
	fail := func(check, format string, args ...any) *trialOutcome {
		out.problems = append(out.problems, problemf(check, "", ErrTrialRestore, format, args...))
		return out
	}
	envFail := func(op, path string, err error) *trialOutcome {
		out.env = &EnvironmentError{Op: op, Path: path, Err: err}
		return out
	}
	parent := in.tempDir
	if parent == "" {
		parent = os.TempDir()
	}
	tmp, err := os.MkdirTemp(parent, "certsrv-verify-")
	if err != nil {
		// Whatever the reason (absent, not a directory, not writable, full),
		// the temporary directory is the machine's, not the set's.
		return envFail("trial restore: make a temporary directory under "+parent, parent, err)
	}
	out.remove = func() error { return os.RemoveAll(tmp) }
	dst := filepath.Join(tmp, trialDBName)
	out.dbPath = dst
	in.progress.setStage(StageCopy)
	n, err := copySnapshot(ctx, in.dbPath, dst)
	out.copied = n
	if err != nil {
		switch {
		case errors.Is(err, ErrChanged):
			out.problems = append(out.problems, &Problem{Check: CheckTrial, Path: in.dbRel, Err: err})
			return out
		case environmental(err, tmp):
			return envFail("trial restore: copy "+in.dbRel+" into "+tmp, dst, err)
		}
		return fail(CheckTrial, "copy %s into %s: %v", in.dbRel, tmp, err)
	}
	logger.Debug("trial restore: snapshot copied", "bytes", n, "dir", tmp)

	out.stage = "replay"
	in.progress.setStage(StageReplay)
	res, err := store.Replay(ctx, store.ReplayOptions{
		DBPath:    dst,
		LogDirs:   []string{in.logDir},
		LogBase:   in.base,
		Signature: in.logSig,
		Logger:    logger,
	})
	out.replay = res
	if err != nil {
		if environmental(err, tmp) {
			return envFail("trial restore: replay the set's log records onto the copy in "+tmp, dst, err)
		}
		out.problems = append(out.problems, &Problem{Check: CheckTrial, Err: fmt.Errorf("%w: %w", ErrTrialRestore, err)})
		return out
	}
	logger.Debug("trial restore: log records replayed", "records", res.Records, "last_lsn", res.AppliedLSN)

	out.stage = "integrity"
	in.progress.setStage(StageIntegrity)
	// Check also inspects a checkpoint and a log directory; the trial has
	// neither (the directories named do not exist), so only the
	// database's own findings count.
	crep, err := store.Check(ctx, store.Options{Layout: store.Layout{
		DBPath: dst, LogDir: filepath.Join(tmp, "no-log"), SysDir: filepath.Join(tmp, "no-sys"), LogBase: in.base,
	}})
	if err != nil {
		if environmental(err, tmp) {
			return envFail("trial restore: check the restored copy in "+tmp, dst, err)
		}
		return fail(CheckIntegrity, "integrity check: %v", err)
	}
	out.integrity = crep.Integrity
	for _, p := range crep.Problems {
		if p.Component == "database" && environmental(p.Err, tmp) {
			return envFail("trial restore: check the restored copy in "+tmp, dst, p.Err)
		}
	}
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
	in.progress.setStage(StageDump)
	d, err := store.DumpFileCompact(ctx, dst)
	if err != nil {
		if environmental(err, tmp) {
			return envFail("trial restore: read the restored copy in "+tmp, dst, err)
		}
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

// environmental reports whether err, met by the trial restore working in
// its temporary directory tmp, is a failure of the machine running the
// verification rather than a finding about the set. It is when
//   - the context ended;
//   - a file operation on a path inside tmp failed (the set's own files
//     lie outside tmp: not being able to read them is a finding);
//   - the system refused room or resources: ENOSPC, EDQUOT, EFBIG, EROFS,
//     ENOMEM, EMFILE, ENFILE (the set is only ever read, so these come from
//     the copy in tmp);
//   - SQLite, which only ever opens the copy in tmp, could not open, lock,
//     write, grow or allocate it: SQLITE_CANTOPEN, SQLITE_FULL,
//     SQLITE_READONLY, SQLITE_PERM, SQLITE_NOMEM, SQLITE_NOLFS, an I/O
//     error other than a short read (which a truncated file gives), or the
//     store could not enable its file locking (store.ErrOFDLocking).
//
// Everything else, in particular SQLite finding the copy corrupt or not a
// database, or the replay refusing a log record, is a finding about the
// set.
func environmental(err error, tmp string) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, store.ErrOFDLocking) {
		return true
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && inside(pe.Path, tmp) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG, syscall.EROFS,
		syscall.ENOMEM, syscall.EMFILE, syscall.ENFILE} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch code := se.Code(); code & 0xff {
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM,
			sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_NOLFS:
			return true
		case sqlite3.SQLITE_IOERR:
			return code != sqlite3.SQLITE_IOERR_SHORT_READ
		}
	}
	return false
}

// inside reports whether the local path p is dir or lies under it.
func inside(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

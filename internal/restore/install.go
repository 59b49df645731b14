package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// Where the generation recovery ends in comes from (InstallPlan.StopFrom).
const (
	stopFromLog    = "log"    // the live file stays in place, whole
	stopFromBackup = "backup" // copied (or cut) from the backup log directory
	stopFromLive   = "live"   // cut from the live file after it was set aside
)

// InstallPlan is how recovery brings the log directory to the recovered
// position LastLSN (doc.go, "The live log after recovery"). It is computed
// once, right after the replay and before anything in the log directory
// changes, and kept in the record, so a resumed recovery carries out the
// same plan.
type InstallPlan struct {
	// StopGen is the generation the log ends in: the newest generation of
	// the replay's sources whose first LSN is at most LastLSN+1.
	StopGen uint32 `json:"stop_generation"`
	// StopFrom says where StopGen's content comes from: "log" (kept in
	// place), "backup" or "live" (the set-aside live file).
	StopFrom string `json:"stop_source"`
	// KeepBytes is how many bytes of StopGen's source the log directory
	// gets: its header and the records up to LastLSN.
	KeepBytes int64 `json:"keep_bytes"`
	// FirstGen is the oldest generation the log directory keeps; every
	// generation from FirstGen to StopGen-1 is a live file kept in place.
	FirstGen uint32 `json:"first_generation"`
	// SetAside lists the files moved into the set-aside directory: every
	// other generation file of the log base in the log directory (later
	// ones, another log set's, ones that differ from the backup's) and the
	// old checkpoint file.
	SetAside []string `json:"set_aside"`
}

// planInstall computes the InstallPlan for a replay that ended at lsn e.
func planInstall(ctx context.Context, rec *Record, in *inputs, e uint64) (*InstallPlan, error) {
	type source struct {
		info wal.GenInfo
		dir  string
		live bool
	}
	srcs := map[uint32]source{}
	for _, g := range in.backup {
		srcs[g.Gen] = source{info: g, dir: rec.BackupLogDir}
	}
	high := in.backup[len(in.backup)-1].Gen
	if in.caught {
		for _, g := range in.live.gens {
			if g.Gen > high {
				srcs[g.Gen] = source{info: g, dir: rec.LogDir, live: true}
			}
		}
	}
	var stop uint32
	for g, s := range srcs {
		if s.info.BaseLSN <= e+1 && g > stop {
			stop = g
		}
	}
	if stop == 0 {
		return nil, &LogError{Dir: rec.BackupLogDir, Err: ErrLogInstall, Reason: fmt.Sprintf("no generation starts at or before LSN %d", e+1)}
	}
	src := srcs[stop]
	whole := endLSN(src.info) == e
	plan := &InstallPlan{StopGen: stop, KeepBytes: src.info.Size}
	if !whole {
		n, err := keepBytes(ctx, src.dir, rec.LogBase, in.sig, src.info, e)
		if err != nil {
			return nil, err
		}
		plan.KeepBytes = n
	}

	// kept: live generations that may stay where they are.
	kept := map[uint32]bool{}
	if in.live.err == nil && len(in.live.gens) > 0 && in.live.gens[0].Signature == in.sig {
		newest := in.live.gens[len(in.live.gens)-1].Gen
		low := in.backup[0]
		lowChains := false
		for _, g := range in.live.gens {
			switch {
			case g.Gen == low.Gen && sameGen(g, low):
				lowChains = true
			case g.Gen == low.Gen-1:
				if h, err := wal.ReadHeader(low.Path); err == nil && continues(h, g) {
					lowChains = true
				}
			}
		}
		for _, g := range in.live.gens {
			if g.Gen > stop {
				continue
			}
			if fi, err := os.Stat(g.Path); err != nil || (fi.Size() != g.Size && g.Gen != newest) {
				continue
			}
			i, inBackup := in.byGen[g.Gen]
			switch {
			case inBackup:
				kept[g.Gen] = sameGen(g, in.backup[i])
			case g.Gen > high:
				kept[g.Gen] = in.caught
			default: // older than the backup
				kept[g.Gen] = lowChains
			}
		}
	}
	switch {
	case kept[stop] && whole:
		plan.StopFrom = stopFromLog
	case stop <= high:
		plan.StopFrom = stopFromBackup
	default:
		plan.StopFrom = stopFromLive
	}
	plan.FirstGen = stop
	for plan.FirstGen > 1 && kept[plan.FirstGen-1] {
		plan.FirstGen--
	}
	ents, err := os.ReadDir(rec.LogDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, &LogError{Dir: rec.LogDir, Err: ErrLogInstall, Reason: "cannot list the log directory", Cause: err}
	}
	for _, ent := range ents {
		g, ok := wal.ParseFileName(rec.LogBase, ent.Name())
		if !ok {
			continue
		}
		keep := (g >= plan.FirstGen && g < stop) || (g == stop && plan.StopFrom == stopFromLog)
		if !keep {
			plan.SetAside = append(plan.SetAside, filepath.Join(rec.LogDir, ent.Name()))
		}
	}
	ck := store.Layout{SysDir: rec.CheckpointDir, LogBase: rec.LogBase}.CheckpointPath()
	if _, err := os.Lstat(ck); err == nil {
		plan.SetAside = append(plan.SetAside, ck)
	}
	slices.Sort(plan.SetAside)
	return plan, nil
}

// keepBytes returns the size of generation g's header and of its records up
// to LSN e, read (and verified) from dir.
func keepBytes(ctx context.Context, dir, base string, sig wal.Signature, g wal.GenInfo, e uint64) (int64, error) {
	n := int64(wal.HeaderSize)
	if g.BaseLSN > e {
		return n, nil
	}
	errDone := errors.New("done")
	err := wal.ReadDir(ctx, dir, base, sig, g.BaseLSN, func(r wal.Record) error {
		if r.Gen != g.Gen || r.LSN > e {
			return errDone
		}
		n += int64(wal.RecordHeaderSize + len(r.Payload))
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		return 0, &LogError{Dir: dir, Gen: g.Gen, Err: ErrLogInstall, Reason: fmt.Sprintf("read the records up to LSN %d", e), Cause: err}
	}
	return n, nil
}

// install carries out the plan: set aside, then write the generation the
// log ends in, then verify the log directory. Every step can be repeated:
// a file already set aside is not moved again, the last generation is
// rewritten whole.
func (r *recovery) install(ctx context.Context) error {
	rec := r.rec
	plan := rec.Recovery.Plan
	sa := r.setAsideDir()
	for _, p := range plan.SetAside {
		dst := r.setAsidePath(p)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := moveFile(p, dst); err != nil {
			return &LogError{Dir: filepath.Dir(p), Err: ErrLogInstall, Reason: "set aside " + filepath.Base(p), Cause: err}
		}
		r.logger.Info("set aside", "file", p, "to", dst)
	}
	if err := os.MkdirAll(rec.LogDir, 0o700); err != nil {
		return &LogError{Dir: rec.LogDir, Err: ErrLogInstall, Reason: "create the log directory", Cause: err}
	}
	name := wal.FileName(rec.LogBase, plan.StopGen)
	dst := filepath.Join(rec.LogDir, name)
	var src string
	switch plan.StopFrom {
	case stopFromBackup:
		src = filepath.Join(rec.BackupLogDir, name)
	case stopFromLive:
		src = filepath.Join(sa, "log", name)
	}
	if src != "" {
		if err := writePrefix(dst, src, plan.KeepBytes); err != nil {
			return &LogError{Dir: rec.LogDir, Gen: plan.StopGen, Err: ErrLogInstall, Reason: "write the last generation", Cause: err}
		}
		if _, err := wal.VerifyGeneration(dst, nil); err != nil {
			return &LogError{Dir: rec.LogDir, Gen: plan.StopGen, Err: ErrLogInstall, Reason: "the written generation does not verify", Cause: err}
		}
	}
	sig, err := parseSig(rec.Recovery.LogSignature)
	if err != nil {
		return err
	}
	gens, err := wal.ScanDir(ctx, rec.LogDir, rec.LogBase, sig)
	if err != nil {
		return &LogError{Dir: rec.LogDir, Err: ErrLogInstall, Reason: "the rebuilt log directory does not verify", Cause: err}
	}
	first, last := gens[0], gens[len(gens)-1]
	if first.Gen != plan.FirstGen || last.Gen != plan.StopGen || endLSN(last) != rec.Recovery.LastLSN {
		return &LogError{Dir: rec.LogDir, Err: ErrLogInstall, Reason: fmt.Sprintf(
			"the rebuilt log holds generations %d..%d ending at LSN %d; the plan wants %d..%d ending at LSN %d",
			first.Gen, last.Gen, endLSN(last), plan.FirstGen, plan.StopGen, rec.Recovery.LastLSN)}
	}
	return nil
}

// setAsidePath is where a file of the plan's SetAside list goes: a
// subdirectory "log" for log generations and "sys" for the checkpoint.
func (r *recovery) setAsidePath(p string) string {
	sub := "sys"
	if filepath.Dir(p) == filepath.Clean(r.rec.LogDir) {
		sub = "log"
	}
	return filepath.Join(r.setAsideDir(), sub, filepath.Base(p))
}

// writePrefix replaces dst, durably (fsutil.WriteAtomic), with the first n
// bytes of src.
func writePrefix(dst, src string, n int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return fsutil.WriteAtomic(dst, 0o600, func(w io.Writer) error {
		got, err := io.Copy(w, io.LimitReader(in, n))
		if err == nil && got != n {
			err = fmt.Errorf("%s holds %d bytes, %d needed", src, got, n)
		}
		return err
	})
}

// moveFile moves src to dst (creating dst's directory), durably: a rename,
// or across file systems a durable copy followed by the removal of src.
// Both directories are fsynced, so after a crash the file is in one place
// or, after a copy, in both; never in neither.
func moveFile(src, dst string) error {
	if err := mkdirDurable(filepath.Dir(dst)); err != nil {
		return err
	}
	err := os.Rename(src, dst)
	if errors.Is(err, syscall.EXDEV) {
		fi, serr := os.Stat(src)
		if serr != nil {
			return serr
		}
		if _, err := fsutil.CopyFile(dst, src, fi.Mode().Perm()); err != nil {
			return err
		}
		err = os.Remove(src)
	}
	if err != nil {
		return err
	}
	if err := fsutil.SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(src))
}

// mkdirDurable creates dir and its missing parents (mode 0700) and fsyncs
// the parent of every directory it created.
func mkdirDurable(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	}
	if err := mkdirDurable(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(dir))
}

// within reports whether p lies strictly inside root.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// removeAll removes a directory of the restore's own making, if it
// exists, and fsyncs its parent.
func removeAll(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(dir))
}

// makeCredential makes a fresh admin trust anchor, server TLS certificate
// and admin credential for a CA restored on a new host (SPEC §9).
func makeCredential(ctx context.Context, dir datadir.Dir, db *store.DB) error {
	return service.MakeAdminCredential(ctx, dir, db)
}

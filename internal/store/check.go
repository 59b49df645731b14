package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/certsrv/certsrv/internal/wal"
)

// Problem is one thing Check found wrong: the component (e.g. "database",
// "checkpoint", "log generation 7") and the error, which matches the
// store's or the wal package's sentinels.
type Problem struct {
	Component string
	Err       error
}

func (p Problem) String() string { return p.Component + ": " + p.Err.Error() }

// GenCheck is what Check found for one log generation file. Info is filled
// when the generation verified; Err says why it did not; Note carries
// remarks that are not problems (a torn tail that Open will cut).
type GenCheck struct {
	Gen  uint32
	Path string
	Info *wal.GenInfo
	Err  error
	Note string
}

// CheckReport is the result of Check. Problems is empty when everything
// verified.
type CheckReport struct {
	DBPath         string
	Meta           *Meta    // nil when the meta row could not be read
	Integrity      []string // PRAGMA integrity_check output; ["ok"] when healthy
	CheckpointPath string
	Checkpoint     *Checkpoint // nil when missing or corrupt
	LogDir         string
	Logs           []GenCheck
	Space          []SpaceCheck // the free space of the log's and the database's file systems
	Problems       []Problem
}

// SpaceCheck is the free space of one directory's file system against the
// reserve the engine keeps (Options.MinFreeSpace). Being below it is not a
// problem of the files; it means the CA will refuse changes when started.
type SpaceCheck struct {
	Dir     string
	Free    int64
	Reserve int64 // negative: no reserve is kept
}

// Low reports whether the free space is below the reserve.
func (s SpaceCheck) Low() bool { return s.Reserve >= 0 && s.Free < s.Reserve }

// OK reports whether Check found no problem.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

func (r *CheckReport) problem(component string, err error) {
	r.Problems = append(r.Problems, Problem{Component: component, Err: err})
}

// String renders the report for people: one section per component, then
// the problems.
func (r *CheckReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "database   %s\n", r.DBPath)
	if r.Meta != nil {
		fmt.Fprintf(&b, "  signature %x, log set %x, applied LSN %d\n", r.Meta.Database[:], r.Meta.Log[:], r.Meta.AppliedLSN)
	}
	if len(r.Integrity) > 0 {
		fmt.Fprintf(&b, "  integrity_check: %s\n", strings.Join(r.Integrity, "; "))
	}
	fmt.Fprintf(&b, "checkpoint %s\n", r.CheckpointPath)
	if c := r.Checkpoint; c != nil {
		fmt.Fprintf(&b, "  LSN %d, generation %d, written %s\n", c.LSN, c.Gen, c.Written.Format("2006-01-02 15:04:05Z07:00"))
		for _, x := range []struct {
			name string
			b    *BackupRecord
		}{{"last full backup", c.LastFull}, {"last incremental backup", c.LastIncremental}} {
			if x.b == nil {
				continue
			}
			fmt.Fprintf(&b, "  %s: generations %d-%d, LSNs %d-%d, %s", x.name, x.b.FirstGen, x.b.LastGen, x.b.FirstLSN, x.b.LastLSN, x.b.Time.Format("2006-01-02 15:04:05Z07:00"))
			if x.b == c.LastIncremental && c.LastFull != nil && x.b.LastLSN < c.LastFull.FirstLSN {
				// Kept for the record; the next incremental continues the full.
				b.WriteString(" (before the last full backup)")
			}
			b.WriteByte('\n')
		}
	}
	fmt.Fprintf(&b, "logs       %s (%d generation%s)\n", r.LogDir, len(r.Logs), plural(len(r.Logs)))
	for _, g := range r.Logs {
		switch {
		case g.Err != nil:
			fmt.Fprintf(&b, "  %08X  BAD  %v\n", g.Gen, g.Err)
		case g.Info != nil && g.Info.LastLSN != 0:
			fmt.Fprintf(&b, "  %08X  ok   LSNs %d-%d, %d bytes", g.Gen, g.Info.FirstLSN, g.Info.LastLSN, g.Info.Size)
		default:
			fmt.Fprintf(&b, "  %08X  ok   no records", g.Gen)
		}
		if g.Err == nil {
			if g.Note != "" {
				fmt.Fprintf(&b, " (%s)", g.Note)
			}
			b.WriteString("\n")
		}
	}
	for _, sp := range r.Space {
		fmt.Fprintf(&b, "disk       %s: %s free", sp.Dir, sizeString(sp.Free))
		switch {
		case sp.Low():
			fmt.Fprintf(&b, ", BELOW the reserve of %s: the CA will refuse changes until there is space\n", sizeString(sp.Reserve))
		case sp.Reserve >= 0:
			fmt.Fprintf(&b, " (reserve %s)\n", sizeString(sp.Reserve))
		default:
			b.WriteString(" (no reserve)\n")
		}
	}
	if r.OK() {
		b.WriteString("result: OK\n")
	} else {
		fmt.Fprintf(&b, "result: %d problem(s)\n", len(r.Problems))
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	return b.String()
}

// Check verifies, offline and without changing anything, the database file
// (PRAGMA integrity_check, meta row), the checkpoint file and every log
// generation (header, records, chain), and that they agree: signatures, a
// log that covers everything after the database's applied LSN. Damage is
// reported in the report's Problems; the error is only for a check that
// could not run (bad options, done context). The CA must be stopped.
func Check(ctx context.Context, opts Options) (*CheckReport, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	r := &CheckReport{DBPath: o.DBPath, CheckpointPath: o.CheckpointPath(), LogDir: o.LogDir}
	checkDatabase(ctx, r)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ck, err := readCheckpoint(r.CheckpointPath)
	if err != nil {
		r.problem("checkpoint", err)
	} else {
		r.Checkpoint = &ck
		if r.Meta != nil {
			if err := checkCheckpointSignatures(r.CheckpointPath, ck, r.Meta.Signatures); err != nil {
				r.problem("checkpoint", err)
			} else if ck.LSN > r.Meta.AppliedLSN {
				r.problem("database", fmt.Errorf("applied LSN %d is below the checkpoint's %d: the database file is older than its checkpoint: %w",
					r.Meta.AppliedLSN, ck.LSN, ErrCheckpointMismatch))
			}
		}
	}
	if err := checkLogs(ctx, o, r); err != nil {
		return nil, err
	}
	for _, dir := range []string{o.LogDir, filepath.Dir(o.DBPath)} {
		if free, reserve, ok := freeSpace(dir, o.MinFreeSpace); ok {
			if len(r.Space) == 1 && sameFS(r.Space[0].Dir, dir) {
				break
			}
			r.Space = append(r.Space, SpaceCheck{Dir: dir, Free: free, Reserve: reserve})
		}
	}
	return r, nil
}

// sameFS reports whether a and b are on the same file system.
func sameFS(a, b string) bool {
	var sa, sb syscall.Stat_t
	return syscall.Stat(a, &sa) == nil && syscall.Stat(b, &sb) == nil && sa.Dev == sb.Dev
}

func checkDatabase(ctx context.Context, r *CheckReport) {
	if _, err := os.Stat(r.DBPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = ErrNoDatabase
		}
		r.problem("database", err)
		return
	}
	pool, err := openPool(r.DBPath, connRead, 1)
	if err != nil {
		r.problem("database", err)
		return
	}
	defer pool.Close()
	lines, err := strings1(ctx, pool, "PRAGMA integrity_check")
	if err != nil {
		r.problem("database", fmt.Errorf("integrity_check: %w: %w", ErrSchema, err))
		return
	}
	r.Integrity = lines
	if len(lines) != 1 || lines[0] != "ok" {
		r.problem("database", fmt.Errorf("integrity_check: %s: %w", strings.Join(lines, "; "), ErrIntegrity))
	}
	m, err := readMeta(ctx, pool)
	if err != nil {
		r.problem("database", err)
		return
	}
	r.Meta = &m
}

// checkLogs verifies every generation file in the log directory in order.
func checkLogs(ctx context.Context, o Options, r *CheckReport) error {
	ents, err := os.ReadDir(o.LogDir)
	if err != nil {
		r.problem("logs", err)
		return nil
	}
	var gens []GenCheck
	for _, e := range ents {
		if g, ok := wal.ParseFileName(o.LogBase, e.Name()); ok {
			gens = append(gens, GenCheck{Gen: g, Path: filepath.Join(o.LogDir, e.Name())})
		}
	}
	slices.SortFunc(gens, func(a, b GenCheck) int { return int(int64(a.Gen) - int64(b.Gen)) })
	if len(gens) == 0 {
		r.problem("logs", &MissingLogError{Dir: o.LogDir, Reason: "the log directory holds no generation"})
		return nil
	}
	var prev *wal.GenInfo
	allGood := true
	for i := range gens {
		if err := ctx.Err(); err != nil {
			return err
		}
		g := &gens[i]
		comp := fmt.Sprintf("log generation %d", g.Gen)
		if i > 0 && g.Gen != gens[i-1].Gen+1 {
			r.problem(fmt.Sprintf("log generation %d", gens[i-1].Gen+1), &MissingLogError{Dir: o.LogDir, Gen: gens[i-1].Gen + 1, Oldest: gens[0].Gen,
				Reason: fmt.Sprintf("generations %d and %d are present", gens[i-1].Gen, g.Gen)})
			prev, allGood = nil, false
		}
		info, err := wal.VerifyGeneration(g.Path, prev)
		newest := i == len(gens)-1
		if err != nil && newest && allGood {
			// The newest generation may end in a torn tail, which Open cuts.
			var sig wal.Signature
			if r.Meta != nil {
				sig = r.Meta.Log
			}
			if infos, serr := wal.ScanDir(ctx, o.LogDir, o.LogBase, sig); serr == nil {
				last := infos[len(infos)-1]
				info, err = last, nil
				if fi, statErr := os.Stat(g.Path); statErr == nil && fi.Size() > last.Size {
					g.Note = fmt.Sprintf("torn tail of %d bytes after offset %d; Open cuts it", fi.Size()-last.Size, last.Size)
					if r.Meta != nil && last.LastLSN < r.Meta.AppliedLSN {
						g.Note = fmt.Sprintf("%d bytes after offset %d are not whole records, and the database applied records after them (LSN %d): damage, which Open refuses and does not cut",
							fi.Size()-last.Size, last.Size, r.Meta.AppliedLSN)
					}
				}
			}
		}
		if err != nil {
			g.Err = err
			r.problem(comp, err)
			prev, allGood = nil, false
			continue
		}
		if i == 0 && r.Meta != nil && info.Signature != r.Meta.Log {
			err := &SignatureError{Which: "log", Path: g.Path, Gen: g.Gen, Want: r.Meta.Log, Got: info.Signature, Err: wal.ErrSignature}
			g.Err = err
			r.problem(comp, err)
			allGood = false
		}
		g.Info = &info
		prev = g.Info
	}
	r.Logs = gens
	if r.Meta == nil {
		return nil
	}
	applied := r.Meta.AppliedLSN
	first := gens[0]
	if first.Info != nil && applied+1 < first.Info.BaseLSN {
		r.problem("logs", &MissingLogError{Dir: o.LogDir, Gen: first.Gen - 1, NeedLSN: applied + 1, Oldest: first.Gen,
			Reason: fmt.Sprintf("the database is at LSN %d and the oldest generation present starts at LSN %d", applied, first.Info.BaseLSN)})
	}
	if last := gens[len(gens)-1]; last.Info != nil {
		if end := nextAfter(*last.Info) - 1; applied > end {
			r.problem("logs", fmt.Errorf("the database is at LSN %d but the log ends at LSN %d: %w", applied, end, ErrLogBehind))
		}
	}
	return nil
}

// plural returns "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

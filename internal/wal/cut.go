package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/certsrv/certsrv/internal/fsutil"
)

// CutResult reports what TruncateAfter did.
type CutResult struct {
	// Gen is the generation the log now ends in: the newest generation
	// whose first LSN is at most the cut LSN plus one. The next record
	// appended goes into it.
	Gen uint32
	// Size is Gen's size in bytes after the cut: its header and its records
	// up to the cut LSN.
	Size int64
	// Cut is the number of bytes removed from the end of Gen: its records
	// after the cut LSN and any torn tail. 0 when Gen already ended there.
	Cut int64
	// Moved lists the generations after Gen that were moved into the keep
	// directory, ascending; nil when there were none.
	Moved []uint32
}

// TruncateAfter makes the closed log set of base in dir end right after
// the record with LSN lsn, so that Open continues it from lsn+1 in the
// same log set. It is the log's part of a point-in-time restore: a replay
// stopped at lsn, and the records after it must not be applied at the next
// Open.
//
// The cut generation is the newest generation whose first LSN is at most
// lsn+1: the one holding lsn, or, when lsn is the last record of a
// generation, the next one, which keeps only its header (so the generation
// holding lsn stays byte for byte what it was, as any backup copied it).
// Every generation file after it — verified generations and a newest file
// that is a torn creation — is moved into keepDir (created with mode 0700
// when missing), never deleted; then the cut generation is truncated after
// its record lsn (which also removes a torn tail) and fsynced. It becomes
// the newest generation: Open treats it like a newest generation cut at a
// torn tail, and the next roll writes its final checksum into the header
// of the generation after it, so the chain stays whole.
//
// Nothing changes before every generation in dir verified (header,
// signature against sig unless sig is zero, generation continuity, chain,
// record CRCs and LSNs; a torn tail of the newest generation is its end)
// and the cut point was checked: lsn must lie between the LSN before the
// oldest generation's first LSN and the last record present, else a
// *RangeError (matching ErrOutOfRange, and ErrMissingGeneration when lsn
// is below the log). A file of the same name in keepDir that differs from
// the one to move is an error matching fs.ErrExist; an identical one (left
// by an interrupted earlier call) is accepted and the file in dir removed.
// keepDir must not be dir.
//
// Crash safety: generations are moved newest first, each move followed by
// an fsync of both directories, and the cut comes last. A crash leaves dir
// holding a contiguous, verifiable log that ends at or after lsn, and
// calling TruncateAfter again finishes the work. When lsn is the last
// record and nothing follows the cut generation, TruncateAfter changes
// nothing.
//
// The log must not be open (no Log on dir, in this or another process);
// the caller holds the data directory's lock.
func TruncateAfter(ctx context.Context, dir, base string, sig Signature, lsn LSN, keepDir string) (CutResult, error) {
	if base == "" {
		base = DefaultBase
	}
	if err := sameDir(dir, keepDir); err != nil {
		return CutResult{}, err
	}
	res, err := walkDir(ctx, walkOptions{dir: dir, base: base, sig: sig, logger: discardLogger()})
	if err != nil {
		return CutResult{}, fmt.Errorf("cut log after LSN %d: %w", lsn, err)
	}
	gens := res.gens
	low, high := gens[0].BaseLSN-1, nextLSN(&gens[len(gens)-1])-1
	if lsn < low || lsn > high {
		return CutResult{}, &RangeError{Dir: dir, LSN: lsn, Low: low, High: high}
	}
	var g GenInfo
	for _, gi := range gens {
		if gi.BaseLSN <= lsn+1 {
			g = gi
		}
	}
	keep, err := cutOffset(g, lsn)
	if err != nil {
		return CutResult{}, err
	}
	fi, err := os.Stat(g.Path)
	if err != nil {
		return CutResult{}, fmt.Errorf("cut log generation %d: %w", g.Gen, err)
	}
	ents, _, err := listGenerations(dir, base)
	if err != nil {
		return CutResult{}, fmt.Errorf("cut log after LSN %d: %w", lsn, err)
	}
	var later []dirEntry
	for _, e := range ents {
		if e.gen > g.Gen {
			later = append(later, e)
		}
	}
	out := CutResult{Gen: g.Gen, Size: keep, Cut: fi.Size() - keep}
	if len(later) == 0 && out.Cut == 0 {
		return out, nil
	}
	// Refuse before changing anything if keepDir holds a different file
	// under a name to be moved.
	for _, e := range later {
		if _, err := sameContent(e.path, filepath.Join(keepDir, filepath.Base(e.path))); err != nil {
			return CutResult{}, fmt.Errorf("cut log after LSN %d: keep generation %d: %w", lsn, e.gen, err)
		}
	}
	if err := mkdirDurable(keepDir); err != nil {
		return CutResult{}, fmt.Errorf("cut log after LSN %d: create %s: %w", lsn, keepDir, err)
	}
	for _, e := range slices.Backward(later) {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if err := moveGeneration(e.path, filepath.Join(keepDir, filepath.Base(e.path))); err != nil {
			return out, fmt.Errorf("cut log after LSN %d: move generation %d: %w", lsn, e.gen, err)
		}
		out.Moved = append([]uint32{e.gen}, out.Moved...)
	}
	if out.Cut != 0 {
		if err := truncateDurably(g.Path, keep); err != nil {
			return out, fmt.Errorf("cut log after LSN %d: %w", lsn, err)
		}
	}
	return out, nil
}

// cutOffset returns the size generation g has when it ends after record
// lsn: its header and its records up to lsn. It reads the file again and
// checks that the bytes kept are those verified.
func cutOffset(g GenInfo, lsn LSN) (int64, error) {
	if g.LastLSN == 0 || lsn < g.BaseLSN {
		return HeaderSize, nil
	}
	buf, err := os.ReadFile(g.Path)
	if err != nil {
		return 0, fmt.Errorf("cut log generation %d: %w", g.Gen, err)
	}
	if int64(len(buf)) < g.Size || crc32.Checksum(buf[HeaderSize:g.Size], castagnoli) != g.Checksum {
		return 0, corrupt(g.Path, g.Gen, HeaderSize, ErrCorrupt, "records changed since they were verified")
	}
	off := HeaderSize
	for off < int(g.Size) {
		rec, n, st := decodeRecord(buf[off:g.Size])
		if st != recOK {
			return 0, corrupt(g.Path, g.Gen, int64(off), ErrCorrupt, "record changed since it was verified")
		}
		off += n
		if rec.LSN == lsn {
			return int64(off), nil
		}
	}
	return 0, corrupt(g.Path, g.Gen, int64(off), ErrCorrupt, "no record LSN %d", lsn)
}

// sameDir refuses an empty keep directory or one that is the log
// directory.
func sameDir(dir, keepDir string) error {
	if keepDir == "" {
		return fmt.Errorf("cut log in %s: no directory to keep the later generations in: %w", dir, ErrKeepDir)
	}
	a, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	b, err := filepath.Abs(keepDir)
	if err != nil {
		return err
	}
	if a == b {
		return fmt.Errorf("cut log in %s: the keep directory is the log directory: %w", dir, ErrKeepDir)
	}
	if fa, err := os.Stat(a); err == nil {
		if fb, err := os.Stat(b); err == nil && os.SameFile(fa, fb) {
			return fmt.Errorf("cut log in %s: the keep directory %s is the log directory: %w", dir, keepDir, ErrKeepDir)
		}
	}
	return nil
}

// sameContent reports whether dst exists with the same bytes as src. A dst
// that exists with other bytes is an error matching fs.ErrExist.
func sameContent(src, dst string) (bool, error) {
	b, err := os.ReadFile(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	a, err := os.ReadFile(src)
	if err != nil {
		return false, err
	}
	if !bytes.Equal(a, b) {
		return false, fmt.Errorf("%s exists and differs from %s: %w", dst, src, fs.ErrExist)
	}
	return true, nil
}

// moveGeneration moves src to dst: a rename, or across file systems a
// durable copy followed by the removal of src. When dst already holds
// src's bytes (an interrupted earlier move), src is removed. Both
// directories are fsynced, so after a crash the file is in one place or,
// after a copy, in both; never in neither.
func moveGeneration(src, dst string) error {
	same, err := sameContent(src, dst)
	if err != nil {
		return err
	}
	switch {
	case same:
		err = os.Remove(src)
	default:
		err = os.Rename(src, dst)
		if errors.Is(err, syscall.EXDEV) {
			var fi os.FileInfo
			if fi, err = os.Stat(src); err != nil {
				return err
			}
			if _, err = fsutil.CopyFile(dst, src, fi.Mode().Perm()); err != nil {
				return err
			}
			err = os.Remove(src)
		}
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
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := mkdirDurable(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(dir))
}

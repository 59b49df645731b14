package backupset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/sha256x2"
)

// Permissions of what a set holds: the database, the logs and a key file
// are confidential, so files are readable by the owner only.
const (
	filePerm = 0o600
	dirPerm  = 0o700
)

// copyBufferSize is the buffer used to copy a source that cannot write
// itself out (io.WriterTo); large, so that a 1 GiB database moves in few
// system calls.
const copyBufferSize = 4 << 20

// localPath returns the path of rel (slash-separated) inside root.
func localPath(root, rel string) (string, error) {
	p, err := fsutil.Within(root, filepath.FromSlash(rel))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadPath, err)
	}
	return p, nil
}

// ensureDir creates dir (one level below an existing directory) if it is
// missing, and fsyncs its parent so that the new entry survives a crash.
func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("create directory %s: %w", dir, errNotDir)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, dirPerm); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	return fsutil.SyncDir(filepath.Dir(dir))
}

// errNotDir is the cause reported when a directory of the layout exists
// as something else.
var errNotDir = errors.New("exists and is not a directory")

// writeFile copies exactly size bytes from r into root/rel, durably, and
// returns the SHA-256 of each chunk bytes of it (one digest, the whole
// file's, when it is at most chunk bytes long), computed from the bytes as
// they are written. rel must not exist yet.
//
// Steps and what a crash at each leaves behind:
//  1. create rel.part (exclusively) and copy into it: a partial .part file,
//     which marks the set incomplete (ErrIncomplete);
//  2. fsync the .part file: the same;
//  3. rename it to rel: either the .part file or rel, complete;
//  4. fsync the directory: the rename survives a power loss.
//
// On error the .part file is removed and rel is not created. A source that
// delivers fewer or more than size bytes fails with a *FileError matching
// ErrSizeMismatch.
func writeFile(ctx context.Context, root, rel string, r io.Reader, size, chunk int64) (digests []string, err error) {
	if size < 0 {
		return nil, fmt.Errorf("write %s: negative size %d", rel, size)
	}
	full, err := localPath(root, rel)
	if err != nil {
		return nil, err
	}
	if err := ensureDir(filepath.Dir(full)); err != nil {
		return nil, fmt.Errorf("write %s: %w", rel, err)
	}
	if _, err := os.Lstat(full); err == nil {
		return nil, fmt.Errorf("write %s: %w: the file already exists", rel, ErrBadPath)
	}
	part := full + PartSuffix
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", rel, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(part)
		}
	}()
	// Direct I/O where the file system allows it, else progressive
	// writeback: a gigabyte written into the page cache costs more CPU than
	// receiving it, and fsynced at the end it would queue every fsync of
	// the CA's log (on the same disk, as often as not) behind it; see
	// fsutil.DirectWriter.
	w := newPipeWriter(ctx, fsutil.NewDirectWriter(f), size, chunk)
	_, err = w.ReadFrom(r)
	sum, werr := w.finish()
	switch {
	case errors.Is(err, errTooLong):
		return nil, &FileError{Path: rel, Want: strconv.FormatInt(size, 10) + " bytes", Got: "more", Err: ErrSizeMismatch}
	case err != nil:
		return nil, fmt.Errorf("write %s: %w", rel, err)
	case werr != nil:
		return nil, fmt.Errorf("write %s: %w", rel, werr)
	case w.n < size:
		return nil, &FileError{Path: rel, Want: strconv.FormatInt(size, 10) + " bytes", Got: strconv.FormatInt(w.n, 10) + " bytes", Err: ErrTruncated}
	}
	if err = f.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", part, err)
	}
	if err = f.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", part, err)
	}
	if err = os.Rename(part, full); err != nil {
		return nil, fmt.Errorf("rename %s: %w", part, err)
	}
	if err = fsutil.SyncDir(filepath.Dir(full)); err != nil {
		return nil, err
	}
	return sum, nil
}

// writeManifest writes m into dir as manifest.json, replacing any manifest
// there atomically: manifest.json.part, fsync, rename, fsync the directory.
// A crash leaves either the old manifest (or none) or the new one, and
// perhaps a manifest.json.part, which marks the set incomplete.
func writeManifest(dir string, m *Manifest) ([]byte, error) {
	b, err := marshalManifest(m)
	if err != nil {
		return nil, err
	}
	full := filepath.Join(dir, ManifestFile)
	part := full + PartSuffix
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(part)
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(part)
		return nil, fmt.Errorf("sync manifest: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(part)
		return nil, fmt.Errorf("close manifest: %w", err)
	}
	if err := os.Rename(part, full); err != nil {
		os.Remove(part)
		return nil, fmt.Errorf("rename manifest: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return nil, err
	}
	return b, nil
}

// hashFile returns the size and SHA-256 of the file at p, checking ctx
// between reads.
func hashFile(ctx context.Context, p string) (int64, string, error) {
	read, sums, err := hashRanges(ctx, p, []int64{0}, -1, nil)
	return read[0], sums[0], err
}

// hashBuffers holds hashRanges' read buffers between calls: a verification
// hashes a large file chunk by chunk, and zeroing new buffers for every
// chunk cost a fifth as much as reading them.
var hashBuffers = sync.Pool{New: func() any {
	b := make([]byte, copyBufferSize)
	return &b
}}

// hashRanges returns how many bytes it read and the SHA-256 of n bytes of
// the file at p from each offset in offs, checking ctx between reads: one
// range (the whole file when n < 0), or two of the same length, the chunks
// of one file, whose digests it computes together with sha256x2, two per
// core. A file shorter than off+n gives fewer bytes, not an error; after
// an error the digests are empty. hashed, when not nil, is called with the
// size of each block hashed. A goroutine reads ahead while the caller's
// goroutine hashes, so a range read from the disk costs max(read, hash)
// rather than their sum.
func hashRanges(ctx context.Context, p string, offs []int64, n int64, hashed func(int64)) ([]int64, []string, error) {
	read := make([]int64, len(offs))
	sums := make([]string, len(offs))
	f, err := os.Open(p)
	if err != nil {
		return read, sums, err
	}
	defer f.Close()
	rs := make([]io.Reader, len(offs))
	for i, off := range offs {
		rs[i] = f
		if n >= 0 {
			fsutil.ReadAhead(f, off, n)
			rs[i] = io.NewSectionReader(f, off, n)
		}
	}
	// A block is the next bytes of each range, read into one set of
	// buffers; a range that has ended gives none.
	type block struct {
		set *[2]*[]byte
		b   [2][]byte
		err error
	}
	const buffers = 3
	free := make(chan *[2]*[]byte, buffers)
	var sets [buffers][2]*[]byte
	for i := range sets {
		for k := range offs {
			sets[i][k] = hashBuffers.Get().(*[]byte)
		}
		free <- &sets[i]
	}
	full := make(chan block, buffers)
	stop := make(chan struct{})
	done := make(chan struct{})
	defer func() {
		// The buffers go back once the reader is done with them.
		close(stop)
		<-done
		for i := range sets {
			for k := range offs {
				hashBuffers.Put(sets[i][k])
			}
		}
	}()
	go func() {
		defer close(done)
		defer close(full)
		ended := make([]bool, len(rs))
		for {
			var blk block
			select {
			case blk.set = <-free:
			case <-stop:
				return
			}
			left := 0
			for k, r := range rs {
				if ended[k] {
					continue
				}
				buf := *blk.set[k]
				m, err := io.ReadFull(r, buf)
				blk.b[k] = buf[:m]
				switch {
				case err == io.EOF || err == io.ErrUnexpectedEOF:
					ended[k] = true
				case err != nil:
					blk.err = err
				default:
					left++
				}
			}
			if left == 0 && blk.err == nil {
				blk.err = io.EOF
			}
			select {
			case full <- blk:
			case <-stop:
				return
			}
			if blk.err != nil {
				return
			}
		}
	}()
	// Two ranges are hashed as a pair while their blocks have the same
	// length; if one ends short, each goes on alone.
	var pair *sha256x2.Pair
	var hs []hash.Hash
	if len(offs) == 2 {
		pair = sha256x2.New()
	} else {
		hs = []hash.Hash{sha256.New()}
	}
	for blk := range full {
		if err := ctx.Err(); err != nil {
			return read, sums, err
		}
		if pair != nil {
			a, b := blk.b[0], blk.b[1]
			m := min(len(a), len(b))
			pair.Write(a[:m], b[:m])
			if len(a) != len(b) {
				ha, hb := pair.Split()
				ha.Write(a[m:])
				hb.Write(b[m:])
				pair, hs = nil, []hash.Hash{ha, hb}
			}
		} else {
			for k, h := range hs {
				h.Write(blk.b[k])
			}
		}
		for k := range offs {
			read[k] += int64(len(blk.b[k]))
			if hashed != nil && len(blk.b[k]) > 0 {
				hashed(int64(len(blk.b[k])))
			}
		}
		switch {
		case blk.err == io.EOF:
			if pair != nil {
				a, b := pair.Sum()
				return read, []string{hex.EncodeToString(a[:]), hex.EncodeToString(b[:])}, nil
			}
			for k, h := range hs {
				sums[k] = hex.EncodeToString(h.Sum(nil))
			}
			return read, sums, nil
		case blk.err != nil:
			return read, sums, blk.err
		}
		free <- blk.set
	}
	return read, sums, io.ErrUnexpectedEOF // not reached: the reader ends with EOF or an error
}

// Package fsutil holds the few file-system helpers every durable file in
// certsrv is written with: write to a temporary file, fsync it, rename it over
// the target, fsync the directory.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrOutsideRoot is returned by Within when a path leaves its root directory.
var ErrOutsideRoot = errors.New("path leaves its root directory")

// SyncDir fsyncs the directory dir so that entries created, renamed or
// removed in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// WriteFileAtomic replaces path with data, durably.
//
// Steps and what a crash at each leaves behind:
//  1. create path.tmp and write data: a stray .tmp file, the old file intact;
//  2. fsync the .tmp file: the same;
//  3. rename over path: either the old or the new file, never a mix;
//  4. fsync the directory: the rename itself survives a power loss.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for content produced by a function. If fn
// returns an error the temporary file is removed and path is left untouched.
func WriteAtomic(path string, perm os.FileMode, fn func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = fn(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return SyncDir(dir)
}

// Within joins name to root and returns the result only if it stays inside
// root: no "..", no absolute name, no empty name. It does not touch the disk;
// callers that open the result must also refuse symlinks (see OpenNoFollow).
func Within(root, name string) (string, error) {
	if name == "" || filepath.IsAbs(name) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%q: %w", name, ErrOutsideRoot)
	}
	clean := filepath.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%q: %w", name, ErrOutsideRoot)
	}
	return filepath.Join(root, clean), nil
}

// CopyTree copies the directory tree src into dst (created as needed):
// directories with mode 0700, regular files with mode 0600, anything else
// skipped. It is a plain copy, not a durable one; tests use it to make a
// copy of a backup set or a data directory to damage.
func CopyTree(dst, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case !d.Type().IsRegular():
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
}

// CopyFile copies src to dst durably (see WriteAtomic) and returns the number
// of bytes copied.
func CopyFile(dst, src string, perm os.FileMode) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	var n int64
	err = WriteAtomic(dst, perm, func(w io.Writer) error {
		var err error
		n, err = io.Copy(w, in)
		return err
	})
	return n, err
}

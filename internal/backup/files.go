package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/wal"
)

// checkRegular refuses a listed path that is now missing, a symbolic link
// or not a regular file. It never follows a link.
func checkRegular(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return apierr.New(apierr.NotFound, "%s no longer exists", path)
	case err != nil:
		return apierr.New(apierr.Unexpected, "stat %s: %w", path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return apierr.New(apierr.AccessDenied, "%s is now a symbolic link; backup never follows links", path)
	case !fi.Mode().IsRegular():
		return apierr.New(apierr.InvalidArg, "%s is not a regular file", path)
	}
	return nil
}

// verifyGeneration is wal.VerifyGeneration; tests replace it to stage a
// file changing while it is served.
var verifyGeneration = wal.VerifyGeneration

// loadLog reads the sealed log generation at path (listed as want) and
// returns its bytes after verifying them: the file is opened without
// following links, read whole, verified with wal.VerifyGeneration (header,
// every record CRC and LSN, and the chain to prev when prev is not nil),
// and read again; both reads must be identical, and the verified size, LSNs
// and final checksum must be those the log recorded for the generation when
// it was listed. The bytes returned are therefore exactly the bytes
// verified. Failures that concern the file are *LogError values (matching
// fs.ErrNotExist when the file is gone, wal.ErrCorrupt when it is damaged,
// ErrChangedWhileServed when it changed); a symbolic link or a non-regular
// file gives an *apierr.Error.
func loadLog(ctx context.Context, want wal.GenInfo, path string, prev *wal.GenInfo) ([]byte, error) {
	logErr := func(off int64, err error) error {
		return &LogError{Gen: want.Gen, Path: path, Offset: off, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkRegular(path); err != nil {
		if apierr.Of(err) == apierr.NotFound {
			return nil, logErr(0, fs.ErrNotExist)
		}
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, logErr(0, fs.ErrNotExist)
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, apierr.New(apierr.AccessDenied, "%s is now a symbolic link; backup never follows links", path)
	}
	if err != nil {
		return nil, apierr.New(apierr.Unexpected, "open log generation %d: %w", want.Gen, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, apierr.New(apierr.Unexpected, "stat log generation %d: %w", want.Gen, err)
	}
	if !st.Mode().IsRegular() {
		return nil, apierr.New(apierr.InvalidArg, "%s is not a regular file", path)
	}
	first, err := readAll(f, st.Size())
	if err != nil {
		return nil, apierr.New(apierr.Unexpected, "read log generation %d: %w", want.Gen, err)
	}
	info, err := verifyGeneration(path, prev)
	if err != nil {
		var ce *wal.CorruptError
		if errors.As(err, &ce) {
			return nil, logErr(ce.Offset, err)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, logErr(0, fs.ErrNotExist)
		}
		return nil, logErr(0, err)
	}
	again, err := readAll(f, int64(len(first))+1)
	if err != nil {
		return nil, apierr.New(apierr.Unexpected, "read log generation %d again: %w", want.Gen, err)
	}
	// The path may have been swapped for another file since it was opened:
	// the verified file must be the open one.
	if fi, err := os.Lstat(path); err != nil || !os.SameFile(fi, st) {
		return nil, logErr(0, fmt.Errorf("the file was replaced while it was verified: %w", ErrChangedWhileServed))
	}
	if !bytes.Equal(first, again) {
		return nil, logErr(0, fmt.Errorf("its bytes changed while they were verified: %w", ErrChangedWhileServed))
	}
	switch {
	case int64(len(first)) != info.Size:
		return nil, logErr(info.Size, fmt.Errorf("%d bytes read, %d verified: %w", len(first), info.Size, ErrChangedWhileServed))
	case info.Size != want.Size || info.Checksum != want.Checksum:
		return nil, logErr(min(info.Size, want.Size), fmt.Errorf(
			"%d bytes with final checksum %08x on disk, but the log wrote %d bytes with final checksum %08x: %w",
			info.Size, info.Checksum, want.Size, want.Checksum, wal.ErrCorrupt))
	case info.BaseLSN != want.BaseLSN || info.LastLSN != want.LastLSN || info.Signature != want.Signature:
		return nil, logErr(0, fmt.Errorf("header or records differ from what the log wrote (LSNs %d..%d, want %d..%d): %w",
			info.BaseLSN, info.LastLSN, want.BaseLSN, want.LastLSN, wal.ErrCorrupt))
	}
	return first, nil
}

// readAll reads the whole file from offset 0, expecting about hint bytes.
func readAll(f *os.File, hint int64) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(hint, wal.HeaderSize)))
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

package fsutil

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// DirectMaxWrite is the default largest single direct write. A direct
// write occupies the disk until it completes, and an fsync of another file
// (the CA's log) that arrives meanwhile waits behind it: 1 MiB pieces keep
// that wait under a millisecond on a disk that writes about 1.4 GB/s, where
// 4 MiB pieces made a writer that commits one record at a time lose a
// fifth of its rate. Larger pieces cost the disk fewer requests (copying
// 1 GiB took 0.78 s in 1 MiB direct writes, 0.66 s in 4 MiB ones), so a
// writer that knows it is behind may raise the limit (SetMaxWrite).
const DirectMaxWrite = 1 << 20

// DirectAlign is the alignment direct I/O needs for buffer addresses, file
// offsets and lengths: the page size, which covers every logical block
// size Linux disks use.
const DirectAlign = 4096

// AlignedBuffer returns a zeroed buffer of size bytes whose first byte is
// DirectAlign-aligned, as a DirectWriter needs to write it directly.
func AlignedBuffer(size int) []byte {
	b := make([]byte, size+DirectAlign)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % DirectAlign); r != 0 {
		off = DirectAlign - r
	}
	return b[off : off+size : off+size]
}

// DirectWriter writes a file sequentially with direct I/O (O_DIRECT): the
// bytes go from the caller's buffer to the disk without passing through the
// page cache. A large copy so costs a fraction of the CPU of buffered
// writes (no page allocation, no copy into the cache, no writeback later)
// and leaves no gigabyte of dirty pages for the final fsync, or anybody
// else's, to wait behind. The caller must still fsync the file: direct I/O
// does not write the file's metadata or flush the disk's cache.
//
// Writes whose buffer address or length is not DirectAlign-aligned (the
// last, short piece of a file) switch the file back to buffered I/O for the
// rest of the writes, as does a file system that refuses a direct write.
// A file that cannot be switched to direct I/O at all is written buffered,
// with progressive writeback (WritebackWriter).
type DirectWriter struct {
	maxWrite int // largest single direct write; 0 means DirectMaxWrite
	writes   int // direct write calls made, for tests
	f        *os.File
	direct   bool
	buffered *WritebackWriter
}

// NewDirectWriter switches f to direct I/O where the file system allows it
// and returns a writer that writes to f from its current offset, which
// must be DirectAlign-aligned for direct writes to be used.
func NewDirectWriter(f *os.File) *DirectWriter {
	w := &DirectWriter{f: f, buffered: NewWritebackWriter(f, 0)}
	if w.buffered.written%DirectAlign == 0 && setDirect(f, true) == nil {
		w.direct = true
	}
	return w
}

// Direct reports whether the next aligned write goes to the disk directly.
func (w *DirectWriter) Direct() bool { return w.direct }

// Write writes b, directly when b and the file offset allow it.
func (w *DirectWriter) Write(b []byte) (int, error) {
	if w.direct && (len(b)%DirectAlign != 0 || len(b) == 0 ||
		uintptr(unsafe.Pointer(&b[0]))%DirectAlign != 0) {
		w.leaveDirect()
	}
	if !w.direct {
		return w.buffered.Write(b)
	}
	var n int
	for n < len(b) {
		piece := DirectMaxWrite
		if w.maxWrite > 0 {
			piece = w.maxWrite
		}
		k, err := w.f.Write(b[n:min(len(b), n+piece)])
		w.writes++
		if errors.Is(err, syscall.EINVAL) && k == 0 && w.buffered.written%DirectAlign == 0 {
			// The file system took the flag but not the write.
			w.leaveDirect()
			m, err := w.buffered.Write(b[n:])
			return n + m, err
		}
		n += k
		w.buffered.written += int64(k)
		w.buffered.started = w.buffered.written // nothing dirty to write back
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// SetMaxWrite sets the largest single direct write to n bytes, rounded
// down to a multiple of DirectAlign; n ≤ 0 (or below DirectAlign) restores
// DirectMaxWrite. A copy that has fallen behind its source writes in larger
// pieces for throughput; one that keeps up writes in DirectMaxWrite pieces
// so that other files' fsyncs on the same disk wait less behind it.
func (w *DirectWriter) SetMaxWrite(n int) {
	w.maxWrite = max(n, 0) &^ (DirectAlign - 1)
}

func (w *DirectWriter) leaveDirect() {
	if setDirect(w.f, false) == nil {
		w.direct = false
	}
}

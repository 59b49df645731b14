package fsutil

import (
	"io"
	"os"
)

// DefaultWritebackWindow is the window NewWritebackWriter callers use unless
// they measured better: large enough that the disk sees long sequential
// writes, small enough that an fsync of another file (the CA's transaction
// log) never queues behind more than two windows of someone else's data.
const DefaultWritebackWindow = 8 << 20

// WritebackWriter writes sequentially to a file and keeps the amount of
// dirty, unwritten data in the page cache bounded: every window bytes it
// starts the kernel's writeback of the window just written and waits for the
// window before it. A large copy then reaches the disk while it is produced,
// instead of all at once in the final fsync, and other processes' fsyncs on
// the same disk (ext4 commits its journal for them) never wait behind a
// gigabyte of writeback. This is the progressive writeback of tools that copy
// large files next to a latency-sensitive database.
//
// It is only a scheduling hint: durability still comes from the caller's
// fsync of the file, which also reports any write error. Where the system
// lacks the hint (not Linux, or a file system that refuses it) the writer
// simply writes.
type WritebackWriter struct {
	f       *os.File
	window  int64
	written int64 // bytes written through this writer
	started int64 // bytes whose writeback was started
	off     bool  // the hint failed once: stop asking
}

// NewWritebackWriter returns a writer that writes to f from its current
// offset on and starts writeback every window bytes (DefaultWritebackWindow
// when window <= 0).
func NewWritebackWriter(f *os.File, window int64) *WritebackWriter {
	if window <= 0 {
		window = DefaultWritebackWindow
	}
	var start int64
	if off, err := f.Seek(0, io.SeekCurrent); err == nil {
		start = off
	}
	return &WritebackWriter{f: f, window: window, written: start, started: start}
}

// Write writes b to the file and, each time another window is complete,
// starts its writeback and waits for the previous window's.
func (w *WritebackWriter) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	w.written += int64(n)
	for !w.off && w.written-w.started >= w.window {
		if startWriteback(w.f, w.started, w.window) != nil {
			w.off = true
			break
		}
		if w.started >= w.window {
			if waitWriteback(w.f, w.started-w.window, w.window) != nil {
				w.off = true
			}
		}
		w.started += w.window
	}
	return n, err
}

// ReadAhead asks the kernel to start reading n bytes of f from off into
// the page cache, so that several readers of one file each find their
// range in flight rather than ramping up the kernel's read-ahead from a
// small window. It is only a hint: where the system has no such call it
// does nothing.
func ReadAhead(f *os.File, off, n int64) { _ = willNeed(f, off, n) }

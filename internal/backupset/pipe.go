package backupset

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/certsrv/certsrv/internal/fsutil"
)

// Buffers of the copy pipeline. Write copies the caller's bytes into a free
// buffer and returns; one goroutine writes full buffers to the file, a
// second hashes them after the write (chunkHasher, which may hold the
// buffers of one chunk to hash two chunks at once; the pipeline then has
// as many buffers more), and the buffer goes back to the free list.
// Receiving, writing and hashing so overlap, and a slow medium only blocks
// the caller once every buffer is in flight. Eight buffers (32 MiB)
// rather than four let the receiver run on through a few slow writes: a
// full backup of 1 GiB over loopback took 1.15–1.28 s instead of 1.44–1.59
// s with four, the writer's pieces adapting as below.
const (
	pipeBuffers    = 8
	pipeBufferSize = 4 << 20
)

// maxWriter is a file writer whose largest single write can be set
// (fsutil.DirectWriter).
type maxWriter interface{ SetMaxWrite(n int) }

// errTooLong is the internal signal that a source delivered more bytes than
// announced.
var errTooLong = errors.New("source longer than announced")

// pipeWriter is the io.Writer writeFile copies through: it counts bytes,
// refuses to go past limit, stops when ctx ends, and writes to w and to
// SHA-256 digests of each chunk bytes through the pipeline above. It must be
// finished with finish.
type pipeWriter struct {
	ctx   context.Context
	n     int64
	limit int64

	cur    []byte
	free   chan []byte
	toFile chan []byte
	toHash chan []byte
	done   chan struct{}
	hasher *chunkHasher

	mu  sync.Mutex
	err error // the first write error
}

func newPipeWriter(ctx context.Context, w io.Writer, limit, chunk int64) *pipeWriter {
	// Small files need no large buffers.
	size := int(min(int64(pipeBufferSize), max(limit, 1)))
	p := &pipeWriter{
		ctx:    ctx,
		limit:  limit,
		toFile: make(chan []byte, pipeBuffers),
		toHash: make(chan []byte, pipeBuffers),
		done:   make(chan struct{}),
	}
	p.hasher = newChunkHasher(chunk, limit, size, func(b []byte) { p.free <- b[:0] })
	n := pipeBuffers + p.hasher.heldBuffers()
	p.free = make(chan []byte, n)
	for range n {
		p.free <- fsutil.AlignedBuffer(size)[:0] // aligned for direct I/O
	}
	mw, _ := w.(maxWriter)
	go func() {
		defer close(p.toHash)
		for b := range p.toFile {
			if mw != nil {
				// Behind the receiver (more buffers queued): the whole
				// buffer in one write, which costs the disk fewer
				// requests. Keeping up (a paced stream, a busy CA): the
				// writer's default small pieces, so that the CA's log
				// fsyncs on the same disk wait less behind a write.
				if len(p.toFile) > 0 {
					mw.SetMaxWrite(len(b))
				} else {
					mw.SetMaxWrite(0)
				}
			}
			if p.failed() == nil {
				if _, err := w.Write(b); err != nil {
					p.fail(err)
				}
			}
			p.toHash <- b
		}
	}()
	go func() {
		defer close(p.done)
		for b := range p.toHash {
			p.hasher.add(b)
		}
	}()
	return p
}

func (p *pipeWriter) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *pipeWriter) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// Write queues a copy of b. It fails with the context's error, with
// errTooLong when b would pass the limit, or with an earlier write error.
func (p *pipeWriter) Write(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	if err := p.failed(); err != nil {
		return 0, err
	}
	if int64(len(b)) > p.limit-p.n {
		return 0, errTooLong
	}
	n := len(b)
	for len(b) > 0 {
		if p.cur == nil {
			p.cur = <-p.free
		}
		k := copy(p.cur[len(p.cur):cap(p.cur)], b)
		p.cur = p.cur[:len(p.cur)+k]
		b = b[k:]
		if len(p.cur) == cap(p.cur) {
			p.toFile <- p.cur
			p.cur = nil
		}
	}
	p.n += int64(n)
	return n, nil
}

// ReadFrom reads r to its end straight into the pipeline's buffers: one
// copy fewer than Write, for a source that can fill a buffer itself (a
// backup file's HTTP/1.1 stream, a file). It stops like Write: at the
// context's end, at an earlier write error, or with errTooLong when r
// delivers more than the limit.
func (p *pipeWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for empty := 0; ; {
		if err := p.ctx.Err(); err != nil {
			return total, err
		}
		if err := p.failed(); err != nil {
			return total, err
		}
		if p.cur == nil {
			p.cur = <-p.free
		}
		space := p.cur[len(p.cur):cap(p.cur)]
		// At most one byte past the limit, to notice a longer source.
		if rest := p.limit - p.n; int64(len(space)) > rest+1 {
			space = space[:rest+1]
		}
		k, err := r.Read(space)
		if int64(k) > p.limit-p.n {
			return total, errTooLong
		}
		if k == 0 && err == nil {
			if empty++; empty == 100 {
				return total, io.ErrNoProgress
			}
		} else {
			empty = 0
		}
		p.cur = p.cur[:len(p.cur)+k]
		p.n += int64(k)
		total += int64(k)
		if len(p.cur) == cap(p.cur) {
			p.toFile <- p.cur
			p.cur = nil
		}
		switch {
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// finish writes and hashes what is still queued, stops the goroutines, and
// returns the SHA-256 of each chunk in lower-case hex (one for a file of at
// most one chunk, an empty one included) and the first write error.
func (p *pipeWriter) finish() ([]string, error) {
	if len(p.cur) > 0 {
		p.toFile <- p.cur
		p.cur = nil
	}
	close(p.toFile)
	<-p.done
	if err := p.failed(); err != nil {
		return nil, err
	}
	return p.hasher.end(), nil
}

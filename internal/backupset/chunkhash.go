package backupset

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"

	"github.com/certsrv/certsrv/internal/sha256x2"
)

// maxPairedChunk is the largest chunk whose digests the copy pipeline
// computes two at a time: pairing holds an even chunk's buffers until the
// odd chunk after it arrives, so it costs a chunk of memory.
const maxPairedChunk = 64 << 20

// chunkHasher computes the SHA-256 of each chunk of a file from the
// pipeline's buffers, in order, and gives each buffer back (release) once
// it has hashed it.
//
// When the chunks are a whole number of buffers (the default 16 MiB chunk,
// 4 MiB buffers) it hashes chunks two at a time with sha256x2, one SHA-NI
// core doing about twice the bytes of crypto/sha256: it holds the buffers
// of chunk 2k, and hashes each buffer of chunk 2k+1 together with the
// buffer of chunk 2k at the same place. This relies on what the pipeline
// guarantees: every buffer but the file's last is full, so no buffer
// crosses a chunk boundary and the buffers of two chunks pair one to one.
type chunkHasher struct {
	chunk   int64
	bufSize int
	release func([]byte)
	off     int64 // bytes received
	sums    []string

	// One chunk at a time.
	h   hash.Hash
	inH int64

	// Two chunks at a time (pair not nil). Of the even chunk's buffers
	// still held, the first is hashed up to pair.Len() % bufSize: the
	// ones before it went back whole.
	pair  *sha256x2.Pair
	held  [][]byte
	ended bool // a short buffer came: the file's last
}

// newChunkHasher returns a hasher of chunks of chunk bytes, fed buffers of
// bufSize bytes (every one full but the last) of a file of at most limit
// bytes.
func newChunkHasher(chunk, limit int64, bufSize int, release func([]byte)) *chunkHasher {
	c := &chunkHasher{chunk: chunk, bufSize: bufSize, release: release}
	if limit > chunk && chunk%int64(bufSize) == 0 && chunk <= maxPairedChunk {
		c.pair = sha256x2.New()
	} else {
		c.h = sha256.New()
	}
	return c
}

// heldBuffers is the number of buffers the hasher may hold at once: the
// pipeline adds them to its own.
func (c *chunkHasher) heldBuffers() int {
	if c.pair == nil {
		return 0
	}
	return int(c.chunk / int64(c.bufSize))
}

// add hashes b (or holds it) and releases every buffer it is done with.
func (c *chunkHasher) add(b []byte) {
	if c.pair == nil {
		c.addSingle(b)
		c.release(b)
		return
	}
	if c.ended {
		panic("backupset: a buffer after the file's last, short one")
	}
	if len(b) == 0 {
		c.release(b)
		return
	}
	if len(b) < c.bufSize {
		c.ended = true
	}
	k := c.off / c.chunk
	if (c.off+int64(len(b))-1)/c.chunk != k {
		panic("backupset: a pipeline buffer crosses a chunk boundary")
	}
	c.off += int64(len(b))
	if k%2 == 0 {
		c.held = append(c.held, b)
		return
	}
	from := c.heldFrom()
	if len(c.held) == 0 || len(b) > len(c.held[0])-from {
		panic("backupset: the buffers of two chunks do not pair")
	}
	a := c.held[0]
	c.pair.Write(a[from:from+len(b)], b)
	c.release(b)
	if from+len(b) == len(a) {
		c.release(a)
		c.held = c.held[1:]
	}
	if c.off%c.chunk == 0 {
		a, b := c.pair.Sum()
		c.sums = append(c.sums, hex.EncodeToString(a[:]), hex.EncodeToString(b[:]))
		c.pair.Reset()
	}
}

// heldFrom is how much of the first held buffer is hashed.
func (c *chunkHasher) heldFrom() int { return int(c.pair.Len() % int64(c.bufSize)) }

func (c *chunkHasher) addSingle(b []byte) {
	for len(b) > 0 {
		k := int(min(int64(len(b)), c.chunk-c.inH))
		c.h.Write(b[:k])
		c.inH += int64(k)
		b = b[k:]
		if c.inH == c.chunk {
			c.sums = append(c.sums, hex.EncodeToString(c.h.Sum(nil)))
			c.h.Reset()
			c.inH = 0
		}
	}
}

// end hashes what is held and returns the SHA-256 of each chunk in
// lower-case hex: one for a file of at most one chunk, an empty one
// included.
func (c *chunkHasher) end() []string {
	if c.pair != nil {
		if len(c.held) > 0 || c.pair.Len() > 0 {
			// The file ends in an even chunk (nothing of the odd one
			// came) or in an odd chunk shorter than the even one.
			ha, hb := c.pair.Split()
			from := c.heldFrom()
			for _, a := range c.held {
				ha.Write(a[from:])
				c.release(a)
				from = 0
			}
			c.held = nil
			c.sums = append(c.sums, hex.EncodeToString(ha.Sum(nil)))
			if c.pair.Len() > 0 {
				c.sums = append(c.sums, hex.EncodeToString(hb.Sum(nil)))
			}
		}
	} else if c.inH > 0 {
		c.sums = append(c.sums, hex.EncodeToString(c.h.Sum(nil)))
	}
	if len(c.sums) == 0 {
		c.sums = append(c.sums, hex.EncodeToString(sha256.New().Sum(nil)))
	}
	return c.sums
}

package wal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/certsrv/certsrv/internal/fsutil"
)

// LSN is a log sequence number. The first record of a log set has LSN 1 and
// every later record the LSN of the one before plus one.
type LSN = uint64

// RecordType is the type of a record. 0 is invalid; the caller owns the
// meaning of every other value.
type RecordType uint8

// Signature identifies a log set. It is random, made when the log set is
// created, and written into every generation header.
type Signature [16]byte

// Options configure Create and Open.
type Options struct {
	Dir         string // log directory
	Base        string // file name base; "" means DefaultBase
	SegmentSize int64  // Append rolls before a generation would exceed this size; 0 means DefaultSegmentSize
	// Signature is, for Create, the signature to write (zero: a random one is
	// made) and, for Open, the one every generation must have (zero: accept
	// the one the generations have, as long as they all agree).
	Signature Signature
	Logger    *slog.Logger // nil: discard
	// MinLastLSN, for Open, is an LSN the log is known to have held (the
	// database applied records through it). A "torn tail" whose cut would
	// leave the log ending before it is damage to records that were
	// acknowledged, not the trace of a crash: Open then fails with
	// ErrCorrupt and cuts nothing. Zero means no such knowledge.
	MinLastLSN LSN
}

// Record is one record read back from the log.
type Record struct {
	LSN     LSN
	Type    RecordType
	Time    time.Time // wall-clock time the record was appended
	Payload []byte    // owned by the receiver: never reused by the log
	Gen     uint32    // generation the record lives in
}

// GenInfo describes one generation file.
type GenInfo struct {
	Gen               uint32
	Path              string
	Size              int64 // bytes of header and whole records (durable bytes for the current generation)
	FirstLSN, LastLSN LSN   // 0,0 for a generation without records
	Created           time.Time
	Sealed            bool // false only for the current (newest) generation

	Signature Signature // log-set signature in the header
	BaseLSN   LSN       // LSN the generation's first record has or would have (header field)
	Checksum  uint32    // final checksum: CRC-32C of bytes [HeaderSize, Size)

	prevCreated  time.Time // header: predecessor's creation time
	prevChecksum uint32    // header: predecessor's final checksum
}

// chunk is a run of encoded records bound for one generation, queued for
// the writer goroutine.
type chunk struct {
	cut         bool   // create generation gen before writing buf
	gen         uint32 // generation buf is written to
	buf         []byte // encoded records
	first, last LSN    // LSNs in buf; 0,0 if none
}

// Log is an open log set: the writer of its newest generation and a reader
// of all of them. Its methods are safe for concurrent use.
type Log struct {
	dir     string
	base    string
	segSize int64
	sig     Signature
	logger  *slog.Logger

	// delMu orders DeleteThrough against readers opening their files.
	delMu sync.Mutex

	mu       sync.Mutex
	work     *sync.Cond // the writer waits here for queued chunks or closing
	done     *sync.Cond // Append and Roll wait here for durability or a cut
	queue    []*chunk   // chunks not yet taken by the writer; the last one takes new records
	free     []*chunk   // written chunks kept for reuse
	tailGen  uint32     // generation the next record goes to
	tailSize int64      // size tailGen will have once every queued byte is written
	nextLSN  LSN        // LSN the next Append gets
	durable  LSN        // highest LSN written and fsynced
	cur      uint32     // generation the writer's file holds
	gens     []GenInfo  // present generations, ascending; the last is cur; sizes are durable
	err      error      // set when a write, fsync or cut failed: the log is failed
	drops    []LSN      // per dropUnsynced so far, the first LSN it dropped
	dropErr  error      // why the last drop happened (matches ErrNoSpace)
	closing  bool
	closed   bool

	writerDone chan struct{}

	// Owned by the writer goroutine (and by Create/Open before it starts).
	f             *os.File
	fileSize      int64  // bytes written to f
	running       uint32 // CRC-32C of the current generation's record bytes written so far
	syncedSize    int64  // fileSize as of the last fsync or cut: what is durable
	syncedRunning uint32 // running as of the same moment
	createdNS     int64  // creation time of the current generation
	next          LSN    // LSN after the last record written to f

	// syncs counts file fsyncs made by the writer; syncFile makes them. Tests
	// replace syncFile to inject failures.
	syncs    atomic.Int64
	syncNS   atomic.Int64 // total time spent in those fsyncs, in nanoseconds
	syncFile func(*os.File) error
}

func (o *Options) normalize() (Options, error) {
	n := *o
	if n.Dir == "" {
		return n, errors.New("log options: empty directory")
	}
	if n.Base == "" {
		n.Base = DefaultBase
	}
	if n.SegmentSize <= 0 {
		n.SegmentSize = DefaultSegmentSize
	}
	if n.SegmentSize < HeaderSize+RecordHeaderSize {
		return n, fmt.Errorf("log options: segment size %d below the minimum %d", n.SegmentSize, HeaderSize+RecordHeaderSize)
	}
	if n.Logger == nil {
		n.Logger = discardLogger()
	}
	return n, nil
}

func newLog(o Options) *Log {
	l := &Log{
		dir:        o.Dir,
		base:       o.Base,
		segSize:    o.SegmentSize,
		sig:        o.Signature,
		logger:     o.Logger,
		writerDone: make(chan struct{}),
		syncFile:   (*os.File).Sync,
	}
	l.work = sync.NewCond(&l.mu)
	l.done = sync.NewCond(&l.mu)
	return l
}

// Create makes a new log set in opts.Dir (created with mode 0700 if
// missing), which must hold no generation of opts.Base: generation 1, empty,
// whose first record will have LSN 1.
func Create(opts Options) (*Log, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	ents, _, err := listGenerations(o.Dir, o.Base)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("create log in %s: generation %d already exists: %w", o.Dir, ents[0].gen, fs.ErrExist)
	}
	if o.Signature == (Signature{}) {
		if _, err := rand.Read(o.Signature[:]); err != nil {
			return nil, fmt.Errorf("create log: make signature: %w", err)
		}
	}
	l := newLog(o)
	l.next = 1
	if err := l.cut(1); err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	l.start()
	return l, nil
}

// Open opens the log set in opts.Dir. It verifies every generation (header,
// signature, generation continuity, chain, record CRCs and LSNs), cuts a torn
// tail of the newest generation at its last whole record, replaces a newest
// generation that is a torn creation, and removes stray temporary files; see
// doc.go. Any other damage is an error matching ErrCorrupt, usually a
// *CorruptError. A directory without generations is an error matching
// fs.ErrNotExist.
func Open(opts Options) (*Log, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	res, err := walkDir(context.Background(), walkOptions{dir: o.Dir, base: o.Base, sig: o.Signature, repair: true, logger: o.Logger, minLast: o.MinLastLSN})
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	last := &res.gens[len(res.gens)-1]
	o.Signature = last.Signature
	l := newLog(o)
	l.gens = res.gens
	l.cur = last.Gen
	l.next = nextLSN(last)
	l.running = last.Checksum
	l.createdNS = unixNano(last.Created)
	l.fileSize = last.Size
	f, err := os.OpenFile(last.Path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("open log generation %d: %w", last.Gen, err)
	}
	l.f = f
	if res.recreate != 0 {
		if err := l.cut(res.recreate); err != nil {
			f.Close()
			return nil, fmt.Errorf("open log: recreate generation %d: %w", res.recreate, err)
		}
	}
	l.start()
	return l, nil
}

// start initialises the queue state from the writer state and starts the
// writer goroutine.
func (l *Log) start() {
	l.syncedSize, l.syncedRunning = l.fileSize, l.running
	l.tailGen = l.cur
	l.tailSize = l.fileSize
	l.nextLSN = l.next
	l.durable = l.next - 1
	go l.writer()
}

// Append adds one record and returns its LSN once the record is written and
// fsynced. Concurrent calls share writes and fsyncs (group commit). A record
// that would take the current generation past the segment size goes to a new
// generation (alone, if it is larger than the segment size).
//
// If ctx is done before the record is queued, Append returns ctx.Err() and
// the record is not written. Once queued, Append waits for the outcome
// whatever ctx does: the record is durable, or the log has failed. A write or
// fsync failure fails the log: that Append and every later one return an
// error; fsync is never retried. A write that finds the file system full
// does not: the records not yet durable are dropped and their Appends return
// ErrNoSpace (see doc.go). Append does not retain payload.
func (l *Log) Append(ctx context.Context, t RecordType, payload []byte) (LSN, error) {
	if t == 0 {
		return 0, ErrInvalidType
	}
	if len(payload) > MaxPayload {
		return 0, fmt.Errorf("append %d bytes: %w", len(payload), ErrTooLarge)
	}
	now := time.Now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	size := int64(recordSize(len(payload)))
	if l.tailSize > HeaderSize && l.tailSize+size > l.segSize {
		l.enqueueCut()
	}
	if len(l.queue) == 0 {
		l.queue = append(l.queue, l.newChunk(false, l.tailGen))
	}
	c := l.queue[len(l.queue)-1]
	lsn := l.nextLSN
	l.nextLSN++
	c.buf = appendRecord(c.buf, t, lsn, now, payload)
	if c.first == 0 {
		c.first = lsn
	}
	c.last = lsn
	l.tailSize += size
	l.work.Signal()
	epoch := len(l.drops)
	for l.durable < lsn && l.err == nil && len(l.drops) == epoch {
		l.done.Wait()
	}
	if len(l.drops) > epoch {
		// LSNs were handed out again from the first dropped one: the
		// record is durable only if it came before it.
		if lsn < l.drops[epoch] {
			return lsn, nil
		}
		return 0, l.dropErr
	}
	if l.durable >= lsn {
		return lsn, nil
	}
	return 0, l.err
}

// usable reports why the log cannot take a request, if it cannot. l.mu is held.
func (l *Log) usable() error {
	if l.closed || l.closing {
		return ErrClosed
	}
	return l.err
}

// newChunk returns an empty chunk, reusing a written one if possible. l.mu is held.
func (l *Log) newChunk(cut bool, gen uint32) *chunk {
	var c *chunk
	if n := len(l.free); n > 0 {
		c = l.free[n-1]
		l.free = l.free[:n-1]
		c.buf = c.buf[:0]
		c.first, c.last = 0, 0
	} else {
		c = &chunk{}
	}
	c.cut, c.gen = cut, gen
	return c
}

// enqueueCut queues the creation of the generation after the tail one. l.mu is held.
func (l *Log) enqueueCut() {
	l.tailGen++
	l.tailSize = HeaderSize
	l.queue = append(l.queue, l.newChunk(true, l.tailGen))
}

// Roll seals the current generation and starts the next one, after every
// record appended before the call is durable. It returns the number of the
// sealed generation. Roll always creates a new generation, even when the
// current one holds no records.
func (l *Log) Roll() (sealed uint32, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	sealed = l.tailGen
	l.enqueueCut()
	target := l.tailGen
	l.work.Signal()
	epoch := len(l.drops)
	for l.cur < target && l.err == nil && len(l.drops) == epoch {
		l.done.Wait()
	}
	if l.cur < target {
		if l.err == nil {
			return 0, l.dropErr
		}
		return 0, l.err
	}
	return sealed, nil
}

// writer is the single goroutine that writes queued chunks, fsyncs them and
// creates generations. It exits when the log is closing and the queue is
// empty.
func (l *Log) writer() {
	defer close(l.writerDone)
	l.mu.Lock()
	for {
		for len(l.queue) == 0 && !l.closing {
			l.work.Wait()
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		q := l.queue
		l.queue = nil
		failed := l.err != nil
		l.mu.Unlock()
		reuse := true
		if !failed {
			if err := l.flush(q); err != nil {
				var ns *noSpaceError
				if errors.As(err, &ns) {
					err = l.dropUnsynced(ns)
					reuse = false
				}
				if err != nil {
					l.mu.Lock()
					if l.err == nil {
						l.err = err
						l.logger.Error("log failed", "err", err)
					}
					l.done.Broadcast()
					l.mu.Unlock()
				}
			}
		}
		l.mu.Lock()
		for _, c := range q {
			if reuse && cap(c.buf) <= 1<<20 && len(l.free) < 8 {
				l.free = append(l.free, c)
			}
		}
	}
}

// noSpaceError is a write of record bytes, or the creation of a
// generation, that failed because the file system was full (ENOSPC,
// EDQUOT). flush returns it; the writer then drops what was not durable
// instead of failing the log. An fsync that fails is never one of these:
// after a failed fsync the state of the written pages is unknown.
type noSpaceError struct{ err error }

func (e *noSpaceError) Error() string { return e.err.Error() }
func (e *noSpaceError) Unwrap() error { return e.err }

// noSpace wraps err as a *noSpaceError when it is ENOSPC or EDQUOT.
func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &noSpaceError{err}
	}
	return err
}

// dropUnsynced undoes a flush that ran out of space: it truncates the
// current generation back to its last fsynced size (fsyncing the
// truncation, so no dropped byte can come back after a crash), discards
// every queued chunk, hands LSNs out again from the first one not durable,
// and wakes the writers whose records were dropped with ErrNoSpace. The log
// stays usable. An error here (the truncation or its fsync failing) fails
// the log. Called by the writer goroutine with l.mu not held.
func (l *Log) dropUnsynced(cause *noSpaceError) error {
	if err := l.f.Truncate(l.syncedSize); err != nil {
		return fmt.Errorf("after %v: truncate log generation %d to %d bytes: %w", cause, l.cur, l.syncedSize, err)
	}
	if err := l.syncFile(l.f); err != nil {
		return fmt.Errorf("after %v: sync log generation %d: %w", cause, l.cur, err)
	}
	l.fileSize, l.running = l.syncedSize, l.syncedRunning
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next = l.durable + 1
	l.drops = append(l.drops, l.durable+1)
	l.dropErr = fmt.Errorf("%w: %v", ErrNoSpace, cause)
	l.queue = nil
	l.nextLSN = l.durable + 1
	l.tailGen, l.tailSize = l.cur, l.syncedSize
	l.logger.Warn("log file system full: records after the last durable one were not written; appends are refused until there is space",
		"err", cause, "durable_lsn", l.durable, "gen", l.cur)
	l.done.Broadcast()
	return nil
}

// flush writes the chunks of q in order: one write per chunk, one fsync per
// generation touched, a cut where a chunk asks for one. After each fsync and
// each cut it publishes the new durable state and wakes the waiters.
func (l *Log) flush(q []*chunk) error {
	dirty := false
	var last LSN
	for _, c := range q {
		if c.cut {
			if dirty {
				if err := l.syncAndPublish(last); err != nil {
					return err
				}
				dirty = false
			}
			if err := l.cut(c.gen); err != nil {
				return err // a *noSpaceError when the new file could not be written
			}
		}
		if len(c.buf) == 0 {
			continue
		}
		if _, err := l.f.Write(c.buf); err != nil {
			return noSpace(fmt.Errorf("write log generation %d: %w", l.cur, err))
		}
		l.fileSize += int64(len(c.buf))
		l.running = crc32.Update(l.running, castagnoli, c.buf)
		l.next = c.last + 1
		last = c.last
		dirty = true
	}
	if dirty {
		return l.syncAndPublish(last)
	}
	return nil
}

// syncAndPublish fsyncs the current file and makes records through last
// visible as durable.
func (l *Log) syncAndPublish(last LSN) error {
	start := time.Now()
	err := l.syncFile(l.f)
	l.syncNS.Add(int64(time.Since(start)))
	l.syncs.Add(1)
	if err != nil {
		return fmt.Errorf("sync log generation %d: %w", l.cur, err)
	}
	l.syncedSize, l.syncedRunning = l.fileSize, l.running
	l.mu.Lock()
	g := &l.gens[len(l.gens)-1]
	g.Size = l.fileSize
	g.Checksum = l.running
	if g.FirstLSN == 0 && g.BaseLSN < l.next {
		g.FirstLSN = g.BaseLSN
	}
	if l.next > g.BaseLSN {
		g.LastLSN = l.next - 1
	}
	l.durable = last
	l.done.Broadcast()
	l.mu.Unlock()
	return nil
}

// cut seals the current generation (whose bytes are already fsynced) and
// makes generation gen the current one. The new file is created durably:
// header written to <name>.tmp, fsynced, renamed, directory fsynced. A crash
// before the rename leaves a stray .tmp file that Open removes; a crash after
// it leaves a complete, empty generation.
func (l *Log) cut(gen uint32) error {
	created := time.Now().UnixNano()
	if created <= l.createdNS {
		created = l.createdNS + 1
	}
	h := Header{
		Signature:    l.sig,
		Gen:          gen,
		Created:      time.Unix(0, created),
		PrevChecksum: l.running,
		FirstLSN:     l.next,
	}
	if l.f != nil {
		h.PrevCreated = time.Unix(0, l.createdNS)
	}
	path := filepath.Join(l.dir, FileName(l.base, gen))
	if err := fsutil.WriteFileAtomic(path, encodeHeader(h), 0o600); err != nil {
		return noSpace(fmt.Errorf("create log generation %d: %w", gen, err))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open log generation %d: %w", gen, err)
	}
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			f.Close()
			return fmt.Errorf("close log generation %d: %w", l.cur, err)
		}
	}
	info := GenInfo{
		Gen:          gen,
		Path:         path,
		Size:         HeaderSize,
		Created:      h.Created,
		Signature:    l.sig,
		BaseLSN:      l.next,
		prevCreated:  h.PrevCreated,
		prevChecksum: h.PrevChecksum,
	}
	l.f = f
	l.fileSize = HeaderSize
	l.running = 0
	l.syncedSize, l.syncedRunning = HeaderSize, 0
	l.createdNS = created
	l.mu.Lock()
	if n := len(l.gens); n > 0 {
		l.gens[n-1].Sealed = true
	}
	l.gens = append(l.gens, info)
	l.cur = gen
	l.done.Broadcast()
	l.mu.Unlock()
	return nil
}

// LastLSN returns the LSN of the last durable record, 0 if there is none.
func (l *Log) LastLSN() LSN {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

// Current returns the number of the current (newest) generation.
func (l *Log) Current() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// Generations describes the present generations, ascending. Sizes and LSNs
// of the current generation are those of its durable records.
func (l *Log) Generations() []GenInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.gens)
}

// Signature returns the log-set signature.
func (l *Log) Signature() Signature { return l.sig }

// SyncStats returns how many fsyncs of log data the log has made since it
// was opened and the total time they took. Two samples give the mean fsync
// latency between them: the signal a background reader (a database
// snapshot streamed to a backup) watches to leave the disk to the log.
func (l *Log) SyncStats() (count int64, total time.Duration) {
	// Read the time first: a sync that ends between the loads then counts
	// in neither or only in count, never as time without a sync.
	total = time.Duration(l.syncNS.Load())
	return l.syncs.Load(), total
}

// Dir returns the log directory.
func (l *Log) Dir() string { return l.dir }

// Base returns the file name base.
func (l *Log) Base() string { return l.base }

// DeleteThrough deletes the generations numbered gen or lower, oldest first,
// never the current one, then fsyncs the directory. It returns the numbers of
// the generations it deleted, also when it stops at an error.
func (l *Log) DeleteThrough(gen uint32) (deleted []uint32, err error) {
	l.delMu.Lock()
	defer l.delMu.Unlock()
	l.mu.Lock()
	if l.closed || l.closing {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	var victims []GenInfo
	for _, g := range l.gens {
		if g.Gen <= gen && g.Gen < l.cur {
			victims = append(victims, g)
		}
	}
	l.mu.Unlock()
	for _, g := range victims {
		if err = os.Remove(g.Path); err != nil {
			err = fmt.Errorf("delete log generation %d: %w", g.Gen, err)
			break
		}
		deleted = append(deleted, g.Gen)
		l.mu.Lock()
		l.gens = slices.DeleteFunc(l.gens, func(x GenInfo) bool { return x.Gen == g.Gen })
		l.mu.Unlock()
	}
	if len(deleted) > 0 {
		if serr := fsutil.SyncDir(l.dir); serr != nil && err == nil {
			err = serr
		}
	}
	return deleted, err
}

// Close waits for queued records to be written, stops the writer and closes
// the current file. Appends that start after Close has begun return
// ErrClosed. Closing a closed log returns ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed || l.closing {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closing = true
	l.work.Signal()
	l.mu.Unlock()
	<-l.writerDone
	l.mu.Lock()
	l.closed = true
	l.done.Broadcast()
	l.mu.Unlock()
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("close log generation %d: %w", l.cur, err)
	}
	return nil
}

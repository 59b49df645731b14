package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// snapshotFenceTimeout bounds how long the fence waits for SQLite readers
// that still need WAL frames before the WAL can be fully backfilled.
const snapshotFenceTimeout = 10 * time.Second

// Snapshot is a consistent image of the database file as of log position
// LSN, readable while writers continue. Its bytes are the first Size bytes
// of the live database file, which SQLite does not change while the
// snapshot's read transaction pins them (see doc.go). The copy's meta table
// holds LSN and the signatures.
//
// A snapshot also holds the log (HoldLogs) from LogGen, the generation
// holding record LSN+1: until ReleaseLogs or Close, neither circular
// logging nor TruncateLogs deletes the generations a full backup lists
// with it.
//
// Close releases the pin and the hold; until then the SQLite WAL grows and
// the held generations stay, so callers must close snapshots they abandon.
type Snapshot struct {
	d       *DB
	lsn     uint64
	size    int64
	sigs    Signatures
	logGen  uint32
	f       *os.File
	pin     *sql.Conn
	release func() // ends the log hold
	pace    *pacer // holds ReadAt callers back while the log's fsyncs slow down (pace.go)

	mu     sync.RWMutex // ReadAt holds it shared; Close exclusively
	closed bool
}

// Snapshot takes a snapshot; only one can be open at a time
// (ErrSnapshotOpen). It briefly fences writers (see doc.go): with
// the applier paused and a connection holding BEGIN IMMEDIATE, it
// checkpoints the SQLite WAL until every frame is in the database file,
// starts the pinning read transaction and reads applied_lsn (S) and the
// page count inside it, then lifts the fence. The log is held (HoldLogs)
// from the checkpoint generation before the fence, and from LogGen, the
// generation holding record S+1, once S is known; every checkpoint taken
// before the fence is at or below S, so that generation is present and is
// never deleted before ReleaseLogs or Close. A full backup that lists
// the generations from LogGen on is thus safe from circular logging and
// truncation from the moment it has its snapshot until it calls
// ReleaseLogs or Close.
func (d *DB) Snapshot(ctx context.Context) (*Snapshot, error) {
	done, err := d.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	d.sqlCkptMu.Lock()
	defer d.sqlCkptMu.Unlock()
	if d.pins.Load() > 0 {
		return nil, fmt.Errorf("snapshot: %w", ErrSnapshotOpen)
	}
	d.pins.Add(1)
	// Hold the log from the checkpoint generation before the fence, so the
	// fence never waits for a deletion in progress. Every checkpoint taken
	// before the fence is at or below S, so this floor is at or below the
	// generation holding S+1, and no later deletion passes it.
	d.stateMu.Lock()
	floor := d.ckpt.Gen
	d.stateMu.Unlock()
	pre := d.HoldLogs(floor)
	s, err := d.takeSnapshot(ctx)
	if err != nil {
		pre()
		d.pins.Add(-1)
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	// Narrow the hold to the generation holding S+1; the new hold is in
	// place before the floor is released.
	s.release = d.HoldLogs(s.logGen)
	pre()
	d.stateMu.Lock()
	d.snaps[s] = struct{}{}
	d.stateMu.Unlock()
	return s, nil
}

func (d *DB) takeSnapshot(ctx context.Context) (_ *Snapshot, err error) {
	// Backfill what is there before fencing, so the fenced part is short.
	if _, _, _, err := d.sqliteCheckpoint(ctx, "PASSIVE"); err != nil {
		return nil, err
	}
	pin, err := d.pdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	pinned := false
	defer func() {
		if err != nil {
			if pinned {
				pin.ExecContext(context.Background(), "ROLLBACK")
			}
			pin.Close()
		}
	}()
	fence, err := d.wdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer fence.Close()

	d.writeGate.Lock()
	start := time.Now()
	fenced := false
	defer func() {
		if fenced {
			fence.ExecContext(context.Background(), "ROLLBACK")
		}
		d.writeGate.Unlock()
		d.logger.Debug("snapshot fence", "duration", time.Since(start))
	}()
	if _, err := fence.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, fmt.Errorf("fence: %w", err)
	}
	fenced = true
	for {
		_, walFrames, done, err := d.sqliteCheckpoint(ctx, "PASSIVE")
		if err != nil {
			return nil, err
		}
		if walFrames <= 0 || walFrames == done {
			break
		}
		if time.Since(start) > snapshotFenceTimeout {
			return nil, fmt.Errorf("%d of %d WAL frames backfilled after %v: %w", done, walFrames, snapshotFenceTimeout, ErrSnapshotBusy)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := pin.ExecContext(ctx, "BEGIN"); err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	pinned = true
	meta, err := readMeta(ctx, pin)
	if err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	var pages, pageSize int64
	if err := pin.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	if err := pin.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	f, err := os.Open(d.opts.DBPath)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{d: d, lsn: meta.AppliedLSN, size: pages * pageSize, sigs: meta.Signatures, f: f, pin: pin,
		pace: newPacer(d.log.SyncStats)}
	if fi, err := f.Stat(); err != nil || fi.Size() < s.size {
		f.Close()
		if err == nil {
			err = fmt.Errorf("database file has %d bytes, the snapshot needs %d", fi.Size(), s.size)
		}
		return nil, err
	}
	// The applier is paused, so applied_lsn is S and every checkpoint so
	// far was at or below it: the generation holding S+1 is present, and
	// the caller's hold from the checkpoint generation keeps it.
	s.logGen = d.genFor(s.lsn + 1)
	return s, nil
}

// LSN returns S: the snapshot reflects every log record <= S and no other.
func (s *Snapshot) LSN() uint64 { return s.lsn }

// Size returns the number of bytes of the snapshot.
func (s *Snapshot) Size() int64 { return s.size }

// Signatures returns the signatures recorded in the snapshot.
func (s *Snapshot) Signatures() Signatures { return s.sigs }

// LogGen returns the generation that holds (or will hold) record LSN+1:
// the first generation a full backup with this snapshot needs. The snapshot
// holds the log from it until ReleaseLogs or Close.
func (s *Snapshot) LogGen() uint32 { return s.logGen }

// ReleaseLogs ends the snapshot's log hold while keeping the snapshot open
// and readable. A full backup calls it once it has copied every generation
// it lists, before it asks TruncateLogs to delete them: while the hold
// exists, TruncateLogs keeps LogGen and every later generation, including
// those the backup has just copied. It is idempotent and safe for
// concurrent use; Close ends the hold in any case.
func (s *Snapshot) ReleaseLogs() { s.release() }

// ReadAt reads snapshot bytes at off, straight from the pinned database
// file (io.ReaderAt; io.EOF at Size). It is safe for concurrent use and
// fails with ErrClosed after Close.
func (s *Snapshot) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.readAt(p, off)
	s.pace.wait(n)
	return n, err
}

func (s *Snapshot) readAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, invalid("negative offset %d", off)
	}
	if off >= s.size {
		return 0, io.EOF
	}
	short := false
	if rest := s.size - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	n, err := s.f.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// SetPaced turns the snapshot's pacing on (the default) or off. A paced
// snapshot is background work: ReadAt holds its caller back while the log's
// fsync latency rises above the lowest seen, so a backup streamed to the
// CA's own disk leaves the disk to committing writers, and runs at full
// speed when nobody writes or the bytes go elsewhere (see pace.go). Turn it
// off only for a copy that must finish as fast as possible whatever it
// costs the writers.
func (s *Snapshot) SetPaced(on bool) { s.pace.setOff(!on) }

// PaceStats reports the pacing of this snapshot so far: the rate ReadAt
// hands out bytes at now (bytes/s; 8e9 or more means unlimited) and the
// total time ReadAt callers were held back.
func (s *Snapshot) PaceStats() (rate float64, held time.Duration) { return s.pace.report() }

// NewReader returns a reader of the whole snapshot from its first byte.
func (s *Snapshot) NewReader() io.Reader { return io.NewSectionReader(s, 0, s.size) }

// Close releases the pin, the file and the log hold. It is safe to call
// more than once and concurrently with ReadAt; later reads fail with
// ErrClosed. Generations the hold kept are deleted by the next checkpoint
// (with circular logging) or TruncateLogs, not by Close.
func (s *Snapshot) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.f.Close()
	if _, rerr := s.pin.ExecContext(context.Background(), "ROLLBACK"); rerr != nil && err == nil {
		err = rerr
	}
	s.pin.Close()
	s.release()
	s.d.pins.Add(-1)
	s.d.stateMu.Lock()
	delete(s.d.snaps, s)
	s.d.stateMu.Unlock()
	return err
}

package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/wal"
)

// state is a session's state; doc.go has the table of calls allowed in each.
type state int

const (
	// statePrepared: the session exists and no file is open.
	statePrepared state = iota + 1
	// stateOpen: one file is open.
	stateOpen
	// stateFailed: a log could not be served (corrupt or missing); only
	// CloseFile and End are allowed, and End records nothing.
	stateFailed
	// stateEnded: End, abort, lease expiry or Close ended the session; its
	// id is forgotten.
	stateEnded
)

// Chunk sizes of ReadFile. A requested size is clamped to
// [MinChunk, MaxChunk]; zero means DefaultChunk. MaxChunk is 4 MiB less
// 1 KiB so that a FileChunk message stays within gRPC's default 4 MiB
// receive limit.
const (
	MinChunk     = 64 << 10
	MaxChunk     = 4<<20 - 1<<10
	DefaultChunk = 1 << 20
)

// session is one backup session. Every field is guarded by Manager.mu;
// file contents are read outside it while readers > 0 keeps the snapshot
// alive.
type session struct {
	id        string
	principal string
	typ       Type
	state     state
	endReason string
	created   time.Time
	lastUsed  time.Time

	snap    Snapshot // full backups: the pinned database copy
	snapLSN uint64   // full backups: S, the LSN the snapshot reflects
	since   Record   // logs-only backups: the backup this one continues

	dbListed   bool
	dbRead     bool
	logsListed bool
	logs       []listedLog  // the listed generations, ascending
	before     *wal.GenInfo // the generation before logs[0] at listing time, if present
	sealed     uint32       // the generation BackupLogs sealed
	truncated  bool
	recorded   *Record // the backup's record, once TruncateLogs or End wrote it

	open       *openFile
	failure    error           // why the session failed (stateFailed)
	readers    int             // ReadFile streams in progress
	conn       <-chan struct{} // closed when the client's last known connection closes; nil: unknown
	cancelRead context.CancelFunc
	released   bool
	// releaseLogs drops a logs-only session's hold on the generations it
	// will copy (nil for a full backup, whose snapshot holds them).
	releaseLogs func()
}

// listedLog is one generation a session listed.
type listedLog struct {
	info wal.GenInfo // as the log described it when listed
	path string      // absolute, exactly as listed
	read bool        // streamed to its end and closed with all of it kept
}

// openFile is the session's open file.
type openFile struct {
	name    string
	log     int    // index in session.logs; -1 for the database
	size    int64  // known at open
	data    []byte // logs: the verified bytes served
	off     int64  // next byte to stream
	reading bool   // a ReadFile stream is in progress
}

func (s *session) short() string {
	if len(s.id) < 8 {
		return s.id
	}
	return s.id[:8]
}

// usable returns the error for a call that needs a live, not failed
// session.
func (s *session) usable() error {
	if s.state == stateFailed {
		return apierr.New(apierr.BackupSequence, "the backup failed (%v); only CloseFile and End are allowed", s.failure)
	}
	return nil
}

// fail marks the session failed with err (an *apierr.Error).
func (s *session) fail(err error) {
	if s.state != stateEnded && s.state != stateFailed {
		s.state = stateFailed
		s.failure = err
	}
}

// incomplete says what keeps the session from being complete, as a clause
// ("<name> was not read to its end"), or returns "" when the logs were
// listed and every listed file, and for a full backup the database, was
// read to its end.
func (s *session) incomplete(dbPath string) string {
	if s.typ == Full && !s.dbRead {
		return dbPath + " was not read to its end"
	}
	if !s.logsListed {
		return "the logs were never listed (GetBackupLogs)"
	}
	for _, l := range s.logs {
		if !l.read {
			return l.path + " was not read to its end"
		}
	}
	return ""
}

// checkName refuses a name OpenFile must never serve: dynamic files,
// empty, relative or unclean names. It returns nil for a name that may be
// looked up in the session's lists.
func (m *Manager) checkName(name string) error {
	for _, d := range m.dyn() {
		if name == d.Name || (d.Path != "" && name == d.Path) {
			return apierr.New(apierr.InvalidArg,
				"%s is a dynamic file: dynamic files are not served by OpenFile; fetch them from %s", name, d.URL)
		}
	}
	switch {
	case name == "":
		return apierr.New(apierr.InvalidArg, "empty file name")
	case strings.ContainsRune(name, 0):
		return apierr.New(apierr.InvalidArg, "file name %q contains a NUL byte", name)
	case !filepath.IsAbs(name):
		return apierr.New(apierr.InvalidArg, "file name %q is not an absolute path: give a name exactly as it was listed", name)
	case filepath.Clean(name) != name || hasDotDot(name):
		return apierr.New(apierr.InvalidArg, "file name %q is not a clean path (\"..\", \".\" or repeated separators)", name)
	}
	return nil
}

func hasDotDot(name string) bool {
	for _, e := range strings.Split(name, string(filepath.Separator)) {
		if e == ".." {
			return true
		}
	}
	return false
}

// OpenFile opens a file this session listed (OpenFile) and returns its
// size. Only exact names listed by this session are accepted: database and
// log names. A log is read and verified (its CRCs, its chain to the
// generation before it, and its size and final checksum against what the
// log wrote) before it is opened; a bad one fails the session with
// LogFileCorrupt naming it. One file may be open at a time (AlreadyOpen).
func (m *Manager) OpenFile(ctx context.Context, principal, id, name string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookup(ctx, principal, id)
	if err != nil {
		return 0, err
	}
	if err := s.usable(); err != nil {
		return 0, err
	}
	if s.open != nil {
		return 0, apierr.New(apierr.AlreadyOpen, "%s is open: close it before opening another file", s.open.name)
	}
	if err := m.checkName(name); err != nil {
		return 0, err
	}
	defer m.touch(s)
	if s.typ == Full && s.dbListed && name == m.paths.DB {
		if err := checkRegular(name); err != nil {
			return 0, err
		}
		s.open = &openFile{name: name, log: -1, size: s.snap.Size()}
		s.state = stateOpen
		return s.open.size, nil
	}
	idx := -1
	for i, l := range s.logs {
		if l.path == name {
			idx = i
			break
		}
	}
	if idx < 0 {
		return 0, apierr.New(apierr.NotFound, "%s was not listed by this backup session", name)
	}
	prev := s.before
	if idx > 0 {
		prev = &s.logs[idx-1].info
	}
	data, err := loadLog(ctx, s.logs[idx].info, name, prev)
	if err != nil {
		var le *LogError
		if errors.As(err, &le) {
			err = logFailure(le)
			s.fail(err)
		}
		m.log.Warn("backup log not served", "session", s.short(), "path", name, "err", err)
		return 0, err
	}
	s.open = &openFile{name: name, log: idx, size: int64(len(data)), data: data}
	s.state = stateOpen
	return s.open.size, nil
}

// logFailure is the API error for a log that cannot be served: the file is
// gone (LogFileNotFound) or damaged or changed (LogFileCorrupt). The
// message names the generation, its path and the offset; the cause is le.
func logFailure(le *LogError) *apierr.Error {
	if errors.Is(le, fs.ErrNotExist) {
		return &apierr.Error{Code: apierr.LogFileNotFound, Err: le,
			Msg: fmt.Sprintf("log generation %d (%s) is gone; the backup failed", le.Gen, le.Path)}
	}
	why := le.Err.Error()
	var ce *wal.CorruptError
	if errors.As(le.Err, &ce) {
		why = ce.Reason
		if ce.Path != le.Path {
			why = fmt.Sprintf("%s (%s)", ce.Reason, ce.Path)
		}
	}
	return &apierr.Error{Code: apierr.LogFileCorrupt, Err: le,
		Msg: fmt.Sprintf("log generation %d (%s) is corrupt at offset %d: %s; the backup failed", le.Gen, le.Path, le.Offset, why)}
}

// closeFileWait bounds how long CloseFile waits for a read in progress
// that it ended.
const closeFileWait = 5 * time.Second

// CloseFile closes the open file (CloseFile). consumed is how many bytes
// of it, from its start, the client says it received and kept: the file
// counts as read (copied, for TruncateLogs and End) only when Read
// streamed all of it and consumed equals its size. A client that stopped
// early closes with less, and the file stays uncopied however much the
// server had already sent (a small file fits in the socket buffers at
// once). A read still streaming (its client dropped the stream, the server
// has not noticed yet) is ended first, waiting up to closeFileWait; if it
// does not end, CloseFile fails with BackupSequence. A negative consumed
// is InvalidArg.
func (m *Manager) CloseFile(ctx context.Context, principal, id string, consumed int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookup(ctx, principal, id)
	if err != nil {
		return err
	}
	if s.open == nil {
		if s.state == stateFailed {
			return s.usable()
		}
		return apierr.New(apierr.BackupSequence, "no file is open")
	}
	if consumed < 0 {
		return apierr.New(apierr.InvalidArg, "close %s: consumed %d bytes is negative", s.open.name, consumed)
	}
	if s.open.reading {
		// The client has given up its read (closing a file mid-stream
		// drops the stream), but the server may not have noticed yet:
		// end the read and wait a moment for it.
		f := s.open
		if s.cancelRead != nil {
			s.cancelRead()
		}
		if !m.waitLocked(closeFileWait, func() bool { return !f.reading }) {
			return apierr.New(apierr.BackupSequence, "a read of %s is in progress", f.name)
		}
		if s.open != f {
			return apierr.New(apierr.BackupSequence, "no file is open")
		}
	}
	f := s.open
	if f.off >= f.size && consumed == f.size && s.state != stateFailed {
		if f.log < 0 {
			s.dbRead = true
		} else {
			s.logs[f.log].read = true
		}
	} else if consumed != f.size {
		m.log.Info("backup file closed before its end", "session", s.short(), "path", f.name,
			"size", f.size, "sent", f.off, "kept_by_client", consumed)
	}
	s.open = nil
	if s.state == stateOpen {
		s.state = statePrepared
	}
	return nil
}

// Read streams the open file from its current offset to its end
// (ReadFile), calling send with each chunk's offset and bytes, in order.
// chunk is clamped to [MinChunk, MaxChunk] (0: DefaultChunk). The bytes
// passed to send are valid only until send returns: Read reuses their
// memory for the next chunk, so send must copy what it keeps (a gRPC
// stream's Send marshals the message into its own buffer before it
// returns) and must not modify them. The offset advances by every chunk
// send accepted; the file counts as read when it reached the size and the
// client closes the file saying it kept every byte (CloseFile). A failing
// send, a cancelled ctx or the session ending stops the stream.
// Only one Read of a session runs at a time; its progress renews the
// lease.
func (m *Manager) Read(ctx context.Context, principal, id string, chunk int, send func(off int64, p []byte) error) error {
	m.mu.Lock()
	s, err := m.lookup(ctx, principal, id)
	if err == nil {
		err = s.usable()
	}
	if err == nil && s.open == nil {
		err = apierr.New(apierr.BackupSequence, "no file is open: call OpenFile first")
	}
	if err == nil && s.open.reading {
		err = apierr.New(apierr.BackupSequence, "a read of %s is already in progress", s.open.name)
	}
	if err != nil {
		m.mu.Unlock()
		return err
	}
	f := s.open
	f.reading = true
	s.readers++
	rctx, cancel := context.WithCancel(ctx)
	s.cancelRead = cancel
	snap := s.snap
	m.mu.Unlock()

	defer func() {
		cancel()
		m.mu.Lock()
		f.reading = false
		s.readers--
		s.cancelRead = nil
		if s.state != stateEnded {
			m.touch(s)
		} else if s.readers == 0 {
			m.releaseLocked(s)
		}
		m.idle.Broadcast()
		m.mu.Unlock()
	}()

	n := int64(clampChunk(chunk))
	// The database is read into one buffer that every chunk reuses: send
	// must be done with p when it returns (see above).
	var buf []byte
	for {
		m.mu.Lock()
		off, ended, why := f.off, s.state == stateEnded, s.endReason
		m.mu.Unlock()
		if ended {
			return apierr.New(apierr.BackupSequence, "the backup session ended: %s", why)
		}
		if off >= f.size {
			break
		}
		if err := rctx.Err(); err != nil {
			return err
		}
		k := min(n, f.size-off)
		var p []byte
		if f.log >= 0 {
			p = f.data[off : off+k]
		} else {
			if buf == nil {
				buf = make([]byte, min(n, f.size))
			}
			p = buf[:k]
			if got, err := snap.ReadAt(p, off); int64(got) < k {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return apierr.New(apierr.Unexpected, "read database snapshot at offset %d: %w", off, err)
			}
		}
		if err := send(off, p); err != nil {
			return err
		}
		m.mu.Lock()
		f.off = off + k
		if s.state != stateEnded {
			m.touch(s)
		}
		m.mu.Unlock()
	}
	if f.log < 0 {
		m.logDatabaseRead(s, f, snap)
	}
	return nil
}

func clampChunk(n int) int {
	if n == 0 {
		return DefaultChunk
	}
	return min(max(n, MinChunk), MaxChunk)
}

// TruncateLogs deletes the log generations this session copied
// (TruncateLogs), through the generation BackupLogs sealed, under the
// engine's rules (never at or after the checkpoint generation). It is
// refused with BackupSequence, naming the first unread file, unless the
// logs were listed and every listed file (and, for a full backup, the
// database) was read to its end. It first records the backup, as End
// would: a generation is never deleted that no recorded backup copied, so
// an End(abort) after TruncateLogs leaves no gap in the chain (the backup
// stays recorded). It may be called once per session.
func (m *Manager) TruncateLogs(ctx context.Context, principal, id string) (Truncation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookup(ctx, principal, id)
	if err != nil {
		return Truncation{}, err
	}
	if err := s.usable(); err != nil {
		return Truncation{}, err
	}
	if s.truncated {
		return Truncation{}, apierr.New(apierr.BackupSequence, "the logs were already truncated in this session")
	}
	if what := s.incomplete(m.paths.DB); what != "" {
		return Truncation{}, apierr.New(apierr.BackupSequence,
			"cannot truncate logs: %s; TruncateLogs needs every listed file copied first", what)
	}
	defer m.touch(s)
	if err := m.recordLocked(ctx, s); err != nil {
		return Truncation{}, err
	}
	// Every listed file is copied: the session's own hold on the logs
	// after its position must not keep its truncation from deleting them.
	m.releaseLogHolds(s)
	res, err := m.eng.TruncateLogs(ctx, s.sealed)
	if err != nil {
		return Truncation{}, engineError(err, "truncate logs through generation %d: %w", s.sealed, err)
	}
	s.truncated = true
	m.log.Info("backup truncated logs", "session", s.short(), "through_gen", s.sealed, "deleted", len(res.Deleted), "reason", res.Reason)
	return res, nil
}

// End ends the session (End). With abort false it records the backup
// (type, generations, LSNs, time) only if the session is complete: the logs
// were listed and every listed file, and for a full backup the database,
// was read to its end. An incomplete session records nothing and gets
// BackupSequence naming the first unread file; a failed one records nothing
// and gets its failure's code. With abort true nothing is recorded, except
// that a backup TruncateLogs recorded stays recorded (its logs are gone).
// Every outcome frees the session and releases its snapshot.
func (m *Manager) End(ctx context.Context, principal, id string, abort bool) (EndResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookup(ctx, principal, id)
	if err != nil {
		return EndResult{}, err
	}
	if abort {
		if rec := s.recorded; rec != nil {
			m.endLocked(s, fmt.Sprintf("aborted by the client after TruncateLogs had recorded generations %d..%d, LSN %d..%d",
				rec.FirstGen, rec.LastGen, rec.FirstLSN, rec.LastLSN))
			return EndResult{Recorded: true, Record: *rec}, nil
		}
		m.endLocked(s, "aborted by the client")
		return EndResult{}, nil
	}
	if s.state == stateFailed {
		m.endLocked(s, "ended after a failure")
		return EndResult{}, apierr.New(apierr.Of(s.failure), "the backup failed and nothing was recorded: %w", s.failure)
	}
	if what := s.incomplete(m.paths.DB); what != "" {
		m.endLocked(s, "ended incomplete")
		return EndResult{}, apierr.New(apierr.BackupSequence, "backup incomplete: %s; nothing recorded", what)
	}
	if err := m.recordLocked(ctx, s); err != nil {
		m.endLocked(s, "recording failed")
		return EndResult{}, err
	}
	rec := *s.recorded
	m.endLocked(s, fmt.Sprintf("recorded generations %d..%d, LSN %d..%d", rec.FirstGen, rec.LastGen, rec.FirstLSN, rec.LastLSN))
	return EndResult{Recorded: true, Record: rec}, nil
}

// recordLocked records complete session s's backup in the engine, once:
// TruncateLogs does before it deletes, End when TruncateLogs did not.
// m.mu must be held.
func (m *Manager) recordLocked(ctx context.Context, s *session) error {
	if s.recorded != nil {
		return nil
	}
	rec := s.record(m.now())
	if err := m.eng.RecordBackup(ctx, rec); err != nil {
		return engineError(err, "record the backup: %w; nothing recorded", err)
	}
	s.recorded = &rec
	return nil
}

// record is the Record of a complete session. A full backup covers the
// LSNs from the snapshot's S through the last record of the listed logs; a
// logs-only backup the LSNs its generations hold or, when they hold none,
// the single LSN they follow (FirstLSN = LastLSN = the last LSN before
// them).
func (s *session) record(now time.Time) Record {
	rec := Record{Type: s.typ, FirstGen: s.logs[0].info.Gen, LastGen: s.sealed, Time: now}
	var last uint64
	for _, l := range s.logs {
		last = max(last, l.info.LastLSN)
	}
	switch s.typ {
	case Full:
		rec.FirstLSN = s.snapLSN
		rec.LastLSN = max(s.snapLSN, last)
	case LogsOnly:
		rec.FirstLSN, rec.LastLSN = s.logs[0].info.BaseLSN, last
		if last == 0 {
			// No record since the last backup: the range is the single
			// position the chain has reached.
			rec.FirstLSN = s.logs[0].info.BaseLSN - 1
			rec.LastLSN = rec.FirstLSN
		}
	}
	return rec
}

// pacedSnapshot is a snapshot that yields to the CA's log writes
// (store.Snapshot) and can say how much it held its reader back.
type pacedSnapshot interface {
	PaceStats() (rate float64, held time.Duration)
}

// logDatabaseRead logs the end of the database file's read, with the time
// the engine held the read back to leave the disk to committing writers.
func (m *Manager) logDatabaseRead(s *session, f *openFile, snap Snapshot) {
	attrs := []any{"session", s.short(), "path", f.name, "bytes", f.size}
	if p, ok := snap.(pacedSnapshot); ok {
		_, held := p.PaceStats()
		attrs = append(attrs, "held_back_for_writers", held.Round(time.Millisecond))
	}
	m.log.Info("backup database read", attrs...)
}

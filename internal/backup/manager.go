package backup

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// DefaultLease is the idle time after which a session is aborted when
// Options.Lease is zero. It matches the configuration default (BackupLease).
const DefaultLease = 2 * time.Minute

// DefaultGoneGrace is how long a session whose client's connection closed
// is kept for the client to come back on a new connection, when
// Options.GoneGrace is zero (and the lease is longer).
const DefaultGoneGrace = 10 * time.Second

// closeWait bounds how long Close waits for reads in progress to return
// before it gives up releasing their snapshot itself.
const closeWait = 10 * time.Second

// Options configure a Manager (and the Service around it).
type Options struct {
	// Lease is how long a session may stay idle before it is aborted; zero
	// means DefaultLease.
	Lease time.Duration
	// DynamicFiles lists the CA's dynamic files (CA certificates and CRLs
	// under publish/). Nil means there are none.
	DynamicFiles func() []DynamicFile
	// Principal returns the authenticated principal of an RPC's context.
	// The Service needs it; the Manager does not use it.
	Principal func(ctx context.Context) (string, bool)
	// ConnClosed returns a channel that is closed when the connection the
	// call whose context ctx is came on closes, or nil when that is not
	// known (the server's ConnClosed). With it, a session whose client
	// vanished (its connection closed, no read in progress) ends after
	// GoneGrace instead of after the whole lease. Nil means the lease
	// alone ends it.
	ConnClosed func(ctx context.Context) <-chan struct{}
	// GoneGrace is how long a session outlives its client's connection
	// without a call on another one; zero means DefaultGoneGrace, and it
	// is never longer than Lease.
	GoneGrace time.Duration
	// Shutdown is what ServerControl(CSCONTROL_SHUTDOWN) calls, in its own
	// goroutine, after it has answered. Nil means shutdown is not available.
	Shutdown func()
	// Logger receives session events; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests replace it to expire
	// leases without waiting.
	Now func() time.Time
}

// File is one entry of a certbcli.h file list: a type tag (TagDatabase,
// TagLog, TagLogDir, TagCheckpointDir, TagDynamic), a name (an absolute
// server path, or a file name for dynamic files), a size when known and,
// for dynamic files, the URL to fetch it from.
type File struct {
	Tag  uint32
	Name string
	Size int64
	URL  string
}

// EndResult is what End did: whether the backup was recorded and, if so,
// the record.
type EndResult struct {
	Recorded bool
	Record   Record
}

// Manager runs backup sessions over an Engine: at most one at a time, owned
// by the principal that prepared it, with an idle lease. Its methods are
// the certbcli.h backup functions, server half; doc.go gives the state
// machine. Every method is safe for concurrent use. Errors are
// *apierr.Error values.
type Manager struct {
	eng   Engine
	paths Paths
	lease time.Duration
	grace time.Duration                         // GoneGrace
	conn  func(context.Context) <-chan struct{} // ConnClosed; nil: unknown
	dyn   func() []DynamicFile
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	idle   *sync.Cond // signalled when a session's reads drop to zero
	cur    *session   // the active session; nil when none
	closed bool

	stop        chan struct{}
	janitorDone chan struct{}
}

// NewManager returns a Manager over eng and starts its lease janitor. Close
// stops it.
func NewManager(eng Engine, opts Options) (*Manager, error) {
	if eng == nil {
		return nil, errors.New("backup: nil engine")
	}
	paths, err := absPaths(eng.Paths())
	if err != nil {
		return nil, err
	}
	m := &Manager{
		eng:         eng,
		paths:       paths,
		lease:       opts.Lease,
		grace:       opts.GoneGrace,
		conn:        opts.ConnClosed,
		dyn:         opts.DynamicFiles,
		log:         opts.Logger,
		now:         opts.Now,
		stop:        make(chan struct{}),
		janitorDone: make(chan struct{}),
	}
	if m.lease <= 0 {
		m.lease = DefaultLease
	}
	if m.grace <= 0 {
		m.grace = DefaultGoneGrace
	}
	m.grace = min(m.grace, m.lease)
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.dyn == nil {
		m.dyn = func() []DynamicFile { return nil }
	}
	m.idle = sync.NewCond(&m.mu)
	go m.janitor()
	return m, nil
}

func absPaths(p Paths) (Paths, error) {
	var err error
	for _, s := range []*string{&p.DB, &p.LogDir, &p.SysDir} {
		if *s == "" {
			return Paths{}, errors.New("backup: engine paths incomplete")
		}
		if *s, err = filepath.Abs(*s); err != nil {
			return Paths{}, fmt.Errorf("backup: absolute path of %s: %w", *s, err)
		}
	}
	if p.LogBase == "" {
		p.LogBase = wal.DefaultBase
	}
	return p, nil
}

// Lease returns the idle lease of sessions.
func (m *Manager) Lease() time.Duration { return m.lease }

// Close aborts the active session, if any, and stops the lease janitor. It
// waits (up to 10 s) for a read in progress to return so that the session's
// snapshot is released before Close returns. Later calls fail with an error
// whose cause is ErrClosed. Close may be called more than once.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	s := m.cur
	if s != nil {
		m.endLocked(s, "the backup service closed")
	}
	m.mu.Unlock()
	close(m.stop)
	<-m.janitorDone
	if s == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.waitLocked(closeWait, func() bool { return s.readers == 0 }) {
		m.log.Warn("backup service closed with a read still in progress; its snapshot is released when the read returns",
			"session", s.short())
	}
	return nil
}

// waitLocked waits until done reports true or d has passed, and returns
// done's last answer. m.mu must be held; done is called with it held, after
// every broadcast of m.idle (which reads signal when they end).
func (m *Manager) waitLocked(d time.Duration, done func() bool) bool {
	deadline := time.Now().Add(d)
	t := time.AfterFunc(d, func() {
		m.mu.Lock()
		m.idle.Broadcast()
		m.mu.Unlock()
	})
	defer t.Stop()
	for !done() && time.Now().Before(deadline) {
		m.idle.Wait()
	}
	return done()
}

// janitor aborts a session idle for longer than the lease.
func (m *Manager) janitor() {
	defer close(m.janitorDone)
	tick := min(max(m.lease/8, 5*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.expire()
		}
	}
}

// expire aborts the active session if its lease ran out, or if its
// client's connection closed, no read is in progress and no call came on
// another connection for GoneGrace.
func (m *Manager) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.cur
	if s == nil {
		return
	}
	idle := m.now().Sub(s.lastUsed)
	switch {
	case idle > m.lease:
		m.endLocked(s, fmt.Sprintf("the lease expired after %s idle", idle.Round(time.Millisecond)))
	case idle > m.grace && s.readers == 0 && closed(s.conn):
		m.endLocked(s, fmt.Sprintf("the client's connection closed and no call came for %s", idle.Round(time.Millisecond)))
	}
}

// closed reports whether c is a closed channel (false for nil).
func closed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// bind records the connection the call whose context ctx is came on as
// s's client's, when the server tells it. m.mu must be held.
func (m *Manager) bind(ctx context.Context, s *session) {
	if m.conn == nil {
		return
	}
	if c := m.conn(ctx); c != nil {
		s.conn = c
	}
}

// lookup returns the active session if id names it and principal owns it,
// renews its lease and binds it to the call's connection. m.mu must be
// held.
func (m *Manager) lookup(ctx context.Context, principal, id string) (*session, error) {
	if m.closed {
		return nil, apierr.New(apierr.Unexpected, "%w", ErrClosed)
	}
	if principal == "" {
		return nil, apierr.New(apierr.AccessDenied, "%w", ErrNoPrincipal)
	}
	s := m.cur
	if id == "" || s == nil || subtle.ConstantTimeCompare([]byte(id), []byte(s.id)) != 1 {
		return nil, apierr.New(apierr.BackupSequence,
			"no backup session %.64q: call BackupPrepare first (a session ends with End, its lease or a server restart)", id)
	}
	if s.principal != principal {
		return nil, apierr.New(apierr.AccessDenied, "backup session %s belongs to another principal", s.short())
	}
	s.lastUsed = m.now()
	m.bind(ctx, s)
	return s, nil
}

// touch renews s's lease. m.mu must be held.
func (m *Manager) touch(s *session) { s.lastUsed = m.now() }

// endLocked ends s: the session slot is freed at once, a read in progress
// is cancelled, and the snapshot is released as soon as no read uses it.
// Nothing is recorded. m.mu must be held.
func (m *Manager) endLocked(s *session, why string) {
	if s.state == stateEnded {
		return
	}
	s.state = stateEnded
	s.endReason = why
	if m.cur == s {
		m.cur = nil
	}
	if s.cancelRead != nil {
		s.cancelRead()
	}
	if s.readers == 0 {
		m.releaseLocked(s)
	}
	m.log.Info("backup session ended", "session", s.short(), "principal", s.principal, "type", s.typ.String(), "why", why)
}

// releaseLocked closes s's snapshot and drops its open file. m.mu must be
// held and s must have no read in progress.
func (m *Manager) releaseLocked(s *session) {
	if s.released {
		return
	}
	s.released = true
	s.open = nil
	m.releaseLogHolds(s)
	if s.snap != nil {
		if err := s.snap.Close(); err != nil {
			m.log.Warn("release backup snapshot", "session", s.short(), "err", err)
		}
	}
}

// releaseLogHolds drops s's holds on log generations: the snapshot's (full)
// and the session's own (logs-only). m.mu must be held.
func (m *Manager) releaseLogHolds(s *session) {
	if s.snap != nil {
		s.snap.ReleaseLogs()
	}
	if s.releaseLogs != nil {
		s.releaseLogs()
	}
}

// Prepare starts a session of type typ for principal and returns its id
// (BackupPrepare). A full backup pins a database snapshot at once; a
// logs-only backup first checks that one can be complete: a full backup was
// recorded (else FullBackupNotTaken), circular logging is off (else
// CircularLogging), no restore since (else IncrementalDisabled), and no
// generation it needs was deleted (else LogFileNotFound). Another session
// in progress gives BackupInProgress.
func (m *Manager) Prepare(ctx context.Context, principal string, typ Type) (string, error) {
	if principal == "" {
		return "", apierr.New(apierr.AccessDenied, "%w", ErrNoPrincipal)
	}
	if typ != Full && typ != LogsOnly {
		return "", apierr.New(apierr.InvalidArg, "backup type %d is neither full (1) nor logs-only (2)", typ)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", apierr.New(apierr.Unexpected, "%w", ErrClosed)
	}
	if s := m.cur; s != nil {
		how := fmt.Sprintf("an idle session ends when its lease (%s) expires", m.lease)
		if m.conn != nil {
			how = fmt.Sprintf("a session whose client is gone ends %s after its connection closed, an idle one when its lease (%s) expires",
				m.grace, m.lease)
		}
		return "", apierr.New(apierr.BackupInProgress,
			"a %s backup session started at %s is in progress; retry when it has ended: %s",
			s.typ, s.created.UTC().Format(time.RFC3339), how)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s := &session{principal: principal, typ: typ, state: statePrepared, created: m.now()}
	s.lastUsed = s.created
	m.bind(ctx, s)
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", apierr.New(apierr.Unexpected, "make backup session id: %w", err)
	}
	s.id = hex.EncodeToString(raw[:])
	switch typ {
	case Full:
		snap, err := m.eng.Snapshot(ctx)
		if errors.Is(err, store.ErrSnapshotOpen) {
			// A session that ended by lease may still be finishing a read
			// of its snapshot; the store pins one snapshot at a time.
			return "", apierr.New(apierr.BackupInProgress, "the previous backup session is still releasing its database snapshot; try again shortly: %w", err)
		}
		if err != nil {
			return "", engineError(err, "snapshot database: %w", err)
		}
		s.snap = snap
		s.snapLSN = snap.LSN()
	case LogsOnly:
		last, err := m.checkLogsOnly()
		if err != nil {
			return "", err
		}
		s.since = *last
		s.releaseLogs = m.eng.HoldLogs(last.LastGen + 1)
	}
	m.cur = s
	m.log.Info("backup session prepared", "session", s.short(), "principal", principal, "type", typ.String(),
		"snapshot_lsn", s.snapLSN)
	return s.id, nil
}

// lastBackup returns the recorded backup that copied the newest log
// generation, or nil when no full backup was ever recorded.
func (m *Manager) lastBackup() *Record {
	full, inc := m.eng.LastBackups()
	if full == nil {
		return nil
	}
	if inc != nil && inc.LastGen > full.LastGen {
		return inc
	}
	return full
}

// checkLogsOnly checks that a logs-only backup can be complete now and
// returns the backup it continues.
func (m *Manager) checkLogsOnly() (*Record, error) {
	if m.eng.CircularLogging() {
		return nil, apierr.New(apierr.CircularLogging,
			"circular logging is on: logs are deleted once checkpointed, so a logs-only backup cannot continue the chain; take a full backup")
	}
	if m.eng.NeedFullBackup() {
		return nil, apierr.New(apierr.IncrementalDisabled,
			"the database was restored since the last backup: the next backup must be full")
	}
	last := m.lastBackup()
	if last == nil {
		return nil, apierr.New(apierr.FullBackupNotTaken,
			"no full backup has been recorded: take a full backup before a logs-only backup")
	}
	gens := m.eng.Generations()
	if len(gens) == 0 {
		return nil, apierr.New(apierr.Unexpected, "the log has no generations")
	}
	next := last.LastGen + 1
	if gens[0].Gen > next {
		return nil, apierr.New(apierr.LogFileNotFound,
			"log generation %d (%s) is missing: it was deleted before a backup copied it (the last backup copied through generation %d); take a full backup",
			next, m.logPath(next), last.LastGen)
	}
	if cur := gens[len(gens)-1].Gen; next > cur {
		return nil, apierr.New(apierr.IncrementalDisabled,
			"the last recorded backup copied through log generation %d but the log is at generation %d; take a full backup",
			last.LastGen, cur)
	}
	return last, nil
}

// logPath returns the absolute path log generation gen has or had.
func (m *Manager) logPath(gen uint32) string {
	return filepath.Join(m.paths.LogDir, wal.FileName(m.paths.LogBase, gen))
}

// DatabaseNames lists the database files of the session
// (GetDatabaseNames): for a full backup one file tagged TagDatabase, the
// absolute database path with the snapshot's size; for a logs-only backup
// none. Listing the file makes it openable.
func (m *Manager) DatabaseNames(ctx context.Context, principal, id string) ([]File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookup(ctx, principal, id)
	if err != nil {
		return nil, err
	}
	if err := s.usable(); err != nil {
		return nil, err
	}
	if s.typ != Full {
		return []File{}, nil
	}
	s.dbListed = true
	return []File{{Tag: TagDatabase, Name: m.paths.DB, Size: s.snap.Size()}}, nil
}

// DatabaseLocations returns the restore map (GetDatabaseLocations): the
// database file (TagDatabase), the log directory (TagLogDir) and the
// checkpoint directory (TagCheckpointDir), as absolute server paths.
func (m *Manager) DatabaseLocations(ctx context.Context, principal, id string) ([]File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookup(ctx, principal, id)
	if err != nil {
		return nil, err
	}
	if err := s.usable(); err != nil {
		return nil, err
	}
	return []File{
		{Tag: TagDatabase, Name: m.paths.DB},
		{Tag: TagLogDir, Name: m.paths.LogDir},
		{Tag: TagCheckpointDir, Name: m.paths.SysDir},
	}, nil
}

// DynamicFiles lists the CA's dynamic files (GetDynamicFiles), tagged
// TagDynamic, each with its file name, size and URL. They are not served
// by OpenFile.
func (m *Manager) DynamicFiles(ctx context.Context, principal, id string) ([]File, error) {
	m.mu.Lock()
	s, err := m.lookup(ctx, principal, id)
	if err == nil {
		err = s.usable()
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	dyn := m.dyn()
	files := make([]File, 0, len(dyn))
	for _, d := range dyn {
		files = append(files, File{Tag: TagDynamic, Name: d.Name, Size: d.Size, URL: d.URL})
	}
	return files, nil
}

// BackupLogs rolls the current log generation and lists the generations to
// copy (GetBackupLogs), tagged TagLog, with absolute paths and sizes. A full
// backup lists the generations from the one holding the record after the
// snapshot through the sealed one (only the sealed one when no record
// followed the snapshot); a logs-only backup the generations after the last
// recorded backup's through the sealed one. A needed generation that is
// missing fails the session with LogFileNotFound. It may be called once per
// session.
func (m *Manager) BackupLogs(ctx context.Context, principal, id string) ([]File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookup(ctx, principal, id)
	if err != nil {
		return nil, err
	}
	if err := s.usable(); err != nil {
		return nil, err
	}
	if s.logsListed {
		return nil, apierr.New(apierr.BackupSequence, "the logs were already listed in this session: GetBackupLogs is allowed once")
	}
	sealed, err := m.eng.RollLog(ctx)
	if err != nil {
		return nil, engineError(err, "roll the log: %w", err)
	}
	defer m.touch(s)
	gens := m.eng.Generations()
	var first uint32
	switch s.typ {
	case Full:
		first = sealed
		for _, g := range gens {
			if g.Gen <= sealed && g.LastLSN > s.snapLSN {
				first = g.Gen
				break
			}
		}
		if len(gens) > 0 && gens[0].BaseLSN > s.snapLSN+1 && gens[0].Gen <= sealed && gens[0].Gen > 1 {
			// The records after the snapshot started in a generation
			// that is gone.
			first = gens[0].Gen - 1
		}
	case LogsOnly:
		first = s.since.LastGen + 1
	}
	listed, before, err := m.pickGenerations(gens, first, sealed)
	if err != nil {
		s.fail(err)
		return nil, err
	}
	s.logsListed = true
	s.sealed = sealed
	s.before = before
	s.logs = listed
	files := make([]File, len(listed))
	for i, l := range listed {
		files[i] = File{Tag: TagLog, Name: l.path, Size: l.info.Size}
	}
	m.log.Info("backup logs listed", "session", s.short(), "first_gen", first, "last_gen", sealed)
	return files, nil
}

// pickGenerations returns the generations first..last from gens, every one
// present and sealed, and the generation before first when present.
func (m *Manager) pickGenerations(gens []wal.GenInfo, first, last uint32) ([]listedLog, *wal.GenInfo, error) {
	byGen := make(map[uint32]wal.GenInfo, len(gens))
	for _, g := range gens {
		byGen[g.Gen] = g
	}
	var listed []listedLog
	for gen := first; gen <= last; gen++ {
		g, ok := byGen[gen]
		if !ok {
			return nil, nil, apierr.New(apierr.LogFileNotFound,
				"log generation %d (%s) is missing: it was deleted before this backup could copy it; take a full backup",
				gen, m.logPath(gen))
		}
		if !g.Sealed {
			return nil, nil, apierr.New(apierr.Unexpected, "log generation %d is not sealed after rolling the log", gen)
		}
		p, err := filepath.Abs(g.Path)
		if err != nil {
			return nil, nil, apierr.New(apierr.Unexpected, "absolute path of %s: %w", g.Path, err)
		}
		listed = append(listed, listedLog{info: g, path: p})
	}
	var before *wal.GenInfo
	if g, ok := byGen[first-1]; ok && first > 1 {
		before = &g
	}
	return listed, before, nil
}

// engineError is the API error for a failed engine call: E_UNEXPECTED,
// unless the engine said what the failure was (DiskFull for the CA's full
// disk), in which case that code is kept.
func engineError(err error, format string, args ...any) *apierr.Error {
	code := apierr.Unexpected
	var ae *apierr.Error
	if errors.As(err, &ae) {
		code = ae.Code
	}
	return apierr.New(code, format, args...)
}

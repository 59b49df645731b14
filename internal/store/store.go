package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/wal"
)

// Layout says where a database's files are.
type Layout struct {
	DBPath  string // SQLite database file
	LogDir  string // directory of log generations
	SysDir  string // directory of the checkpoint file
	LogBase string // log file name base; "" means wal.DefaultBase ("ca")
}

// CheckpointPath is the checkpoint file: SysDir/<LogBase>.chk.
func (l Layout) CheckpointPath() string {
	return filepath.Join(l.SysDir, l.base()+".chk")
}

func (l Layout) base() string {
	if l.LogBase == "" {
		return wal.DefaultBase
	}
	return l.LogBase
}

// Options configure Create, Open and Check.
type Options struct {
	Layout
	// SegmentSize is the log generation size limit; 0 means
	// wal.DefaultSegmentSize (4 MiB).
	SegmentSize int64
	// CheckpointInterval is the time between periodic checkpoints; 0 means
	// DefaultCheckpointInterval, a negative value turns periodic checkpoints
	// off (Close, RecordBackup, TruncateLogs and Checkpoint still take them).
	CheckpointInterval time.Duration
	// CheckpointGenerations makes the engine take a checkpoint as soon as
	// the log has rolled this many generations past the checkpoint
	// generation; 0 means DefaultCheckpointGenerations.
	CheckpointGenerations int
	// CircularLogging deletes generations below the checkpoint generation
	// after every checkpoint. Off by default; logs-only backups are then
	// impossible.
	CircularLogging bool
	// MinFreeSpace is the free space, in bytes, the file systems of the log
	// and of the database file keep in reserve: while either has less,
	// writes are refused with ErrStalled before they reach the log, and
	// they are accepted again once both have a quarter more (stall.go).
	// 0 means DefaultMinFreeSpace or a twentieth of the file system,
	// whichever is smaller; a negative value turns the check off.
	MinFreeSpace int64
	// NoCheckpoint tells Open that the checkpoint file is absent on
	// purpose (a restored database whose old checkpoint was set aside): it
	// writes a new one and logs that at Info instead of warning about a
	// lost checkpoint file. A checkpoint that is present is read as usual.
	NoCheckpoint bool
	// Logger receives recovery reports and warnings; nil discards them.
	Logger *slog.Logger
}

// Defaults for Options.
const (
	DefaultCheckpointInterval    = 30 * time.Second
	DefaultCheckpointGenerations = 4
	DefaultMinFreeSpace          = 64 << 20
)

// Engine tuning.
const (
	maxApplyBatch     = 4096                   // records per SQLite transaction
	sqlCheckpointTick = 250 * time.Millisecond // how often the background goroutine backfills the SQLite WAL
	readConns         = 8                      // reader pool size
)

func (o Options) normalize() (Options, error) {
	if o.DBPath == "" || o.LogDir == "" || o.SysDir == "" {
		return o, invalid("options: DBPath, LogDir and SysDir are required")
	}
	if o.LogBase == "" {
		o.LogBase = wal.DefaultBase
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.CheckpointGenerations <= 0 {
		o.CheckpointGenerations = DefaultCheckpointGenerations
	}

	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// DB is an open CA database: the SQLite file, the log and the checkpoint.
// Its methods are safe for concurrent use. Every write method returns only
// after its record is durable in the log and applied to SQLite, so a read
// that follows sees it.
type DB struct {
	opts   Options
	logger *slog.Logger
	log    *wal.Log
	wdb    *sql.DB // writer pool: applier, SQLite checkpointer, snapshot fence
	rdb    *sql.DB // reader pool
	pdb    *sql.DB // snapshot pins: one connection per open snapshot, not pooled
	ac     *applyConn
	ckConn *sql.Conn // SQLite checkpoints; used under sqlCkptMu
	// walRestarted is when backfill last restarted the SQLite WAL; under
	// sqlCkptMu.
	walRestarted time.Time
	sigs         Signatures

	locks   keyLocks
	nextID  atomic.Int64  // last request ID handed out
	applied atomic.Uint64 // applied_lsn as committed
	noWrite atomic.Bool   // a stall or low free space refuses writes (stall.go)
	spaceNS atomic.Int64  // when the free space was last read (UnixNano)

	applyCh     chan *pendingItem
	wake        chan struct{} // pokes the applier when the database fails
	applierStop chan struct{}
	applierDone chan struct{}
	bgStop      chan struct{}
	bgDone      chan struct{}

	// writeGate is held by the applier around each SQLite transaction and
	// by the snapshot fence, so the fence never waits in SQLite's busy
	// handler and the applier never fights the fence.
	writeGate sync.Mutex
	// sqlCkptMu is held by whoever runs an SQLite checkpoint (the background
	// goroutine, Close) and by Snapshot while it fences and pins.
	sqlCkptMu sync.Mutex
	pins      atomic.Int32 // open snapshots; SQLite checkpoints pause while > 0

	ckptMu sync.Mutex // serialises checkpoints

	holds logHolds // generations backups in progress need (HoldLogs)

	stateMu  sync.Mutex
	ckpt     Checkpoint
	lastFull *BackupRecord
	lastIncr *BackupRecord
	needFull bool
	snaps    map[*Snapshot]struct{}
	failErr  error
	stallErr error     // why the applier holds records back (stall.go); nil when it does not
	stallAt  time.Time // when the stall began
	spaceErr error     // which file system is below MinFreeSpace (stall.go); nil when none
	spaceAt  time.Time // since when

	recovery ReplayResult // what soft recovery replayed at Open

	closeMu sync.RWMutex // read-held by every call; Close takes it to wait for them
	closed  bool
}

// Create makes a new database: random database and log-set signatures, the
// empty schema, log generation 1 and the first checkpoint, then opens it.
// It refuses (ErrExists) when the database file, the checkpoint or a log
// generation already exists. A crash during Create leaves files that Open
// refuses; remove them and create again.
func Create(ctx context.Context, opts Options) (*DB, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	for _, p := range []string{o.DBPath, o.CheckpointPath()} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("create database: %s exists: %w", p, ErrExists)
		}
	}
	for _, dir := range []string{filepath.Dir(o.DBPath), o.SysDir, o.LogDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database: %w", err)
		}
	}
	var sigs Signatures
	if _, err := rand.Read(sigs.Database[:]); err != nil {
		return nil, fmt.Errorf("create database: make signature: %w", err)
	}
	if _, err := rand.Read(sigs.Log[:]); err != nil {
		return nil, fmt.Errorf("create database: make signature: %w", err)
	}
	lg, err := wal.Create(wal.Options{Dir: o.LogDir, Base: o.LogBase, SegmentSize: o.SegmentSize, Signature: sigs.Log, Logger: o.Logger})
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create database: %w: %w", ErrExists, err)
		}
		return nil, fmt.Errorf("create database: %w", err)
	}
	if err := lg.Close(); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	if err := createDatabaseFile(ctx, o.DBPath, sigs); err != nil {
		return nil, err
	}
	if err := writeCheckpoint(o.CheckpointPath(), Checkpoint{Signatures: sigs, Gen: 1, Written: time.Now()}); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	return Open(ctx, o)
}

// createDatabaseFile writes the schema into a new SQLite file and makes it
// durable (a TRUNCATE checkpoint moves everything into the main file and
// fsyncs it; then the directory is fsynced).
func createDatabaseFile(ctx context.Context, path string, sigs Signatures) error {
	pool, err := openPool(path, connWrite, 1)
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := pool.Conn(ctx)
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	defer conn.Close()
	if err := createSchema(ctx, conn, sigs); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("create database: checkpoint: %w", err)
	}
	if err := syncFile(path); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	return fsutil.SyncDir(filepath.Dir(path))
}

// Open opens an existing database and runs soft recovery: it checks that the
// database, the checkpoint and the logs carry the same signatures, replays
// every log record after the database's applied_lsn, logs what it replayed,
// and writes a fresh checkpoint. See doc.go for the rules and the errors.
// The caller holds the data-directory lock.
func Open(ctx context.Context, opts Options) (*DB, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.DBPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open database %s: %w", o.DBPath, ErrNoDatabase)
		}
		return nil, fmt.Errorf("open database: %w", err)
	}
	d := &DB{
		opts:        o,
		logger:      o.Logger,
		applyCh:     make(chan *pendingItem, 1024),
		wake:        make(chan struct{}, 1),
		applierStop: make(chan struct{}),
		applierDone: make(chan struct{}),
		bgStop:      make(chan struct{}),
		bgDone:      make(chan struct{}),
		snaps:       make(map[*Snapshot]struct{}),
	}
	d.locks.m = make(map[string]*keyLock)
	if err := d.open(ctx); err != nil {
		d.closeResources()
		return nil, err
	}
	d.checkSpace()
	go d.runApplier()
	go d.runBackground()
	return d, nil
}

// open does the work of Open up to starting the goroutines.
func (d *DB) open(ctx context.Context) error {
	o := d.opts
	var err error
	if d.wdb, err = openPool(o.DBPath, connWrite, 3); err != nil {
		return err
	}
	if d.rdb, err = openPool(o.DBPath, connRead, readConns); err != nil {
		return err
	}
	if d.pdb, err = openPool(o.DBPath, connRead, 0); err != nil {
		return err
	}
	d.pdb.SetMaxIdleConns(0)
	if d.ac, err = newApplyConn(ctx, d.wdb); err != nil {
		return err
	}
	if d.ckConn, err = d.wdb.Conn(ctx); err != nil {
		return fmt.Errorf("open checkpoint connection: %w", err)
	}
	meta, err := readMeta(ctx, d.ac.conn)
	if err != nil {
		return fmt.Errorf("open database %s: %w", o.DBPath, err)
	}
	d.sigs = meta.Signatures
	ckPath := o.CheckpointPath()
	ck, ckErr := readCheckpoint(ckPath)
	switch {
	case errors.Is(ckErr, ErrCheckpointMissing) && o.NoCheckpoint:
		d.logger.Info("no checkpoint yet: writing one at the database's applied LSN", "path", ckPath, "applied_lsn", meta.AppliedLSN)
	case errors.Is(ckErr, ErrCheckpointMissing):
		d.logger.Warn("checkpoint file missing; recovering from the database's applied LSN and writing a new one",
			"path", ckPath, "applied_lsn", meta.AppliedLSN)
	case ckErr != nil:
		return fmt.Errorf("open database: %w", ckErr)
	default:
		if err := checkCheckpointSignatures(ckPath, ck, d.sigs); err != nil {
			return fmt.Errorf("open database: %w", err)
		}
		if ck.LSN > meta.AppliedLSN {
			d.logger.Warn("database is older than the checkpoint; replaying from the database's applied LSN",
				"checkpoint_lsn", ck.LSN, "applied_lsn", meta.AppliedLSN)
		}
		d.ckpt = ck
		d.lastFull, d.lastIncr = ck.LastFull, ck.LastIncremental
	}
	// The database (and the checkpoint) hold records through these LSNs:
	// the log held them, so a "torn tail" reaching back before them is
	// damage, and the log must not be cut there.
	d.log, err = wal.Open(wal.Options{Dir: o.LogDir, Base: o.LogBase, SegmentSize: o.SegmentSize, Signature: d.sigs.Log, Logger: d.logger,
		MinLastLSN: max(meta.AppliedLSN, d.ckpt.LSN)})
	if err != nil {
		return fmt.Errorf("open database: %w", logOpenError(o.LogDir, d.sigs, meta.AppliedLSN, err))
	}
	if err := d.softRecover(ctx, meta.AppliedLSN); err != nil {
		return err
	}
	if err := d.loadState(ctx); err != nil {
		return err
	}
	if err := d.checkpoint(ctx); err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	return nil
}

// logOpenError turns a wal.Open error into the store's errors: another log
// set's generation is a *SignatureError, a directory without generations a
// *MissingLogError.
func logOpenError(dir string, sigs Signatures, applied uint64, err error) error {
	var ce *wal.CorruptError
	if errors.Is(err, wal.ErrSignature) && errors.As(err, &ce) {
		se := &SignatureError{Which: "log", Path: ce.Path, Gen: ce.Gen, Want: sigs.Log, Err: err}
		if h, herr := wal.ReadHeader(ce.Path); herr == nil {
			se.Got = h.Signature
		}
		return se
	}
	if errors.Is(err, wal.ErrMissingGeneration) {
		me := &MissingLogError{Dir: dir, NeedLSN: applied + 1, Reason: "the generations present are not contiguous", Err: err}
		if errors.As(err, &ce) {
			me.Gen = ce.Gen
		}
		return me
	}
	if errors.Is(err, fs.ErrNotExist) {
		return &MissingLogError{Dir: dir, Gen: 0, NeedLSN: applied + 1, Reason: "the log directory holds no generation", Err: err}
	}
	return err
}

// loadState reads what the engine keeps in memory: the last request ID,
// the need-full-backup flag and the last backups.
func (d *DB) loadState(ctx context.Context) error {
	var maxID int64
	if err := d.ac.conn.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM requests`).Scan(&maxID); err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	d.nextID.Store(maxID)
	meta, err := readMeta(ctx, d.ac.conn)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	d.needFull = meta.NeedFullBackup
	for _, t := range []BackupType{BackupFull, BackupLogsOnly} {
		var b BackupRecord
		var typ, fg, lg, fl, ll, tm int64
		err := d.ac.conn.QueryRowContext(ctx, `SELECT type, first_gen, last_gen, first_lsn, last_lsn, time FROM backups
			WHERE type = ? ORDER BY lsn DESC LIMIT 1`, int64(t)).Scan(&typ, &fg, &lg, &fl, &ll, &tm)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("open database: %w", err)
		}
		b = BackupRecord{Type: BackupType(typ), FirstGen: uint32(fg), LastGen: uint32(lg), FirstLSN: uint64(fl), LastLSN: uint64(ll), Time: fromMicros(tm)}
		if t == BackupFull {
			d.lastFull = &b
		} else {
			d.lastIncr = &b
		}
	}
	return nil
}

// Close stops the engine cleanly: it waits for calls in progress, closes
// open snapshots, takes a final checkpoint (so that the next Open replays
// nothing) and closes the database and the log. Closing twice returns
// ErrClosed.
func (d *DB) Close() error {
	d.closeMu.Lock()
	if d.closed {
		d.closeMu.Unlock()
		return ErrClosed
	}
	d.closed = true
	d.closeMu.Unlock()

	close(d.bgStop)
	<-d.bgDone
	d.stateMu.Lock()
	snaps := make([]*Snapshot, 0, len(d.snaps))
	for s := range d.snaps {
		snaps = append(snaps, s)
	}
	d.stateMu.Unlock()
	for _, s := range snaps {
		s.Close()
	}
	var errs []error
	if d.failure() == nil {
		d.sqlCkptMu.Lock()
		if _, _, _, err := d.sqliteCheckpoint(context.Background(), "TRUNCATE"); err != nil {
			errs = append(errs, err)
		}
		d.sqlCkptMu.Unlock()
		if err := d.checkpoint(context.Background()); err != nil {
			errs = append(errs, err)
		}
	}
	close(d.applierStop)
	<-d.applierDone
	if err := d.closeResources(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeResources closes whatever open or Close opened.
func (d *DB) closeResources() error {
	var errs []error
	if d.ckConn != nil {
		d.ckConn.Close()
	}
	if d.ac != nil {
		if err := d.ac.close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range []*sql.DB{d.rdb, d.pdb} {
		if p != nil {
			if err := p.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if d.wdb != nil {
		if err := d.wdb.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.log != nil {
		if err := d.log.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// begin admits a call: it fails if the DB is closed or failed, and
// otherwise holds off Close until the returned function is called.
func (d *DB) begin() (func(), error) {
	d.closeMu.RLock()
	if d.closed {
		d.closeMu.RUnlock()
		return nil, ErrClosed
	}
	if err := d.failure(); err != nil {
		d.closeMu.RUnlock()
		return nil, err
	}
	return d.closeMu.RUnlock, nil
}

// fail marks the database failed with cause; every later call returns an
// error matching ErrFailed and cause.
func (d *DB) fail(cause error) {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	if d.failErr == nil {
		d.failErr = cause
		d.logger.Error("database failed; every later call fails until it is reopened", "err", cause)
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// failure returns the error calls get once the database failed, or nil.
func (d *DB) failure() error {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	if d.failErr == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrFailed, d.failErr)
}

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// LogDir returns the log directory, as given in Options (the restore map
// reports it; callers wanting absolute paths pass absolute Options).
func (d *DB) LogDir() string { return d.opts.LogDir }

// DBPath returns the SQLite database file's path.
func (d *DB) DBPath() string { return d.opts.DBPath }

// SysDir returns the directory of the checkpoint file.
func (d *DB) SysDir() string { return d.opts.SysDir }

// LogBase returns the log file name base.
func (d *DB) LogBase() string { return d.opts.LogBase }

// Recovery reports what soft recovery replayed when the database was
// opened; Records is 0 after a clean Close.
func (d *DB) Recovery() ReplayResult { return d.recovery }

// CircularLogging reports whether generations below the checkpoint are
// deleted automatically.
func (d *DB) CircularLogging() bool { return d.opts.CircularLogging }

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

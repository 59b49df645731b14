package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// Phase names a step of hard recovery, for progress reports.
type Phase string

// The phases of hard recovery, in order.
const (
	PhaseVerify       Phase = "verify"
	PhaseReplayBackup Phase = "replay-backup-logs"
	PhaseReplayLive   Phase = "replay-live-logs"
	PhaseInstallLogs  Phase = "install-logs"
	PhaseOpen         Phase = "open-database"
	PhaseDone         Phase = "done"
)

// Event is a progress report: the phase starting and, for replay phases
// that ended, the records applied and the database's applied LSN.
type Event struct {
	Phase   Phase
	Records int
	LSN     uint64
	Message string
}

// RecoverOptions configure Recover.
type RecoverOptions struct {
	// Logger receives the recovery's messages and its summary; nil
	// discards them.
	Logger *slog.Logger
	// OnProgress, when not nil, is called at the start of each phase and
	// after each replay phase, from the goroutine running Recover.
	OnProgress func(Event)

	// afterSave, when not nil, is called after the record was written in
	// a new state; an error stops the recovery there, as a crash would.
	// Tests use it to interrupt and resume recovery at every state.
	afterSave func(State) error
}

// Result is what a hard recovery did. Counts cover every attempt of an
// interrupted and resumed recovery.
type Result struct {
	Record        *Record // the record as it was when recovery finished
	Resumed       bool    // the recovery continued an interrupted one
	SnapshotLSN   uint64  // S
	LastLSN       uint64  // the database's applied LSN at the end of the replay
	BackupRecords int     // records replayed from the backup's logs
	LiveRecords   int     // records replayed from the live log (catch-up)
	// CatchUpSkipped says why the live log was not replayed although
	// catch-up was asked; "" otherwise.
	CatchUpSkipped string
	StopReason     string        // why the replay ended at LastLSN
	SetAside       string        // directory that received the files moved out of the way; "" if none
	Duration       time.Duration // of this call
}

// Recover runs hard recovery for the restore recorded in dir (see doc.go
// for the algorithm): it verifies the restored database and the backup's
// logs before changing anything, replays the backup's logs and then,
// unless catch-up is off or impossible, the live log that continues them,
// stopping at the registered point in time; it brings the log directory to
// the recovered position, marks the database so that the next backup must
// be FULL, makes a new admin credential when the record asks for it, takes
// a checkpoint and removes the record. It is idempotent: an interrupted
// Recover resumes from the state the record holds.
//
// The caller holds the data directory's lock and has not opened the
// database; `certsrv serve` calls Recover while it answers every client
// "suspended", `certsrv recover` offline. Without a record Recover fails
// with ErrNothingPending; a record that was registered but not completed,
// or completed with a failure, gives a *PendingError. A problem found
// while verifying changes nothing; the record then stays as it was.
func Recover(ctx context.Context, dir datadir.Dir, opts RecoverOptions) (*Result, error) {
	start := time.Now()
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	progress := func(e Event) {
		if opts.OnProgress != nil {
			opts.OnProgress(e)
		}
	}
	path := RecordPath(dir)
	rec, err := readRecordFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("recover: %s: %w", dir.Root, ErrNothingPending)
	}
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	switch {
	case rec.State == StateRegistered:
		return nil, fmt.Errorf("recover: %w", &PendingError{Path: path, State: rec.State, Err: ErrRegistrationPending})
	case rec.State == StateFailed:
		return nil, fmt.Errorf("recover: %w", &PendingError{Path: path, State: rec.State, Status: rec.Status, Err: ErrRestoreFailed})
	}
	cfg, err := dir.LoadConfig()
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	r := &recovery{dir: dir, cfg: cfg, rec: rec, logger: logger, progress: progress,
		res: &Result{Resumed: rec.State != StateComplete}, afterSave: opts.afterSave}
	if r.res.Resumed {
		logger.Info("resuming interrupted hard recovery", "state", rec.State, "record", path)
	}
	if err := r.run(ctx); err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	p := r.rec.Recovery
	res := r.res
	res.Record = r.rec.clone()
	res.SnapshotLSN = r.rec.SnapshotLSN
	res.LastLSN = p.LastLSN
	res.BackupRecords, res.LiveRecords = p.BackupRecords, p.LiveRecords
	res.CatchUpSkipped = p.CatchUpSkipped
	res.StopReason = p.StopReason
	res.Duration = time.Since(start)
	if fi, err := os.Stat(r.setAsideDir()); err == nil && fi.IsDir() {
		res.SetAside = r.setAsideDir()
	}
	logger.Info("hard recovery complete",
		"snapshot_lsn", res.SnapshotLSN, "recovered_lsn", res.LastLSN,
		"backup_log_records", res.BackupRecords, "live_log_records", res.LiveRecords,
		"catch_up_skipped", res.CatchUpSkipped, "stop", res.StopReason,
		"set_aside", res.SetAside, "resumed", res.Resumed, "duration", res.Duration)
	progress(Event{Phase: PhaseDone, LSN: res.LastLSN, Records: res.BackupRecords + res.LiveRecords})
	return res, nil
}

// recovery is one run of Recover.
type recovery struct {
	dir       datadir.Dir
	cfg       *datadir.Config
	rec       *Record
	logger    *slog.Logger
	progress  func(Event)
	res       *Result
	afterSave func(State) error
}

// save writes the record, as it is in memory, in state s. On failure the
// in-memory state stays the old one.
func (r *recovery) save(s State) error {
	old := r.rec.State
	r.rec.State = s
	if err := writeRecordFile(RecordPath(r.dir), r.rec); err != nil {
		r.rec.State = old
		return err
	}
	if r.afterSave != nil {
		return r.afterSave(s)
	}
	return nil
}

// setAsideDir is the directory receiving what recovery moves out of the
// way.
func (r *recovery) setAsideDir() string {
	return filepath.Join(r.dir.RestoreDir(), r.rec.Recovery.SetAside)
}

// run drives the record through its states.
func (r *recovery) run(ctx context.Context) error {
	if r.rec.State == StateComplete || r.rec.State == StateRecovering {
		r.progress(Event{Phase: PhaseVerify})
		in, err := r.verify(ctx)
		if err != nil {
			return err
		}
		if r.rec.State == StateComplete {
			now := time.Now().UTC()
			r.rec.SnapshotLSN = in.snap
			r.rec.Recovery = &Progress{
				Started:        now,
				DBSignature:    hexSig(in.dbSig[:]),
				LogSignature:   hexSig(in.sig[:]),
				CatchUpSkipped: in.skip,
				SetAside:       "set-aside-" + now.Format("20060102T150405.000000000Z"),
			}
		}
		r.rec.Recovery.Attempts++
		if err := r.save(StateRecovering); err != nil {
			return err
		}
		plan, err := r.replay(ctx, in)
		if err != nil {
			return err
		}
		r.rec.Recovery.Plan = plan
		if err := r.save(StateReplayed); err != nil {
			return err
		}
	}
	if r.rec.State == StateReplayed {
		r.progress(Event{Phase: PhaseInstallLogs, LSN: r.rec.Recovery.LastLSN})
		if err := r.install(ctx); err != nil {
			return err
		}
		if err := r.save(StateInstalled); err != nil {
			return err
		}
	}
	r.progress(Event{Phase: PhaseOpen, LSN: r.rec.Recovery.LastLSN})
	return r.finish(ctx)
}

// verify checks everything recovery relies on, changing nothing.
func (r *recovery) verify(ctx context.Context) (*inputs, error) {
	rec := r.rec
	in := &inputs{logDir: rec.BackupLogDir, base: rec.LogBase, byGen: map[uint32]int{}}
	if rec.State == StateComplete {
		meta, err := readDatabaseMeta(ctx, rec.DatabasePath())
		if err != nil {
			return nil, err
		}
		if rec.SnapshotLSN != 0 && meta.AppliedLSN != rec.SnapshotLSN {
			return nil, fmt.Errorf("%w: %s reflects LSN %d but the restore registered snapshot LSN %d",
				ErrDatabase, rec.DatabasePath(), meta.AppliedLSN, rec.SnapshotLSN)
		}
		in.sig, in.dbSig, in.snap = meta.LogSignature, meta.DBSignature, meta.AppliedLSN
	} else {
		var err error
		if in.sig, err = parseSig(rec.Recovery.LogSignature); err != nil {
			return nil, err
		}
		if in.dbSig, err = parseSig(rec.Recovery.DBSignature); err != nil {
			return nil, err
		}
		in.snap = rec.SnapshotLSN
	}
	backup, err := verifyBackupLogs(ctx, rec.BackupLogDir, rec.LogBase, in.sig, rec.LowGen, rec.HighGen)
	if err != nil {
		return nil, err
	}
	in.backup = backup
	for i, g := range backup {
		in.byGen[g.Gen] = i
	}
	if err := checkCovers(rec.BackupLogDir, backup, in.snap); err != nil {
		return nil, err
	}
	if !rec.Until.Time.IsZero() {
		first := wal.Header{FirstLSN: backup[0].BaseLSN, Created: backup[0].Created}
		if in.early, err = earliestTime(ctx, rec.BackupLogDir, rec.LogBase, in.sig, first, in.snap); err != nil {
			return nil, err
		}
	}
	if err := checkUntil(rec.Until, in.snap, in.early); err != nil {
		return nil, err
	}
	in.live = scanLive(ctx, rec.LogDir, rec.LogBase)
	if rec.CatchUp {
		in.caught, in.skip = catchUp(in, rec.LogDir)
		if rec.Recovery != nil {
			// A resumed recovery keeps the first attempt's decision.
			in.skip = rec.Recovery.CatchUpSkipped
			in.caught = in.caught && in.skip == ""
		}
	}
	return in, nil
}

// replay applies the backup's logs, then the live log when it continues
// them, and returns the plan for the log directory.
func (r *recovery) replay(ctx context.Context, in *inputs) (*InstallPlan, error) {
	rec := r.rec
	p := rec.Recovery
	opts := store.ReplayOptions{
		DBPath:    rec.DatabasePath(),
		LogDirs:   []string{rec.BackupLogDir},
		LogBase:   rec.LogBase,
		Signature: in.sig,
		UntilLSN:  rec.Until.LSN,
		UntilTime: rec.Until.Time,
		Logger:    r.logger,
	}
	r.progress(Event{Phase: PhaseReplayBackup, LSN: in.snap})
	res, err := store.Replay(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("replay the backup's logs: %w", err)
	}
	p.BackupRecords += res.Records
	p.LastLSN = res.AppliedLSN
	r.progress(Event{Phase: PhaseReplayBackup, Records: res.Records, LSN: res.AppliedLSN, Message: "backup logs replayed"})
	stopped := res.Stopped
	source := "the end of the backup's logs"
	if !stopped && in.caught {
		if err := r.save(StateRecovering); err != nil {
			return nil, err
		}
		opts.LogDirs = []string{rec.BackupLogDir, rec.LogDir}
		r.progress(Event{Phase: PhaseReplayLive, LSN: res.AppliedLSN})
		live, err := store.Replay(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("replay the live log (catch-up): %w", err)
		}
		p.LiveRecords += live.Records
		p.LastLSN = live.AppliedLSN
		stopped = live.Stopped
		source = "the end of the live log"
		r.progress(Event{Phase: PhaseReplayLive, Records: live.Records, LSN: live.AppliedLSN, Message: "live log replayed"})
	}
	u := rec.Until
	switch {
	case stopped || (u.LSN != 0 && p.LastLSN == u.LSN):
		p.StopReason = "reached --until " + u.String()
	case !u.IsZero():
		p.StopReason = source + ", before --until " + u.String()
	default:
		p.StopReason = source
	}
	switch {
	case in.skip != "" && in.live.err != nil && errors.Is(in.live.err, fs.ErrNotExist):
		r.logger.Info("no live log to catch up from: recovery stops at the end of the backup's logs", "reason", in.skip)
	case in.skip != "":
		r.logger.Warn("catch-up skipped: recovery stops at the end of the backup's logs", "reason", in.skip)
	}
	return planInstall(ctx, rec, in, p.LastLSN)
}

// finish opens the recovered database (soft recovery finds nothing to
// replay), seals the generation the log ends in, marks the database so
// that the next backup must be FULL, makes the new admin credential when
// asked, closes it (a checkpoint) and removes the record.
func (r *recovery) finish(ctx context.Context) error {
	rec := r.rec
	db, err := store.Open(ctx, store.Options{
		Layout: store.Layout{
			DBPath:  rec.DatabasePath(),
			LogDir:  rec.LogDir,
			SysDir:  rec.CheckpointDir,
			LogBase: rec.LogBase,
		},
		SegmentSize:        r.cfg.LogSegmentSize,
		CheckpointInterval: -1,
		CircularLogging:    r.cfg.CircularLogging,
		MinFreeSpace:       r.cfg.MinFreeSpace,
		NoCheckpoint:       true, // set aside by the install, or a new host's
		Logger:             r.logger,
	})
	if err != nil {
		return fmt.Errorf("open the recovered database: %w", err)
	}
	fail := func(err error) error {
		db.Close()
		return err
	}
	if got := db.Meta().AppliedLSN; got < rec.Recovery.LastLSN {
		return fail(fmt.Errorf("%w: the recovered database is at LSN %d, recovery reached %d", ErrDatabase, got, rec.Recovery.LastLSN))
	}
	// New records go to a new generation, so the one recovery ended in
	// stays identical to its source (the backup's copy, or its cut).
	if _, err := db.RollLog(); err != nil {
		return fail(fmt.Errorf("seal the recovered log generation: %w", err))
	}
	if err := db.SetNeedFullBackup(ctx, true); err != nil {
		return fail(fmt.Errorf("require a full backup: %w", err))
	}
	if rec.NewCredentials {
		if err := makeCredential(ctx, r.dir, db); err != nil {
			return fail(fmt.Errorf("make the admin credential: %w", err))
		}
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close the recovered database: %w", err)
	}
	if err := removeRecord(r.dir); err != nil {
		return err
	}
	if rec.OwnsBackupLogs && within(r.dir.RestoreDir(), rec.BackupLogDir) {
		if err := removeAll(rec.BackupLogDir); err != nil {
			r.logger.Warn("could not remove the copy of the backup's logs", "dir", rec.BackupLogDir, "err", err)
		}
	}
	return nil
}

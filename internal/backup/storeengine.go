package backup

import (
	"context"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/wal"
)

// storeError marks an error of the store that comes from a full disk as
// DiskFull, which the session keeps (engineError); other errors pass
// unchanged.
func storeError(err error) error {
	if err != nil && store.IsDiskFull(err) {
		return apierr.New(apierr.DiskFull, "%w", err)
	}
	return err
}

// StoreEngine returns the Engine of the CA database db.
func StoreEngine(db *store.DB) Engine { return storeEngine{db} }

type storeEngine struct{ db *store.DB }

func (e storeEngine) Snapshot(ctx context.Context) (Snapshot, error) {
	s, err := e.db.Snapshot(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	return s, nil
}

func (e storeEngine) RollLog(ctx context.Context) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	gen, err := e.db.RollLog()
	return gen, storeError(err)
}

func (e storeEngine) Generations() []wal.GenInfo { return e.db.Generations() }

func (e storeEngine) TruncateLogs(ctx context.Context, throughGen uint32) (Truncation, error) {
	r, err := e.db.TruncateLogs(ctx, throughGen)
	return Truncation{Deleted: r.Deleted, Reason: r.Reason}, storeError(err)
}

func (e storeEngine) RecordBackup(ctx context.Context, r Record) error {
	return storeError(e.db.RecordBackup(ctx, store.BackupRecord{
		Type:     store.BackupType(r.Type),
		FirstGen: r.FirstGen,
		LastGen:  r.LastGen,
		FirstLSN: r.FirstLSN,
		LastLSN:  r.LastLSN,
		Time:     r.Time,
	}))
}

func (e storeEngine) LastBackups() (full, logsOnly *Record) {
	f, i := e.db.LastBackups()
	return fromStore(f), fromStore(i)
}

func fromStore(b *store.BackupRecord) *Record {
	if b == nil {
		return nil
	}
	return &Record{
		Type:     Type(b.Type),
		FirstGen: b.FirstGen,
		LastGen:  b.LastGen,
		FirstLSN: b.FirstLSN,
		LastLSN:  b.LastLSN,
		Time:     b.Time,
	}
}

func (e storeEngine) NeedFullBackup() bool           { return e.db.NeedFullBackup() }
func (e storeEngine) HoldLogs(fromGen uint32) func() { return e.db.HoldLogs(fromGen) }
func (e storeEngine) CircularLogging() bool          { return e.db.CircularLogging() }

func (e storeEngine) Paths() Paths {
	return Paths{DB: e.db.DBPath(), LogDir: e.db.LogDir(), SysDir: e.db.SysDir(), LogBase: e.db.LogBase()}
}

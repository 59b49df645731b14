package restore

import "sync/atomic"

// Status says how far a running Restore is, for a display that polls it
// (certsrv restore draws it on a terminal). Restore updates it as it works;
// its methods may be called from any goroutine at any time. The zero value
// is ready to use; a nil *Status is ignored.
type Status struct {
	hashed, toHash atomic.Int64
	stage          atomic.Pointer[string]
}

// The stages Status.Stage reports, in order. Hard recovery (RecoverNow)
// reports its own phases through Options.OnProgress.
const (
	StageVerify  = "verifying the set"
	StageCopy    = "copying the database"
	StageInstall = "installing the logs and files"
	StageRecover = "hard recovery"
)

// Verified returns the bytes of the set's files hashed so far and the
// bytes there are to hash (0 for a set without a manifest, whose files
// carry no digests).
func (p *Status) Verified() (hashed, total int64) {
	if p == nil {
		return 0, 0
	}
	return p.hashed.Load(), p.toHash.Load()
}

// Stage returns what the restore is doing (one of the Stage* constants),
// or "" before it starts.
func (p *Status) Stage() string {
	if p == nil {
		return ""
	}
	if s := p.stage.Load(); s != nil {
		return *s
	}
	return ""
}

func (p *Status) setStage(s string) {
	if p != nil {
		p.stage.Store(&s)
	}
}

func (p *Status) expectHash(n int64) {
	if p != nil {
		p.toHash.Store(n)
	}
}

// hashedBytes counts n more bytes hashed; it is the backupset hook.
func (p *Status) hashedBytes(n int64) {
	if p != nil {
		p.hashed.Add(n)
	}
}

// Recovering sets the stage to StageRecover, for a display of Recover run
// by itself (certsrv recover).
func (p *Status) Recovering() { p.setStage(StageRecover) }

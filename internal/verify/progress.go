package verify

import "sync/atomic"

// Progress says how far a running Verify is, for a display that polls it
// (certadm verify draws it on a terminal). Verify updates it as it works;
// its methods may be called from any goroutine at any time. The zero value
// is ready to use; a nil *Progress is ignored.
type Progress struct {
	hashed, hashTotal atomic.Int64
	certs, certTotal  atomic.Int64
	stage             atomic.Pointer[string]
}

// The stages of the trial restore Progress.Stage reports, in order.
const (
	StageCopy      = "copying the snapshot"
	StageReplay    = "replaying the logs"
	StageIntegrity = "integrity check"
	StageDump      = "reading the restored database"
	StageCerts     = "checking certificates"
	StageCRLs      = "checking CRLs and counts"
)

// Files returns the bytes of the set's files hashed so far and the bytes
// there are to hash (0 before the set is described, and for a set without
// a manifest, whose files carry no digests).
func (p *Progress) Files() (hashed, total int64) {
	if p == nil {
		return 0, 0
	}
	return p.hashed.Load(), p.hashTotal.Load()
}

// Certificates returns the issued certificates checked so far and how many
// the restored database holds (0 until it was read).
func (p *Progress) Certificates() (checked, total int64) {
	if p == nil {
		return 0, 0
	}
	return p.certs.Load(), p.certTotal.Load()
}

// Stage returns what the trial restore is doing (one of the Stage*
// constants), or "" before it starts.
func (p *Progress) Stage() string {
	if p == nil {
		return ""
	}
	if s := p.stage.Load(); s != nil {
		return *s
	}
	return ""
}

func (p *Progress) setStage(s string) {
	if p != nil {
		p.stage.Store(&s)
	}
}

// hashedBytes is the backupset hook: n more bytes hashed.
func (p *Progress) hashedBytes(n int64) {
	if p != nil {
		p.hashed.Add(n)
	}
}

func (p *Progress) expectHash(n int64) {
	if p != nil {
		p.hashTotal.Store(n)
	}
}

func (p *Progress) expectCerts(n int64) {
	if p != nil {
		p.certTotal.Store(n)
	}
}

func (p *Progress) certChecked() {
	if p != nil {
		p.certs.Add(1)
	}
}

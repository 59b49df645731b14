package verify

import (
	"fmt"
	"time"
)

// Names of the checks, in the order Verify runs and reports them.
const (
	CheckManifest   = "manifest"
	CheckFiles      = "files"
	CheckRestoreMap = "restore map"
	CheckDatabase   = "database snapshot"
	CheckLogs       = "log chain"
	CheckConfig     = "configuration"
	CheckTrial      = "trial restore"
	CheckIntegrity  = "integrity"
	CheckCACert     = "CA certificate"
	CheckCerts      = "certificates"
	CheckCRLs       = "CRLs"
	CheckCounts     = "counts"
)

// checkOrder lists every check in report order.
var checkOrder = []string{
	CheckManifest, CheckFiles, CheckRestoreMap, CheckDatabase, CheckLogs, CheckConfig,
	CheckTrial, CheckIntegrity, CheckCACert, CheckCerts, CheckCRLs, CheckCounts,
}

// Check is the outcome of one check. OK is true when it ran on every file
// it needs and found no problem; Skipped is true when it could not run
// because an earlier check failed or the verification reached no verdict,
// or when a file it needs failed its own file check and it found no
// problem in the rest (OK is then false). Detail says in words what was
// checked or why it was skipped; the problems themselves are in
// Report.Problems.
type Check struct {
	Name    string
	OK      bool
	Skipped bool
	Detail  string
}

// Counts are what the restored database holds. Issued counts issued
// certificates that are not revoked; Revoked those that are (on hold
// included); Certificates both.
type Counts struct {
	Requests     int64
	Pending      int64
	Issued       int64
	Denied       int64
	Revoked      int64
	Certificates int64
	CRLs         int64
	Principals   int64
	Backups      int64
}

// Report is what Verify found.
type Report struct {
	// Dir is the set directory as given.
	Dir string
	// HasManifest is false for a set without manifest.json, whose
	// description Verify derived from the files themselves.
	HasManifest bool
	// ManifestChecksum is the manifest's checksum ("" without a manifest).
	ManifestChecksum string
	// CAName is the set's CA.
	CAName string
	// Backups is the number of backups in the set's chain (1 without a
	// manifest: the chain cannot be told apart from the files).
	Backups int
	// Files and Bytes count the set's files, manifest.json and
	// verified.json excluded.
	Files int
	Bytes int64
	// FirstGen and LastGen are the log generations the set holds.
	FirstGen, LastGen uint32
	// SnapshotLSN is the LSN the database snapshot reflects.
	SnapshotLSN uint64
	// FirstLSN..LastLSN is the range of log records the trial restore
	// replayed onto the snapshot (FirstLSN is SnapshotLSN+1; LastLSN is
	// SnapshotLSN when the logs hold nothing after it), and Replayed the
	// number of records.
	FirstLSN, LastLSN uint64
	Replayed          int
	// Counts are what the restored database holds (zero when the trial
	// restore did not run).
	Counts Counts
	// Checks lists every check in order.
	Checks []Check
	// Problems lists the problems found, each a *Problem, in the order of
	// the checks. A check that found very many lists the first of them and
	// one problem saying how many more it found.
	Problems []error
	// ProblemsFound is how many problems the checks found in all, those
	// Problems only counts included.
	ProblemsFound int
	// Notes are remarks that are not problems (for example that the set has
	// no manifest).
	Notes []string
	// Started is when verification started; Duration how long it took.
	Started  time.Time
	Duration time.Duration
	// LastVerified is the verification record found in the set before this
	// run (verified.json), or nil when there was none.
	LastVerified *Record
	// Err is the *EnvironmentError Verify returned when it reached no
	// verdict on the set (see ErrNotVerified), nil otherwise. The checks
	// that did not run are skipped; Problems holds what was found before.
	Err error
}

// OK reports whether the set verified: the verification reached a verdict
// and found no problem.
func (r *Report) OK() bool { return r.Err == nil && len(r.Problems) == 0 }

// Outcome is OutcomeOK when the set verified, OutcomeFailed when problems
// were found in it, and OutcomeError when the verification reached no
// verdict (Err).
func (r *Report) Outcome() string {
	switch {
	case r.Err != nil:
		return OutcomeError
	case len(r.Problems) > 0:
		return OutcomeFailed
	}
	return OutcomeOK
}

// Check returns the check named name, and false when the report has none.
func (r *Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// maxProblemsPerCheck bounds the problems one check lists; the rest are
// counted in one last problem (a set whose every certificate fails would
// otherwise list each).
const maxProblemsPerCheck = 50

// checks collects check outcomes and problems while Verify runs.
type checks struct {
	byName   map[string]*Check
	problems map[string][]error
	dropped  map[string]int
	lastDrop map[string]*Problem
}

func newChecks() *checks {
	c := &checks{byName: map[string]*Check{}, problems: map[string][]error{},
		dropped: map[string]int{}, lastDrop: map[string]*Problem{}}
	for _, n := range checkOrder {
		c.byName[n] = &Check{Name: n, Skipped: true}
	}
	return c
}

// pass records that check name ran; detail says what it covered when it
// found no problem (a check with problems says how many instead).
func (c *checks) pass(name, detail string) {
	ch := c.byName[name]
	ch.Skipped = false
	ch.Detail = detail
}

// skip records that check name did not run, and why.
func (c *checks) skip(name, why string) {
	ch := c.byName[name]
	if !ch.Skipped {
		return
	}
	ch.Detail = why
}

// add records a problem; its check ran and failed.
func (c *checks) add(p *Problem) {
	if len(c.problems[p.Check]) >= maxProblemsPerCheck {
		c.dropped[p.Check]++
		c.lastDrop[p.Check] = p
	} else {
		c.problems[p.Check] = append(c.problems[p.Check], p)
	}
	c.byName[p.Check].Skipped = false
}

// failed reports whether any of the named checks has a problem.
func (c *checks) failed(names ...string) bool {
	for _, n := range names {
		if len(c.problems[n]) > 0 {
			return true
		}
	}
	return false
}

// fill copies the checks and problems into r in report order.
func (c *checks) fill(r *Report) {
	r.Checks = r.Checks[:0]
	r.Problems = r.Problems[:0]
	r.ProblemsFound = 0
	for _, n := range checkOrder {
		ch := *c.byName[n]
		found := len(c.problems[n]) + c.dropped[n]
		r.ProblemsFound += found
		switch {
		case found > 0:
			ch.OK, ch.Skipped = false, false
			ch.Detail = fmt.Sprintf("%d problem%s", found, plural(found))
		case ch.Skipped:
			ch.OK = false
			if ch.Detail == "" {
				ch.Detail = "not run"
			}
		default:
			ch.OK = true
		}
		r.Checks = append(r.Checks, ch)
		r.Problems = append(r.Problems, c.problems[n]...)
		if d := c.dropped[n]; d > 0 {
			r.Problems = append(r.Problems, &Problem{Check: n,
				Err: fmt.Errorf("%d more problems of this check not listed; the last: %w", d, c.lastDrop[n])})
		}
	}
}

// plural returns "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// countOf writes n and the noun that goes with it: one for 1, else many.
func countOf[N ~int | ~int64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

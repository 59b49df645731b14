package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteText writes the report for people: a heading, one line per check
// (ok, FAIL or skip) with the problems it found beneath it, the notes, the
// result (OK, FAILED, or NOT VERIFIED when no verdict was reached) and
// when the set was last verified before.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	manifest := "no manifest"
	if r.HasManifest {
		manifest = "manifest " + shortSum(r.ManifestChecksum)
	}
	fmt.Fprintf(&b, "backup set %s\n", r.Dir)
	if r.CAName != "" {
		fmt.Fprintf(&b, "  CA %q, %s, %s\n", r.CAName, manifest, chainWords(max(r.Backups, 1)))
	}
	byCheck := map[string][]error{}
	for _, p := range r.Problems {
		var pr *Problem
		name := ""
		if errors.As(p, &pr) {
			name = pr.Check
		}
		byCheck[name] = append(byCheck[name], p)
	}
	for _, c := range r.Checks {
		status := "ok  "
		switch {
		case c.Skipped:
			status = "skip"
		case !c.OK:
			status = "FAIL"
		}
		fmt.Fprintf(&b, "  %s  %-18s %s\n", status, c.Name, c.Detail)
		for _, p := range byCheck[c.Name] {
			fmt.Fprintf(&b, "          - %s\n", p.Error())
		}
	}
	for _, p := range byCheck[""] {
		fmt.Fprintf(&b, "  - %s\n", p.Error())
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	switch r.Outcome() {
	case OutcomeOK:
		fmt.Fprintf(&b, "result: OK, restorable: %s, %s, %s replayed onto the snapshot, %s checked, in %s\n",
			countOf(r.Files, "file", "files"), byteWords(r.Bytes), countOf(r.Replayed, "log record", "log records"),
			countOf(r.Counts.Certificates, "certificate", "certificates"), r.Duration.Round(time.Millisecond))
	case OutcomeFailed:
		fmt.Fprintf(&b, "result: FAILED, %d problem%s, in %s\n", r.ProblemsFound, plural(r.ProblemsFound), r.Duration.Round(time.Millisecond))
	default:
		found := ""
		if n := len(r.Problems); n > 0 {
			found = fmt.Sprintf(", %d problem%s found before it stopped", n, plural(n))
		}
		fmt.Fprintf(&b, "result: NOT VERIFIED (a problem of this machine, no verdict on the set)%s, in %s: %v\n",
			found, r.Duration.Round(time.Millisecond), r.Err)
	}
	b.WriteString(r.lastVerifiedLine())
	_, err := io.WriteString(w, b.String())
	return err
}

// lastVerifiedLine says when the set was verified before this run, with
// what outcome, and how that compares with this run. It claims the set
// unchanged only when this run verified it and the record describes it
// (Record.Describes).
func (r *Report) lastVerifiedLine() string {
	v := r.LastVerified
	if v == nil {
		return "previously verified: never (no " + "verified.json" + ")\n"
	}
	tool := v.Tool
	if tool == "" {
		tool = "an unnamed tool"
	}
	var now string
	switch {
	case r.Err != nil:
		now = " (this run reached no verdict)"
	case !r.OK():
		now = "; this run found the set damaged"
	case v.Describes(r):
		now = " (the set is unchanged since)"
	case v.Outcome == OutcomeFailed:
		now = "; this run found no problem"
	default:
		now = " (the set has changed since)"
	}
	return fmt.Sprintf("previously verified: %s by %s: %s%s\n", v.Time.UTC().Format(timeFmt), tool, v.Outcome, now)
}

// shortSum shortens a digest for display.
func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// jsonReport is the JSON form of a Report.
type jsonReport struct {
	Dir              string        `json:"dir"`
	OK               bool          `json:"ok"`
	Outcome          string        `json:"outcome"`
	Error            string        `json:"error"`
	Manifest         bool          `json:"manifest"`
	ManifestChecksum string        `json:"manifest_checksum"`
	CA               string        `json:"ca"`
	Backups          int           `json:"backups"`
	Files            int           `json:"files"`
	Bytes            int64         `json:"bytes"`
	FirstGeneration  uint32        `json:"first_generation"`
	LastGeneration   uint32        `json:"last_generation"`
	SnapshotLSN      uint64        `json:"snapshot_lsn"`
	Replay           *jsonReplay   `json:"replay"` // null when the trial restore did not run
	Counts           *jsonCounts   `json:"counts"` // null when the trial restore did not run
	Checks           []jsonCheck   `json:"checks"`
	ProblemsFound    int           `json:"problems_found"`
	Problems         []jsonProblem `json:"problems"`
	Notes            []string      `json:"notes"`
	Started          time.Time     `json:"started"`
	DurationSeconds  float64       `json:"duration_seconds"`
	LastVerified     *Record       `json:"last_verified"`
	Unchanged        bool          `json:"unchanged_since_last_verified"`
}

type jsonReplay struct {
	FirstLSN uint64 `json:"first_lsn"`
	LastLSN  uint64 `json:"last_lsn"`
	Records  int    `json:"records"`
}

type jsonCounts struct {
	Requests     int64 `json:"requests"`
	Pending      int64 `json:"pending"`
	Issued       int64 `json:"issued"`
	Denied       int64 `json:"denied"`
	Revoked      int64 `json:"revoked"`
	Certificates int64 `json:"certificates"`
	CRLs         int64 `json:"crls"`
	Principals   int64 `json:"principals"`
	Backups      int64 `json:"backups"`
}

type jsonCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // "ok", "failed" or "skipped"
	Detail string `json:"detail"`
}

type jsonProblem struct {
	Check string `json:"check"`
	Path  string `json:"path"`
	Error string `json:"error"`
}

// MarshalJSON encodes the report for machines; doc.go describes the
// members.
func (r *Report) MarshalJSON() ([]byte, error) {
	c := r.Counts
	j := jsonReport{
		Dir: r.Dir, OK: r.OK(), Outcome: r.Outcome(), Manifest: r.HasManifest, ManifestChecksum: r.ManifestChecksum, CA: r.CAName,
		Backups: r.Backups, Files: r.Files, Bytes: r.Bytes, FirstGeneration: r.FirstGen, LastGeneration: r.LastGen,
		SnapshotLSN: r.SnapshotLSN,
		Checks:      []jsonCheck{}, ProblemsFound: r.ProblemsFound, Problems: []jsonProblem{}, Notes: append([]string{}, r.Notes...),
		Started: r.Started.UTC(), DurationSeconds: r.Duration.Seconds(), LastVerified: r.LastVerified,
	}
	if r.Err != nil {
		j.Error = r.Err.Error()
	}
	if r.trialRan() {
		j.Replay = &jsonReplay{FirstLSN: r.FirstLSN, LastLSN: r.LastLSN, Records: r.Replayed}
		j.Counts = &jsonCounts{Requests: c.Requests, Pending: c.Pending, Issued: c.Issued, Denied: c.Denied, Revoked: c.Revoked,
			Certificates: c.Certificates, CRLs: c.CRLs, Principals: c.Principals, Backups: c.Backups}
	}
	if r.LastVerified != nil {
		j.Unchanged = r.LastVerified.Describes(r)
	}
	for _, ch := range r.Checks {
		st := "ok"
		switch {
		case ch.Skipped:
			st = "skipped"
		case !ch.OK:
			st = "failed"
		}
		j.Checks = append(j.Checks, jsonCheck{Name: ch.Name, Status: st, Detail: ch.Detail})
	}
	for _, p := range r.Problems {
		jp := jsonProblem{Error: p.Error()}
		var pr *Problem
		if errors.As(p, &pr) {
			jp.Check, jp.Path = pr.Check, pr.Path
		}
		j.Problems = append(j.Problems, jp)
	}
	return json.Marshal(j)
}

// trialRan reports whether the trial restore ran (its check is not
// skipped), so that the replay and the counts were measured.
func (r *Report) trialRan() bool {
	for _, ch := range r.Checks {
		if ch.Name == CheckTrial {
			return !ch.Skipped
		}
	}
	return false
}

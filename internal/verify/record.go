package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/fsutil"
)

// RecordFormat is the version of verified.json this package writes and
// reads.
const RecordFormat = 1

// Outcomes of a verification (Report.Outcome). A record holds only the
// verdicts, OutcomeOK and OutcomeFailed: a verification that reached none
// (OutcomeError) is not recorded.
const (
	OutcomeOK     = "ok"
	OutcomeFailed = "failed"
	OutcomeError  = "error"
)

// maxRecord bounds the size of a verified.json a reader accepts.
const maxRecord = 1 << 20

// Record is verified.json: the outcome of one verification of a set, kept
// in the set so that a later verification can say when the set was last
// proven restorable. doc.go gives the format.
type Record struct {
	Format           int       `json:"format"`
	Time             time.Time `json:"time"`
	Tool             string    `json:"tool"`
	Outcome          string    `json:"outcome"`
	Manifest         bool      `json:"manifest"`
	ManifestChecksum string    `json:"manifest_checksum"`
	CAName           string    `json:"ca"`
	Backups          int       `json:"backups"`
	Files            int       `json:"files"`
	Bytes            int64     `json:"bytes"`
	SnapshotLSN      uint64    `json:"snapshot_lsn"`
	LastLSN          uint64    `json:"last_lsn"`
	Certificates     int64     `json:"certificates"`
	DurationSeconds  float64   `json:"duration_seconds"`
	Problems         []string  `json:"problems"`
}

// NewRecord returns the verification record of r; tool names the program
// and its version (for example "certadm v1.2.0"). r must hold a verdict:
// the record of a report whose Outcome is OutcomeError carries that
// outcome, and WriteRecord refuses it (ErrRecord).
func NewRecord(r *Report, tool string) *Record {
	rec := &Record{
		Format:           RecordFormat,
		Time:             r.Started.Add(r.Duration).UTC().Truncate(time.Second),
		Tool:             tool,
		Outcome:          r.Outcome(),
		Manifest:         r.HasManifest,
		ManifestChecksum: r.ManifestChecksum,
		CAName:           r.CAName,
		Backups:          r.Backups,
		Files:            r.Files,
		Bytes:            r.Bytes,
		SnapshotLSN:      r.SnapshotLSN,
		LastLSN:          r.LastLSN,
		Certificates:     r.Counts.Certificates,
		DurationSeconds:  r.Duration.Round(time.Millisecond).Seconds(),
		Problems:         []string{},
	}
	if rec.Outcome == OutcomeFailed {
		for _, p := range r.Problems {
			rec.Problems = append(rec.Problems, p.Error())
		}
	}
	return rec
}

// validate checks a record read from a file.
func (rec *Record) validate() error {
	switch {
	case rec.Format != RecordFormat:
		return fmt.Errorf("format %d, want %d", rec.Format, RecordFormat)
	case rec.Time.IsZero():
		return errors.New("no time")
	case rec.Outcome == OutcomeError:
		return errors.New("outcome error: a verification that reached no verdict is not recorded")
	case rec.Outcome != OutcomeOK && rec.Outcome != OutcomeFailed:
		return fmt.Errorf("outcome %q", rec.Outcome)
	case rec.Outcome == OutcomeOK && len(rec.Problems) > 0:
		return errors.New("outcome ok with problems")
	}
	return nil
}

// Describes reports whether rec is the record of a successful
// verification of the set exactly as r found it: r verified the set (its
// outcome is ok, so every file matched the manifest), rec's outcome is ok
// too, and both saw the same manifest (or, without one, the same files and
// log position). A run that found problems or reached no verdict is
// described by no record: nothing then shows the set unchanged.
func (rec *Record) Describes(r *Report) bool {
	return r.OK() && rec.Outcome == OutcomeOK &&
		rec.Manifest == r.HasManifest && rec.ManifestChecksum == r.ManifestChecksum &&
		rec.Files == r.Files && rec.Bytes == r.Bytes && rec.LastLSN == r.LastLSN
}

// ReadRecord reads dir/verified.json. A missing file gives an error
// matching fs.ErrNotExist; a malformed one ErrRecord.
func ReadRecord(dir string) (*Record, error) {
	p := filepath.Join(dir, backupset.VerifiedFile)
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if fi.Size() > maxRecord {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrRecord, p, fi.Size())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rec Record
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrRecord, p, err)
	}
	if err := rec.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrRecord, p, err)
	}
	return &rec, nil
}

// WriteRecord writes rec into dir as verified.json, replacing any there:
// verified.json.tmp is written, fsynced and renamed over verified.json,
// and dir is fsynced. A crash leaves the old record or the new one, and
// perhaps verified.json.tmp, which Verify ignores and the next WriteRecord
// replaces. The file is not part of the set's content: the manifest does
// not list it and it does not change what the set restores.
func WriteRecord(dir string, rec *Record) error {
	if err := rec.validate(); err != nil {
		return fmt.Errorf("write verification record: %w: %v", ErrRecord, err)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("write verification record: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, backupset.VerifiedFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write verification record: %w", err)
	}
	return nil
}

// readPrevious reads the record a set holds before verification starts;
// a malformed one is reported as a note, not a problem.
func readPrevious(dir string) (*Record, string) {
	rec, err := ReadRecord(dir)
	switch {
	case err == nil:
		return rec, ""
	case errors.Is(err, fs.ErrNotExist):
		return nil, ""
	}
	return nil, fmt.Sprintf("the previous verification record cannot be used (%v); it will be replaced", err)
}

package verify

import (
	"errors"
	"fmt"
	"strings"

	"github.com/certsrv/certsrv/internal/backupset"
)

// Sentinel errors. A problem Verify finds matches one of these or one of
// internal/backupset's sentinels (file, manifest and chain problems)
// through errors.Is; the *Problem around it says which check found it and
// which file of the set it concerns.
var (
	// ErrNotASet means the directory holds neither a manifest nor a
	// database snapshot, log generation or restore map: it is not a backup
	// set. It is backupset.ErrNotASet.
	ErrNotASet = backupset.ErrNotASet
	// ErrLogOrder means a log file holds another generation than its name
	// says: the log files were renamed or put out of order. It is
	// backupset.ErrLogOrder, and such a problem also matches
	// backupset.ErrLogCorrupt.
	ErrLogOrder = backupset.ErrLogOrder
	// ErrChanged means a file of the set changed while it was verified.
	ErrChanged = errors.New("file changed during verification")
	// ErrTrialRestore means the trial restore failed: the snapshot could
	// not be copied, or the log records could not be replayed onto it up to
	// the end of the set's logs.
	ErrTrialRestore = errors.New("trial restore failed")
	// ErrIntegrity means SQLite's integrity_check found damage in the
	// restored database.
	ErrIntegrity = errors.New("restored database fails integrity_check")
	// ErrCACertificate means the set holds no usable CA certificate: none
	// in Dynamic/, not the one the manifest names, or not a CA certificate
	// for the set's CA name.
	ErrCACertificate = errors.New("CA certificate missing or wrong")
	// ErrCertificate means an issued certificate in the restored database
	// does not parse, does not verify against the CA certificate, or does
	// not match what the database records about it.
	ErrCertificate = errors.New("issued certificate does not verify")
	// ErrCRL means a CRL (recorded in the database or published in
	// Dynamic/) does not verify against the CA certificate, or the latest
	// CRL does not list exactly the revocations the database knew of when
	// it was published.
	ErrCRL = errors.New("CRL does not match the database")
	// ErrInconsistent means the restored database contradicts itself or the
	// set: request states, certificates, revocation history, CRL numbers or
	// its position.
	ErrInconsistent = errors.New("restored database inconsistent")
	// ErrConfig means the set's Config/certsrv.json does not parse or
	// describes another CA or log base than the set's. It is
	// backupset.ErrConfig.
	ErrConfig = backupset.ErrConfig
	// ErrRecord means verified.json cannot be read or is malformed.
	ErrRecord = errors.New("verification record malformed")
	// ErrNotVerified means the verification reached no verdict on the set
	// because of the machine running it, not because of the set: the
	// trial restore's temporary directory could not be made or written
	// (absent, not writable, out of space), SQLite could not work on the
	// copy there, or the context ended. It is never a Problem; Verify
	// returns it inside an *EnvironmentError, and nothing may be recorded
	// in verified.json.
	ErrNotVerified = errors.New("could not verify")
)

// Problem is one thing Verify found wrong. Check names the check that
// found it (one of the Check* names), Path the file of the set it concerns,
// relative to the set directory and slash-separated ("" when it concerns no
// single file; for a missing file, the path the file should have). Err is
// the cause; it matches this package's or internal/backupset's sentinels.
type Problem struct {
	Check string
	Path  string
	Err   error
}

// Error names the file first, unless the cause already begins with it.
func (p *Problem) Error() string {
	msg := p.Err.Error()
	if p.Path == "" || strings.HasPrefix(msg, p.Path+":") {
		return msg
	}
	return p.Path + ": " + msg
}

// Unwrap returns the cause.
func (p *Problem) Unwrap() error { return p.Err }

// FailedError is the error Verify returns when it found problems: every
// problem, in the order of the checks. errors.Is matches any problem's
// sentinels.
type FailedError struct {
	Dir      string
	Problems []error
	// Found is how many problems were found in all (Report.ProblemsFound);
	// zero means len(Problems).
	Found int
}

func (e *FailedError) Error() string {
	var b strings.Builder
	found := max(e.Found, len(e.Problems))
	fmt.Fprintf(&b, "backup set %s failed verification: %d problem", e.Dir, found)
	if found != 1 {
		b.WriteString("s")
	}
	for i, p := range e.Problems {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", found-3)
			break
		}
		b.WriteString("; ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems.
func (e *FailedError) Unwrap() []error { return e.Problems }

// EnvironmentError is the error Verify returns when it reached no verdict
// on the set in Dir (see ErrNotVerified): Op says in words what could not
// be done, Path the local path involved ("" when none), Err the cause (the
// context's error, an *fs.PathError, a SQLite error). errors.Is matches
// ErrNotVerified and the cause's sentinels.
type EnvironmentError struct {
	Dir  string
	Op   string
	Path string
	Err  error
}

func (e *EnvironmentError) Error() string {
	return fmt.Sprintf("could not verify %s: %s: %v", e.Dir, e.Op, e.Err)
}

// Unwrap returns ErrNotVerified and the cause.
func (e *EnvironmentError) Unwrap() []error { return []error{ErrNotVerified, e.Err} }

// problemf builds a *Problem whose cause wraps sentinel with a message.
func problemf(check, path string, sentinel error, format string, args ...any) *Problem {
	return &Problem{Check: check, Path: path, Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
}

// chainProblem builds a *Problem around a *backupset.ChainError, the type
// internal/backupset uses for chain and identity problems, so that callers
// match the same types whether or not the set has a manifest.
func chainProblem(check, path string, sentinel error, gen uint32, format string, args ...any) *Problem {
	return &Problem{Check: check, Path: path, Err: &backupset.ChainError{
		Backup: -1, Gen: gen, Reason: fmt.Sprintf(format, args...), Err: sentinel,
	}}
}

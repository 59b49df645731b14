package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/certsrv/certsrv/internal/termline"
	"github.com/certsrv/certsrv/internal/verify"
)

// newVerifyProgress starts the status line of certadm verify on w, one
// terminal line of standard error redrawn in place every
// termline.Interval: the share of the set's bytes whose digests are
// checked, then the trial restore's stage and, while the issued
// certificates are checked, how many. A verification of a large set spends
// most of its time in the trial restore (copying and checking the database,
// one signature per certificate), so the line says what it is doing, not
// only how many bytes it read. It returns nil, and draws nothing, when w is
// not a terminal; the caller closes the line before it prints anything.
func newVerifyProgress(w io.Writer, p *verify.Progress) *termline.Line {
	out, width, ok := terminalOutput(w)
	if !ok {
		return nil
	}
	start := time.Now()
	l := termline.New(out, func() string { return verifyStateOf(p).line(time.Since(start), width) })
	l.Draw() // at once: a small set is verified before the first tick
	l.Start()
	return l
}

// verifyState is what a verify.Progress says at one moment.
type verifyState struct {
	hashed, toHash int64  // bytes whose digests were checked, of all
	stage          string // the trial restore's stage (verify.Stage*)
	certs, ofCerts int64  // certificates checked, of all
}

func verifyStateOf(p *verify.Progress) verifyState {
	var s verifyState
	s.hashed, s.toHash = p.Files()
	s.stage = p.Stage()
	s.certs, s.ofCerts = p.Certificates()
	return s
}

// line is the progress line after elapsed, at most width-1 columns:
// "verifying: files 45 % (450.0 MB of 1.00 GB), trial restore: integrity
// check  12s".
func (s verifyState) line(elapsed time.Duration, width int) string {
	var parts []string
	if s.toHash > 0 {
		if s.hashed < s.toHash {
			parts = append(parts, fmt.Sprintf("files %d %% (%s of %s)", int(100*float64(s.hashed)/float64(s.toHash)), termline.Bytes(s.hashed), termline.Bytes(s.toHash)))
		} else {
			parts = append(parts, "files checked")
		}
	}
	switch s.stage {
	case "":
	case verify.StageCerts:
		pct := 100
		if s.ofCerts > 0 {
			pct = int(100 * float64(s.certs) / float64(s.ofCerts))
		}
		parts = append(parts, fmt.Sprintf("certificates %d of %d (%d %%)", s.certs, s.ofCerts, pct))
	default:
		parts = append(parts, "trial restore: "+s.stage)
	}
	line := "verifying"
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, ", ")
	}
	line += "  " + elapsed.Truncate(time.Second).String()
	return termline.Fit(line, width)
}

package main

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/certsrv/certsrv/internal/restore"
	"github.com/certsrv/certsrv/internal/termline"
)

// terminalOutput is termline.Terminal; tests replace it to take the
// terminal path.
var terminalOutput = termline.Terminal

// restoreProgress is the status line of certsrv restore and certsrv
// recover on a terminal (standard error): the share of the set verified,
// then the stage, and during hard recovery its phase. Log messages go above
// it. A nil *restoreProgress does nothing: in a script nothing is drawn.
type restoreProgress struct {
	line   *termline.Line
	status restore.Status
	phase  atomic.Pointer[restore.Phase]
	out    io.Writer // where log messages go
}

// newRestoreProgress starts the line on w when w is a terminal, else
// returns nil.
func newRestoreProgress(w io.Writer) *restoreProgress {
	out, width, ok := terminalOutput(w)
	if !ok {
		return nil
	}
	p := &restoreProgress{}
	start := time.Now()
	p.line = termline.New(out, func() string { return p.text(time.Since(start), width) })
	p.out = p.line.Above(out)
	p.line.Draw()
	p.line.Start()
	return p
}

// onPhase records a phase of hard recovery.
func (p *restoreProgress) onPhase(e restore.Event) {
	if p != nil {
		p.phase.Store(&e.Phase)
	}
}

// statusOf returns the restore.Status to keep up to date, nil without a
// line.
func (p *restoreProgress) statusOf() *restore.Status {
	if p == nil {
		return nil
	}
	return &p.status
}

func (p *restoreProgress) close() {
	if p != nil {
		p.line.Close()
	}
}

// text is the line after elapsed, fitted to width.
func (p *restoreProgress) text(elapsed time.Duration, width int) string {
	s := "restoring"
	switch stage := p.status.Stage(); stage {
	case "":
	case restore.StageVerify:
		hashed, total := p.status.Verified()
		s += ": " + stage
		if total > 0 {
			s += fmt.Sprintf(" %d %% (%s of %s)", int(100*float64(hashed)/float64(total)), termline.Bytes(hashed), termline.Bytes(total))
		}
	case restore.StageRecover:
		s = "recovering"
		if ph := p.phase.Load(); ph != nil {
			s += ": " + string(*ph)
		}
	default:
		s += ": " + stage
	}
	return termline.Fit(s+"  "+elapsed.Truncate(time.Second).String(), width)
}

package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/certsrv/certsrv/internal/termline"
)

// The progress line of certadm backup on a terminal.
const (
	// rateWarmup is how long after the line appears it shows no rate: the
	// first chunk of a file arrives at once, so a rate measured over less
	// time says nothing about the run.
	rateWarmup = time.Second
	// rateWindow is the span the shown rate is measured over, so that it
	// follows a change of pace within seconds.
	rateWindow = 3 * time.Second
	// progressBarWidth is the bar's width when the terminal has room.
	progressBarWidth = 30
	// progressNameWidth is the most of a file name the line shows.
	progressNameWidth = 24
)

// terminalOutput is termline.Terminal; tests replace it to take the
// terminal path.
var terminalOutput = termline.Terminal

// backupProgress shows how far a whole backup run is on one terminal line,
// redrawn in place every termline.Interval: the file being copied, a bar and
// a percentage over the bytes of every file the session listed so far, those
// bytes as done of total, and the rate once it means something. The total
// grows as the session lists files (a full backup lists its log generations
// after its database is copied); add counts bytes as they pass (progress).
//
// A nil *backupProgress does nothing: a run whose standard output is not a
// terminal has none and prints only its summary line.
type backupProgress struct {
	live  *termline.Line
	width int
	now   func() time.Time

	mu      sync.Mutex
	name    string
	total   int64
	done    int64
	start   time.Time
	samples []progressSample // done at each redraw in the last rateWindow
}

// progressSample is how many bytes were done at a time.
type progressSample struct {
	at   time.Time
	done int64
}

// newBackupProgress returns the progress line for a run whose messages go
// to w, and starts redrawing it; it returns nil when w is not a terminal.
// The caller calls close before it prints anything else on w.
func newBackupProgress(w io.Writer) *backupProgress {
	out, width, ok := terminalOutput(w)
	if !ok {
		return nil
	}
	p := newProgressLine(out, width, time.Now)
	p.live.Start()
	return p
}

// newProgressLine returns a line for a terminal width columns wide that
// reads the time from now, without the redrawing (tests draw it by hand).
// The rate is measured from now(): the bytes of the first chunk took the
// time since then to arrive.
func newProgressLine(w io.Writer, width int, now func() time.Time) *backupProgress {
	start := now()
	p := &backupProgress{width: width, now: now, start: start, samples: []progressSample{{at: start}}}
	p.live = termline.New(w, func() string { return p.line(p.now()) })
	return p
}

// expect adds n bytes to the total: the listed size of a file the run will
// copy.
func (p *backupProgress) expect(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.total += n
	p.mu.Unlock()
}

// file names the file being copied.
func (p *backupProgress) file(name string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.name = name
	p.mu.Unlock()
}

// add counts n bytes as done.
func (p *backupProgress) add(n int64) {
	if p == nil || n <= 0 {
		return
	}
	p.mu.Lock()
	p.done += n
	p.mu.Unlock()
}

// draw redraws the line.
func (p *backupProgress) draw() { p.live.Draw() }

// clearLine erases the line until the next redraw, so that a message the
// caller prints on the same terminal starts on a clean line.
func (p *backupProgress) clearLine() {
	if p != nil {
		p.live.Clear()
	}
}

// close stops the redrawing and clears the line, so that what the caller
// prints next starts on a clean line. It may be called more than once.
func (p *backupProgress) close() {
	if p != nil {
		p.live.Close()
	}
}

// line is what draw writes at now (without the carriage return and the
// erase-to-end-of-line that surround it).
func (p *backupProgress) line(now time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lineLocked(now)
}

func (p *backupProgress) lineLocked(now time.Time) string {
	rate, known := p.rateLocked(now)
	name := p.name
	if utf8.RuneCountInString(name) > progressNameWidth {
		r := []rune(name)
		name = string(r[:progressNameWidth-1]) + "…"
	}
	total := max(p.total, p.done)
	frac := 1.0
	if total > 0 {
		frac = float64(p.done) / float64(total)
	}
	tail := fmt.Sprintf(" %3d%%  %s / %s", int(frac*100), termline.Bytes(p.done), termline.Bytes(total))
	if known {
		tail += "  " + termline.Bytes(int64(rate)) + "/s"
	}
	// The bar gets what the terminal has left, at most progressBarWidth
	// columns; on a narrow terminal there is none.
	bar := ""
	room := p.width - 1 - utf8.RuneCountInString(name) - len(tail) - 3
	if w := min(progressBarWidth, room); w >= 10 {
		filled := int(frac * float64(w))
		bar = " [" + strings.Repeat("=", filled) + strings.Repeat(" ", w-filled) + "]"
	}
	return name + bar + tail
}

// rateLocked records a sample at now and returns the rate in bytes per
// second over the last rateWindow, and false while no rate is meaningful
// yet: before the first byte and for rateWarmup after the line appeared.
func (p *backupProgress) rateLocked(now time.Time) (float64, bool) {
	p.samples = append(p.samples, progressSample{at: now, done: p.done})
	// Keep one sample at or before the window's start, so that the rate
	// spans the whole window once the run is that old.
	start := now.Add(-rateWindow)
	i := 0
	for i+1 < len(p.samples) && !p.samples[i+1].at.After(start) {
		i++
	}
	p.samples = p.samples[i:]
	if p.done == 0 || now.Sub(p.start) < rateWarmup {
		return 0, false
	}
	oldest := p.samples[0]
	dt := now.Sub(oldest.at).Seconds()
	if dt <= 0 {
		return 0, false
	}
	return float64(p.done-oldest.done) / dt, true
}

// progress counts what passes through src on p, keeping src's WriteTo
// (which hands over the server's chunks without a copy). With p nil it
// returns src.
func progress(src io.Reader, p *backupProgress) io.Reader {
	if p == nil {
		return src
	}
	return &meteredReader{src: src, after: func(n int) error { p.add(int64(n)); return nil }}
}

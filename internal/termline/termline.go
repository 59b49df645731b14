// Package termline draws one status line on a terminal, redrawn in place:
// the progress displays of certadm backup, certadm verify and certsrv
// restore. A program whose output is not a terminal draws nothing (it
// stays quiet in scripts), which Terminal decides.
package termline

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Interval is how often a started Line is redrawn, whether or not anything
// changed: a stalled operation still shows its clock or rate moving.
const Interval = 200 * time.Millisecond

// Terminal returns w and its width in columns when w is a terminal, and ok
// false otherwise (a pipe, a file, a test's buffer).
func Terminal(w io.Writer) (out io.Writer, width int, ok bool) {
	f, isFile := w.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return nil, 0, false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		width = 80
	}
	return f, width, true
}

// Line is one terminal line redrawn in place with what render returns: by
// hand (Draw), or every Interval once started, until Close, which erases
// it so that what the caller prints next starts on a clean line.
type Line struct {
	w      io.Writer
	render func() string

	mu       sync.Mutex
	closed   bool
	stop     chan struct{} // nil until Start
	finished chan struct{}
}

// New returns a line on w drawn with render; nothing is drawn yet.
func New(w io.Writer, render func() string) *Line {
	return &Line{w: w, render: render}
}

// Start redraws the line every Interval until Close.
func (l *Line) Start() {
	l.stop, l.finished = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.finished)
		t := time.NewTicker(Interval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.Draw()
			}
		}
	}()
}

// Above returns a writer whose writes appear above the line: each erases
// the line, writes to w (which should end its writes with a newline, as a
// logger does) and draws the line again below. Once the line is closed it
// writes to w alone.
func (l *Line) Above(w io.Writer) io.Writer { return aboveWriter{l, w} }

type aboveWriter struct {
	l *Line
	w io.Writer
}

func (a aboveWriter) Write(p []byte) (int, error) {
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	if a.l.closed {
		return a.w.Write(p)
	}
	fmt.Fprint(a.l.w, "\r\x1b[K")
	n, err := a.w.Write(p)
	fmt.Fprintf(a.l.w, "\r%s\x1b[K", a.l.render())
	return n, err
}

// Draw redraws the line, unless it was closed.
func (l *Line) Draw() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		fmt.Fprintf(l.w, "\r%s\x1b[K", l.render())
	}
}

// Clear erases the line until the next redraw.
func (l *Line) Clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		fmt.Fprint(l.w, "\r\x1b[K")
	}
}

// Close stops the redrawing and erases the line. It may be called more
// than once, and on a nil *Line (which does nothing).
func (l *Line) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	if l.stop != nil {
		close(l.stop)
		<-l.finished
	}
	fmt.Fprint(l.w, "\r\x1b[K")
}

// Bytes formats a byte count for a status line, in decimal units (as MB/s
// rates are).
func Bytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

// Fit shortens s to at most width-1 columns (a line that fills the last
// column makes some terminals wrap), ending it with "…" when cut.
func Fit(s string, width int) string {
	room := width - 1
	r := []rune(s)
	if room <= 1 || len(r) <= room {
		return s
	}
	return string(r[:room-1]) + "…"
}

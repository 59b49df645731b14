package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// liveLine is one terminal line redrawn in place with what render returns:
// by hand (draw), or every progressInterval once started, until close,
// which erases it so that what the caller prints next starts on a clean
// line. The progress displays of certadm backup and certadm verify are
// liveLines.
type liveLine struct {
	w      io.Writer
	render func() string

	mu       sync.Mutex
	closed   bool
	stop     chan struct{} // nil until start
	finished chan struct{}
}

func newLiveLine(w io.Writer, render func() string) *liveLine {
	return &liveLine{w: w, render: render}
}

// start redraws the line every progressInterval until close.
func (l *liveLine) start() {
	l.stop, l.finished = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.finished)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.draw()
			}
		}
	}()
}

// draw redraws the line, unless it was closed.
func (l *liveLine) draw() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		fmt.Fprintf(l.w, "\r%s\x1b[K", l.render())
	}
}

// clear erases the line until the next redraw.
func (l *liveLine) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		fmt.Fprint(l.w, "\r\x1b[K")
	}
}

// close stops the redrawing and erases the line. It may be called more
// than once.
func (l *liveLine) close() {
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

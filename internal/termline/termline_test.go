package termline

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/clitest"
)

func TestLineDrawClearClose(t *testing.T) {
	var b bytes.Buffer
	n := 0
	l := New(&b, func() string { n++; return "step " + strings.Repeat("x", n) })
	l.Draw()
	l.Clear()
	l.Draw()
	l.Close()
	l.Close() // once only
	l.Draw()  // after Close: nothing
	if got, want := b.String(), "\rstep x\x1b[K\r\x1b[K\rstep xx\x1b[K\r\x1b[K"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}

func TestAboveWritesAboveTheLine(t *testing.T) {
	var term, log bytes.Buffer
	l := New(&term, func() string { return "busy" })
	w := l.Above(&log)
	w.Write([]byte("a message\n"))
	if term.String() != "\r\x1b[K\rbusy\x1b[K" || log.String() != "a message\n" {
		t.Errorf("terminal %q, log %q", term.String(), log.String())
	}
	l.Close()
	term.Reset()
	w.Write([]byte("after\n"))
	if term.String() != "" || log.String() != "a message\nafter\n" {
		t.Errorf("after Close: terminal %q, log %q", term.String(), log.String())
	}
	var none *Line
	none.Close()
}

func TestLineStartRedraws(t *testing.T) {
	var buf clitest.SyncBuffer
	l := New(&buf, func() string { return "tick" })
	l.Start()
	time.Sleep(3 * Interval)
	l.Close()
	out := buf.String()
	if strings.Count(out, "\rtick\x1b[K") < 1 || !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("wrote %q", out)
	}
}

func TestTerminalRefusesNonTerminals(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []io.Writer{f, &bytes.Buffer{}} {
		if _, _, ok := Terminal(w); ok {
			t.Errorf("%T taken for a terminal", w)
		}
	}
}

func TestBytesAndFit(t *testing.T) {
	for n, want := range map[int64]string{999: "999 B", 1500: "1.5 kB", 2_500_000: "2.5 MB", 1_080_000_000: "1.08 GB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Fit("verifying: files 45 %", 11); got != "verifying…" {
		t.Errorf("Fit = %q", got)
	}
	if got := Fit("short", 80); got != "short" {
		t.Errorf("Fit = %q", got)
	}
}

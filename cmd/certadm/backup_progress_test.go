package main

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/clitest"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/termline"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

var rateShown = regexp.MustCompile(`  ([0-9.]+) (B|kB|MB|GB)/s$`)

// shownRate returns the rate a progress line shows in bytes per second,
// and false when it shows none.
func shownRate(t *testing.T, line string) (float64, bool) {
	t.Helper()
	m := rateShown.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	return parseShownBytes(t, m[1], m[2]), true
}

func parseShownBytes(t *testing.T, num, unit string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		t.Fatalf("progress line number %q: %v", num, err)
	}
	return v * map[string]float64{"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
}

// TestBackupProgressRate: a first chunk that arrives at once shows no rate
// (the rate a bar started at the first byte shows: a chunk over a
// microsecond); a rate, once shown, is never above the run's average since
// the line appeared, and it follows a change of pace within the window.
func TestBackupProgressRate(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newProgressLine(nil, 120, clock.now)
	start := clock.now()
	p.expect(40 << 20)
	p.file("certsrv CA.db")
	if line := p.line(clock.now()); !strings.HasPrefix(line, "certsrv CA.db [") || !strings.Contains(line, "  0%  0 B / 41.9 MB") {
		t.Fatalf("before the first byte: %q", line)
	}
	// The server takes 300ms to send the first chunk, 4 MiB, which then
	// arrives in a microsecond.
	clock.advance(300 * time.Millisecond)
	p.add(4 << 20)
	clock.advance(time.Microsecond)
	if line := p.line(clock.now()); strings.Contains(line, "/s") {
		t.Fatalf("a rate shown right after the first chunk: %q", line)
	}
	// Then 1 MB/s, sampled as the line is redrawn.
	shownAny := false
	for i := 0; i < 30; i++ {
		clock.advance(termline.Interval)
		p.add(200e3)
		line := p.line(clock.now())
		rate, ok := shownRate(t, line)
		if !ok {
			if clock.now().Sub(start) >= rateWarmup {
				t.Fatalf("no rate %v in: %q", clock.now().Sub(start), line)
			}
			continue
		}
		shownAny = true
		// The line shows one decimal of MB: allow for its rounding.
		if average := float64(p.done) / clock.now().Sub(start).Seconds(); rate > average+0.05e6 {
			t.Fatalf("%v in: rate %.0f B/s shown, above the average %.0f B/s since the start: %q", clock.now().Sub(start), rate, average, line)
		}
	}
	if !shownAny {
		t.Fatal("no rate shown in six seconds")
	}
	// Once the first chunk is out of the window, the rate is the stream's.
	if rate, ok := shownRate(t, p.line(clock.now())); !ok || rate < 0.95e6 || rate > 1.05e6 {
		t.Fatalf("at a steady 1 MB/s: %q", p.line(clock.now()))
	}
	// A stalled stream shows its rate falling, then nothing arriving.
	var line string
	for i := 0; i < 20; i++ {
		clock.advance(termline.Interval)
		line = p.line(clock.now())
	}
	if rate, ok := shownRate(t, line); !ok || rate != 0 {
		t.Fatalf("after four seconds without a byte: %q", line)
	}
}

// TestBackupProgressLine: the line counts every file the run listed, so its
// total grows with the listing, and it fits the terminal.
func TestBackupProgressLine(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newProgressLine(nil, 100, clock.now)
	p.expect(3e6) // the database
	p.file("certsrv CA.db")
	p.add(3e6)
	if line := p.line(clock.now()); !strings.Contains(line, "100%  3.0 MB / 3.0 MB") || !strings.Contains(line, "["+strings.Repeat("=", progressBarWidth)+"]") {
		t.Fatalf("database copied: %q", line)
	}
	p.expect(1e6) // the logs, listed after the database
	p.file("ca00000007.log")
	if line := p.line(clock.now()); !strings.HasPrefix(line, "ca00000007.log [") || !strings.Contains(line, " 75%  3.0 MB / 4.0 MB") {
		t.Fatalf("logs listed: %q", line)
	}
	p.file("a file name far longer than the line gives it.crl")
	if line := p.line(clock.now()); !strings.HasPrefix(line, "a file name far longer …") {
		t.Fatalf("long name: %q", line)
	}
	p.width = 40
	if line := p.line(clock.now()); strings.Contains(line, "[") || len(line) > 60 {
		t.Fatalf("on a 40-column terminal: %q", line)
	}
}

var progressTotal = regexp.MustCompile(`%  ([0-9.]+) (B|kB|MB|GB) / ([0-9.]+) (B|kB|MB|GB)`)

// TestBackupProgressOnTerminal runs certadm backup with its standard output
// taken for a terminal: the line is redrawn several times a second, never
// shows a rate beyond what the run delivers (--max-rate), counts the
// database and the logs together, and is cleared before the summary, which
// is the same line as off a terminal.
func TestBackupProgressOnTerminal(t *testing.T) {
	isolate(t)
	srv := startServer(t)
	ctx := context.Background()
	db := srv.CA.Store()
	// 3 MiB of CRL records in the database, 1 MiB more in the logs after
	// the last checkpoint.
	blob := make([]byte, 1<<20)
	for n := uint64(1 << 40); n < 1<<40+4; n++ {
		rand.Read(blob)
		now := time.Now()
		if _, err := db.RecordCRL(ctx, store.CRL{Number: n, ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: blob}); err != nil {
			t.Fatal(err)
		}
		if n == 1<<40+2 {
			if err := db.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	term := clitest.FakeTerminal(t, &terminalOutput, 120)

	dir := filepath.Join(t.TempDir(), "set")
	const maxRate = 2 << 20
	start := time.Now()
	code, out, errOut := cli(t, "--server", srv.Addr, "--creds", srv.CredsDir, "backup", dir, "--max-rate", "2MiB/s")
	elapsed := time.Since(start)
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.HasPrefix(out, "backup complete: full backup of ") || strings.Count(out, "\n") != 1 || errOut != "" {
		t.Errorf("stdout %q, stderr %q: want the summary line alone", out, errOut)
	}
	set, err := backupset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var dbSize, logSize int64
	for _, f := range set.Manifest().Files {
		switch f.Kind {
		case backupset.KindDatabase:
			dbSize += f.Size
		case backupset.KindLog:
			logSize += f.Size
		}
	}

	shown := term.String()
	if !strings.HasSuffix(shown, "\r\x1b[K") {
		t.Errorf("the progress line was not cleared at the end: %q", shown[max(0, len(shown)-200):])
	}
	var frames []string
	for _, f := range strings.Split(shown, "\r") {
		if f = strings.TrimSuffix(f, "\x1b[K"); f != "" {
			frames = append(frames, f)
		}
	}
	t.Logf("%d frames in %v (database %d bytes, logs %d bytes); last: %q", len(frames), elapsed, dbSize, logSize, frames[len(frames)-1])
	if want := int(elapsed.Seconds() * 3); len(frames) < want {
		t.Errorf("%d redraws in %v, want at least %d (3 a second)", len(frames), elapsed, want)
	}
	var maxTotal float64
	sawDB := false
	for _, f := range frames {
		if r, ok := shownRate(t, f); ok && r > 1.5*maxRate {
			t.Errorf("a rate of %.0f B/s shown, beyond --max-rate %d B/s: %q", r, maxRate, f)
		}
		m := progressTotal.FindStringSubmatch(f)
		if m == nil {
			t.Fatalf("frame without done / total: %q", f)
		}
		maxTotal = max(maxTotal, parseShownBytes(t, m[3], m[4]))
		sawDB = sawDB || strings.HasPrefix(f, "certsrv Test CA.db ")
	}
	if !sawDB {
		t.Error("no frame names the database file")
	}
	if whole := float64(dbSize + logSize); maxTotal < whole*0.99 {
		t.Errorf("the largest total shown is %.0f bytes; the database and the logs are %.0f", maxTotal, whole)
	}
}

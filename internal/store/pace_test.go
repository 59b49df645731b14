package store

import (
	"testing"
	"time"
)

// fakeLog is a log whose fsyncs take lat each, n of them per control
// interval, on a clock that only the test and the pacer's sleeps move.
type fakeLog struct {
	clock  time.Time
	count  int64
	total  time.Duration
	lat    time.Duration
	perWin int64 // fsyncs per paceInterval; 0 = nobody writes
	slept  time.Duration
	last   time.Time
}

func (f *fakeLog) stats() (int64, time.Duration) { return f.count, f.total }

// advance moves the clock and makes the fsyncs that fall in that time.
func (f *fakeLog) advance(d time.Duration) {
	f.clock = f.clock.Add(d)
	for f.perWin > 0 && f.clock.Sub(f.last) >= paceInterval/time.Duration(f.perWin) {
		f.last = f.last.Add(paceInterval / time.Duration(f.perWin))
		f.count++
		f.total += f.lat
	}
}

func newFakePacer(f *fakeLog) *pacer {
	f.clock = time.Unix(1e9, 0)
	f.last = f.clock
	p := newPacer(f.stats)
	p.now = func() time.Time { return f.clock }
	p.sleep = func(d time.Duration) { f.slept += d; f.advance(d) }
	p.winStart, p.virt = f.clock, f.clock
	return p
}

// read hands out bytes in 64 KiB chunks for the given time of the fake
// clock, as a consumer that needs readCost per chunk of its own, and
// returns the bytes read.
func read(p *pacer, f *fakeLog, dur, readCost time.Duration) int64 {
	end := f.clock.Add(dur)
	var n int64
	for f.clock.Before(end) {
		f.advance(readCost)
		p.wait(64 << 10)
		n += 64 << 10
	}
	return n
}

func TestPacerNoWritersRunsUnlimited(t *testing.T) {
	f := &fakeLog{}
	p := newFakePacer(f)
	read(p, f, time.Second, 40*time.Microsecond) // 1.6 GB/s consumer
	f.slept = 0
	n := read(p, f, time.Second, 40*time.Microsecond)
	if f.slept != 0 {
		t.Fatalf("held a reader back %v in a second with no log fsyncs", f.slept)
	}
	if rate, _ := p.report(); rate < 1e9 {
		t.Fatalf("rate %.0f MB/s with nobody writing, want unlimited", rate/1e6)
	}
	if n < 1e9 {
		t.Fatalf("read %d bytes in a second, want the consumer's full speed", n)
	}
}

func TestPacerYieldsToSlowerFsyncs(t *testing.T) {
	f := &fakeLog{lat: 300 * time.Microsecond, perWin: 50}
	p := newFakePacer(f)
	// At base latency the reader is not slowed below what it can take.
	read(p, f, 500*time.Millisecond, 40*time.Microsecond)
	fast, _ := p.report()
	if fast < 1e9 {
		t.Fatalf("rate %.0f MB/s while the log's fsyncs stay at their base, want unlimited", fast/1e6)
	}
	// The copy's writeback doubles the fsync latency: the rate must fall
	// to the floor within a few intervals.
	f.lat = 600 * time.Microsecond
	read(p, f, 500*time.Millisecond, 40*time.Microsecond)
	slow, _ := p.report()
	if slow != paceMinRate {
		t.Fatalf("rate %.0f MB/s after 20 intervals of doubled fsync latency, want the floor %.0f", slow/1e6, paceMinRate/1e6)
	}
	f.slept = 0
	n := read(p, f, time.Second, 40*time.Microsecond)
	if got := float64(n); got > 1.1*paceMinRate || got < 0.9*paceMinRate {
		t.Fatalf("read %d bytes in a second at the floor rate %.0f", n, paceMinRate)
	}
	if f.slept < 900*time.Millisecond {
		t.Fatalf("held back only %v of a second at the floor", f.slept)
	}
	// Extra latency within the target lets the rate grow again.
	f.lat = 310 * time.Microsecond
	read(p, f, time.Second, 40*time.Microsecond)
	if again, _ := p.report(); again < 4*paceMinRate {
		t.Fatalf("rate %.0f MB/s after a second of fsyncs near their base, want it to grow", again/1e6)
	}
}

func TestPacerOff(t *testing.T) {
	f := &fakeLog{lat: 300 * time.Microsecond, perWin: 50}
	p := newFakePacer(f)
	p.setOff(true)
	f.lat = 5 * time.Millisecond
	read(p, f, time.Second, 40*time.Microsecond)
	if f.slept != 0 {
		t.Fatalf("an unpaced reader was held back %v", f.slept)
	}
}

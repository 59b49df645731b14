package store

import (
	"sync"
	"time"
)

// A snapshot is read as background work: a backup may take minutes, a
// certificate request waits for its log fsync. Streaming a gigabyte at full
// speed to a file on the CA's own disk multiplies the log's fsync latency
// (the copy's writeback fills the disk queue) and a writer that commits one
// record at a time loses most of its throughput. The pacer keeps the
// snapshot off the log's way with a delay-based controller in the manner of
// LEDBAT (RFC 6817), a transport for background bulk transfers that yields
// to interactive traffic: it watches the log's mean fsync latency, learns
// the lowest latency it has seen (the base), and adjusts the rate at which
// ReadAt hands out bytes so that the extra latency above the base stays
// under a target. When the log makes no fsync (nobody writes), nothing is
// slowed and the rate grows until it no longer limits anything. A snapshot
// streamed to another disk or host adds no latency and runs at full speed.
const (
	// paceInterval is how often the rate is adjusted: long enough to
	// average a few dozen fsyncs of a busy log.
	paceInterval = 25 * time.Millisecond
	// paceTargetFraction is the extra fsync latency allowed, as a fraction
	// of the base latency: a writer that commits one record at a time,
	// each waiting for its fsync, keeps about 1/(1+0.1) ≈ 91 % of its rate
	// when the fsync is all of its commit.
	paceTargetFraction = 0.1
	// paceMinTarget keeps the target above timer and scheduling noise.
	paceMinTarget = 25 * time.Microsecond
	// paceGain bounds the change per interval: at most ±25 %.
	paceGain = 0.25
	// paceStartRate is the rate a snapshot starts at: unlimited, since
	// the first interval's adjustment starts from what the reader actually
	// took (a start at 128 MB/s held a 1 GiB backup with no writers back
	// for 60 ms). paceMinRate is the floor that keeps a backup moving
	// however busy the log is: a 1 GiB database takes at most about half a
	// minute.
	paceStartRate = paceMaxRate
	paceMinRate   = 32e6
	// paceMaxRate counts as unlimited: faster than a page-cache read.
	paceMaxRate = 8e9
)

// syncStats returns the log's cumulative fsync count and time
// (wal.Log.SyncStats).
type syncStats func() (int64, time.Duration)

// pacer is the controller above; the zero value is not usable.
type pacer struct {
	stats syncStats
	now   func() time.Time
	sleep func(time.Duration)

	mu       sync.Mutex
	off      bool          // pacing disabled (SetPaced(false))
	rate     float64       // bytes/s handed out
	base     time.Duration // lowest mean fsync latency seen; 0 before the first
	virt     time.Time     // when the bytes handed out so far are due at rate
	winStart time.Time     // start of the current control interval
	winCount int64         // fsync count at winStart
	winTotal time.Duration // fsync time at winStart
	winBytes int64         // bytes handed out since winStart
	slept    time.Duration // total time ReadAt callers were held back
}

func newPacer(stats syncStats) *pacer {
	p := &pacer{stats: stats, now: time.Now, sleep: time.Sleep, rate: paceStartRate}
	p.winStart = p.now()
	p.virt = p.winStart
	p.winCount, p.winTotal = stats()
	return p
}

// setOff turns pacing off (or on again).
func (p *pacer) setOff(off bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = off
}

// wait accounts for n bytes just handed out and sleeps while the reader is
// ahead of the current rate. It is safe for concurrent use.
func (p *pacer) wait(n int) {
	p.mu.Lock()
	if p.off || n <= 0 {
		p.mu.Unlock()
		return
	}
	now := p.now()
	if now.Sub(p.winStart) >= paceInterval {
		p.adjust(now)
	}
	p.winBytes += int64(n)
	// No credit for time the consumer spent elsewhere beyond one interval:
	// a slow consumer must not earn a burst.
	if p.virt.Before(now.Add(-paceInterval)) {
		p.virt = now.Add(-paceInterval)
	}
	if p.rate < paceMaxRate {
		p.virt = p.virt.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	} else {
		p.virt = now
	}
	d := p.virt.Sub(now)
	if d > 0 {
		p.slept += d
	}
	p.mu.Unlock()
	if d > 0 {
		p.sleep(d)
	}
}

// adjust ends the control interval at now and sets the rate for the next.
func (p *pacer) adjust(now time.Time) {
	count, total := p.stats()
	dc, dt := count-p.winCount, total-p.winTotal
	// A rate far above what the consumer took is no limit; decisions
	// start from what was actually read (the rule congestion control
	// applies to an application-limited sender).
	if took := float64(p.winBytes) / now.Sub(p.winStart).Seconds(); p.rate > 2*took {
		p.rate = max(paceMinRate, 2*took)
	}
	p.winStart, p.winCount, p.winTotal, p.winBytes = now, count, total, 0
	if dc <= 0 {
		// No commits: nothing to yield to.
		p.rate = min(p.rate*2, paceMaxRate)
		return
	}
	mean := dt / time.Duration(dc)
	if p.base == 0 || mean < p.base {
		p.base = mean
	}
	target := max(time.Duration(float64(p.base)*paceTargetFraction), paceMinTarget)
	offTarget := float64(target-(mean-p.base)) / float64(target)
	offTarget = max(-1, min(1, offTarget))
	p.rate = max(paceMinRate, min(paceMaxRate, p.rate*(1+paceGain*offTarget)))
}

// report returns the rate now and the time readers were held back so far.
func (p *pacer) report() (rate float64, slept time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate, p.slept
}

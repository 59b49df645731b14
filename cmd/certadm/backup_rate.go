package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// minBackupRate is the smallest --max-rate accepted. A chunk of the
// largest size then takes at most four seconds, far inside a session's
// lease, which every chunk the server sends renews.
const minBackupRate = 1 << 20

// rateUnits are the units --max-rate accepts, matched without regard to
// case: decimal (kB, MB, GB, as cp, dd and the summary line count) and
// binary (KiB, MiB, GiB).
var rateUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"ki", 1 << 10}, {"mi", 1 << 20}, {"gi", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9},
	{"k", 1e3}, {"m", 1e6}, {"g", 1e9},
	{"b", 1},
}

// parseRate parses a --max-rate value: a positive number with an optional
// unit and an optional "/s" ("200MB", "1.5GiB/s", "250000000"). It
// returns bytes per second; "" and "0" mean no limit and give 0.
func parseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" || t == "0" {
		return 0, nil
	}
	t = strings.TrimSuffix(strings.ToLower(t), "/s")
	mult := 1.0
	for _, u := range rateUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, usagef("--max-rate %q: want a rate such as 200MB, 1.5GiB/s or 250000000 (bytes per second)", s)
	}
	rate := v * mult
	switch {
	case rate == 0:
		return 0, nil
	case rate < minBackupRate:
		return 0, usagef("--max-rate %q is below the minimum of 1 MiB/s", s)
	case rate > math.MaxInt64/2:
		return 0, usagef("--max-rate %q is too large", s)
	}
	return int64(rate), nil
}

// formatRate renders bytes per second for messages.
func formatRate(rate int64) string {
	return fmt.Sprintf("%.1f MB/s", float64(rate)/1e6)
}

// pacer spreads the bytes of a backup run over time so that, measured from
// the first byte, they never arrive faster than rate bytes per second. One
// pacer serves every file of the run, so the limit holds for the run as a
// whole. A pacer is for one goroutine at a time.
type pacer struct {
	rate  int64 // bytes per second; > 0
	start time.Time
	sent  int64
	sleep func(ctx context.Context, d time.Duration) error
}

// newPacer returns a pacer for rate bytes per second, or nil (no pacing)
// when rate is 0.
func newPacer(rate int64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{rate: rate, sleep: sleepCtx}
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait accounts n more bytes and sleeps until the run is back within its
// rate. It returns ctx's error if ctx ends first.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	p.sent += int64(n)
	due := time.Duration(float64(p.sent) / float64(p.rate) * float64(time.Second))
	if d := due - time.Since(p.start); d > 0 {
		return p.sleep(ctx, d)
	}
	return nil
}

// paced returns src limited to p's rate (src itself when p is nil). The
// result keeps src's WriteTo, so a backup file still hands its chunks
// over without a copy; each chunk is passed on a slice at a time
// (pacedSlice), each slice paid for after it is passed on.
func paced(ctx context.Context, src io.Reader, p *pacer) io.Reader {
	if p == nil {
		return src
	}
	return &meteredReader{src: src, slice: pacedSlice, after: func(n int) error { return p.wait(ctx, n) }}
}

// pacedSlice is the most a paced copy passes on before it waits: a chunk
// of several MiB is handed over in slices, so that the bytes reach the set
// (and the progress line) at the rate rather than in bursts a chunk
// apart. The slices are of the chunk itself, not copies.
const pacedSlice = 64 << 10

// meteredReader passes src on and calls after with the size of every
// piece it passed on; an error from after ends the copy. It keeps src's
// WriteTo (through a meteredWriter), so a backup file's chunks are handed
// over without a copy. The --max-rate pacer and the progress line both
// sit on a backup's stream this way.
type meteredReader struct {
	src   io.Reader
	slice int // the most WriteTo passes on at once; 0: whole writes
	after func(n int) error
}

func (r *meteredReader) Read(b []byte) (int, error) {
	n, err := r.src.Read(b)
	if n > 0 {
		if aerr := r.after(n); aerr != nil && err == nil {
			err = aerr
		}
	}
	return n, err
}

func (r *meteredReader) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(&meteredWriter{w: w, slice: r.slice, after: r.after}, r.src)
}

// meteredWriter passes writes on to w, at most slice bytes at a time (all
// at once when slice is 0), and calls after with what w took each time.
type meteredWriter struct {
	w     io.Writer
	slice int
	after func(n int) error
}

func (w *meteredWriter) Write(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		piece := b[written:]
		if w.slice > 0 && len(piece) > w.slice {
			piece = piece[:w.slice]
		}
		n, err := w.w.Write(piece)
		written += n
		if n > 0 {
			if aerr := w.after(n); aerr != nil && err == nil {
				err = aerr
			}
		}
		if err != nil {
			return written, err
		}
		if n < len(piece) {
			return written, io.ErrShortWrite
		}
	}
	return written, nil
}

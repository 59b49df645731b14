package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// errStopReplay ends a replay at a UntilLSN or UntilTime bound.
var errStopReplay = errors.New("replay bound reached")

// replayer turns log records into apply transactions of up to
// maxApplyBatch records. Reading, verifying and decoding run in the
// caller's goroutine; the SQLite transactions run in a second goroutine, so
// a replay keeps both of two cores busy. Records at or below the database's
// applied LSN are skipped; the first record past UntilLSN or UntilTime ends
// the replay (add returns errStopReplay).
type replayer struct {
	ac        *applyConn
	untilLSN  uint64
	untilTime time.Time
	expect    uint64 // next LSN add accepts
	batch     []item
	res       ReplayResult

	work    chan []item   // full batches for the apply goroutine
	done    chan struct{} // closed when the apply goroutine has stopped
	failed  chan struct{} // closed when an apply failed
	err     error         // the apply error, read after done or failed
	applied uint64        // applied_lsn as committed; read after done
}

func newReplayer(ac *applyConn, applied, untilLSN uint64, untilTime time.Time) *replayer {
	return &replayer{ac: ac, untilLSN: untilLSN, untilTime: untilTime, expect: applied + 1, applied: applied}
}

// next is the LSN the replayer expects next.
func (r *replayer) next() uint64 { return r.expect }

// add takes one record: skipped if already applied, the end of the replay
// if past a bound, otherwise queued.
func (r *replayer) add(rec wal.Record) error {
	if rec.LSN < r.expect {
		r.res.Skipped++
		return nil
	}
	if r.untilLSN != 0 && rec.LSN > r.untilLSN {
		return errStopReplay
	}
	if !r.untilTime.IsZero() && rec.Time.After(r.untilTime) {
		return errStopReplay
	}
	if rec.LSN != r.expect {
		return fmt.Errorf("log record %d where %d was expected: %w", rec.LSN, r.expect, ErrMissingLog)
	}
	o, err := decodeOp(rec.Type, rec.Payload)
	if err != nil {
		return &ApplyError{LSN: rec.LSN, Type: rec.Type, Err: err}
	}
	r.batch = append(r.batch, newItem(rec.LSN, rec.Type, o))
	r.expect++
	if r.res.Records == 0 {
		r.res.FirstLSN = rec.LSN
		r.res.FirstGen = rec.Gen
	}
	r.res.Records++
	r.res.LastLSN = rec.LSN
	r.res.LastGen = rec.Gen
	r.res.LastTime = rec.Time
	if len(r.batch) >= maxApplyBatch {
		return r.send()
	}
	return nil
}

// send hands the current batch to the apply goroutine, starting it on
// first use.
func (r *replayer) send() error {
	if r.work == nil {
		r.work = make(chan []item, 1)
		r.done = make(chan struct{})
		r.failed = make(chan struct{})
		go r.applyLoop()
	}
	select {
	case r.work <- r.batch:
	case <-r.failed:
		return r.err
	}
	r.batch = make([]item, 0, maxApplyBatch)
	return nil
}

// applyLoop applies batches until work is closed or an apply fails.
func (r *replayer) applyLoop() {
	defer close(r.done)
	for b := range r.work {
		if err := r.ac.applyBatch(context.Background(), b); err != nil {
			r.err = err
			close(r.failed)
			for range r.work {
			}
			return
		}
		r.applied = b[len(b)-1].lsn
	}
}

// finish ends the replay: readErr is what reading the logs returned
// (errStopReplay counts as success). The queued records are applied unless
// reading failed. It returns the first error of reading or applying.
func (r *replayer) finish(readErr error) error {
	if readErr == nil || errors.Is(readErr, errStopReplay) {
		if len(r.batch) > 0 {
			if err := r.send(); err != nil {
				readErr = err
			}
		}
		if errors.Is(readErr, errStopReplay) {
			readErr = nil
		}
	}
	if r.work != nil {
		close(r.work)
		<-r.done
		if r.err != nil {
			return r.err
		}
	}
	if r.applied+1 != r.expect && readErr == nil {
		return fmt.Errorf("replay applied through LSN %d of %d", r.applied, r.expect-1)
	}
	return readErr
}

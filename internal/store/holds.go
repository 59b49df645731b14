package store

import "sync"

// logHolds are the log holds of backups in progress: while any exists, no
// generation at or above the lowest held one is deleted, neither by
// circular logging nor by TruncateLogs.
type logHolds struct {
	// mu guards the map and is held by every deletion of generations from
	// deciding what to delete until the deletion is done, so a hold taken
	// while a deletion runs takes effect once that deletion has finished,
	// and every later deletion sees it.
	mu    sync.Mutex
	next  uint64
	holds map[uint64]uint32 // hold id → first held generation
}

// lowestLocked returns the lowest held generation, and false when there is
// no hold. mu is held.
func (h *logHolds) lowestLocked() (uint32, bool) {
	var low uint32
	found := false
	for _, g := range h.holds {
		if !found || g < low {
			low, found = g, true
		}
	}
	return low, found
}

// HoldLogs keeps the log generations numbered fromGen and later from being
// deleted until the returned release function is called: while any hold
// exists, neither circular logging nor TruncateLogs deletes a generation at
// or above the lowest held one (TruncateLogs says so in its Reason). A
// backup calls it for the generations it will list and serve, at the start
// of its session, and releases the hold once it has copied them (before it
// calls TruncateLogs, which would otherwise keep them: a hold makes no
// exception for its owner) or when the session ends. fromGen 0 holds every
// generation.
//
// A deletion already running when HoldLogs is called finishes first;
// generations it deleted are gone (HoldLogs does not bring them back, and
// TruncateLogs never deletes the checkpoint generation or a later one).
// Any number of holds may exist at once. Release is idempotent and safe
// for concurrent use; it does not delete anything itself: the generations
// it frees go at the next checkpoint (with circular logging) or the next
// TruncateLogs. Holds live in memory only: a reopened DB has none.
// HoldLogs waits only for a deletion in progress (file removals and one
// directory fsync); release never waits for I/O beyond the same.
func (d *DB) HoldLogs(fromGen uint32) (release func()) {
	h := &d.holds
	h.mu.Lock()
	if h.holds == nil {
		h.holds = make(map[uint64]uint32)
	}
	h.next++
	id := h.next
	h.holds[id] = fromGen
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.holds, id)
			h.mu.Unlock()
		})
	}
}

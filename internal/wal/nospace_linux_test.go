//go:build linux

package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/certsrv/certsrv/internal/mounttest"
)

// TestFullFileSystemDropsWhatIsNotDurable appends from four goroutines to
// a log on a small tmpfs until the file system is full, with 64 KiB
// generations (the creation of a generation fails) and with generations
// larger than the file system (a write in the middle of one fails).
// Appends then fail with ErrNoSpace and the log stays usable: after space
// is freed, appends and rolls succeed again. Reopened, the log holds
// exactly the acknowledged records, each once, with continuous LSNs.
func TestFullFileSystemDropsWhatIsNotDurable(t *testing.T) {
	for _, seg := range []int64{64 << 10, 8 << 20} {
		t.Run(fmt.Sprintf("segment=%dKiB", seg>>10), func(t *testing.T) { testFullFileSystem(t, seg) })
	}
}

func testFullFileSystem(t *testing.T, seg int64) {
	disk := t.TempDir()
	mounttest.Tmpfs(t, disk, 2<<20, false)
	dir := filepath.Join(disk, "log")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(disk, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	l := createLog(t, dir, seg)

	// payload carries a writer-unique id, so that a record in the log can
	// be told apart from one whose LSN was handed out again.
	payload := func(id uint64) []byte {
		p := make([]byte, 700)
		binary.LittleEndian.PutUint64(p, id)
		for i := 8; i < len(p); i++ {
			p[i] = byte(id + uint64(i))
		}
		return p
	}
	var (
		mu    sync.Mutex
		acked = map[LSN]uint64{}
		ids   uint64
	)
	nextID := func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		ids++
		return ids
	}
	ctx := context.Background()
	appendUntilFull := func() (failures int) {
		var wg sync.WaitGroup
		var fails sync.Map
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20000 {
					id := nextID()
					lsn, err := l.Append(ctx, 1, payload(id))
					if err != nil {
						if !errors.Is(err, ErrNoSpace) {
							t.Errorf("append: %v, want ErrNoSpace", err)
						}
						fails.Store(w, true)
						return
					}
					mu.Lock()
					if prev, dup := acked[lsn]; dup {
						t.Errorf("LSN %d acknowledged twice (ids %d and %d)", lsn, prev, id)
					}
					acked[lsn] = id
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		fails.Range(func(any, any) bool { failures++; return true })
		return failures
	}
	if n := appendUntilFull(); n == 0 {
		t.Fatal("the file system never filled")
	}
	if _, err := l.Roll(); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Roll on a full file system: %v, want ErrNoSpace", err)
	}
	if err := l.usable(); err != nil {
		t.Fatalf("the log failed: %v", err)
	}
	full := len(acked)

	// Space again: appends and rolls work, LSNs continue.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		id := nextID()
		lsn, err := l.Append(ctx, 1, payload(id))
		if err != nil {
			t.Fatalf("append after space was freed: %v", err)
		}
		acked[lsn] = id
	}
	if _, err := l.Roll(); err != nil {
		t.Fatalf("Roll after space was freed: %v", err)
	}
	closeLog(t, l)
	t.Logf("%d records acknowledged before the file system filled, %d in all", full, len(acked))

	l = openLog(t, dir, seg)
	defer closeLog(t, l)
	seen := map[LSN]bool{}
	var want LSN = 1
	err := l.ReadFrom(ctx, 1, func(r Record) error {
		if r.LSN != want {
			return fmt.Errorf("LSN %d after %d", r.LSN, want-1)
		}
		want++
		id, ok := acked[r.LSN]
		if !ok {
			return fmt.Errorf("LSN %d is in the log but was never acknowledged", r.LSN)
		}
		if got := binary.LittleEndian.Uint64(r.Payload); got != id {
			return fmt.Errorf("LSN %d holds record %d, acknowledged as %d", r.LSN, got, id)
		}
		seen[r.LSN] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(acked) {
		t.Fatalf("%d records in the log, %d acknowledged", len(seen), len(acked))
	}
}

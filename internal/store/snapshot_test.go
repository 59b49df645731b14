package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// copySnapshot streams s into a new file under dir and returns its path.
func copySnapshot(t testing.TB, s *Snapshot, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "snap-*.db")
	mustf(t, err, "create copy")
	n, err := io.Copy(f, s.NewReader())
	mustf(t, err, "copy snapshot")
	if n != s.Size() {
		t.Fatalf("copied %d bytes, snapshot size %d", n, s.Size())
	}
	mustf(t, f.Sync(), "sync copy")
	mustf(t, f.Close(), "close copy")
	return f.Name()
}

// sqlite3Check runs the sqlite3 command-line tool's integrity_check on path,
// if the tool is installed, and returns its output.
func sqlite3Check(t testing.TB, path string) (string, bool) {
	t.Helper()
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		return "", false
	}
	out, err := exec.Command(bin, "-readonly", path, "PRAGMA integrity_check;").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v: %s", path, err, out)
	}
	return strings.TrimSpace(string(out)), true
}

type ledgerEntry struct {
	lsn    uint64
	id     int64  // enroll: request ID
	serial string // revoke: serial
}

// TestSnapshotConcurrentWriters takes many snapshots while writers commit
// and checks every copy: integrity, its recorded S, and that its rows are
// exactly those implied by the log records up to S.
func TestSnapshotConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.SegmentSize = 256 << 10
	d := createDB(t, opts)

	var (
		mu       sync.Mutex
		ledger   []ledgerEntry
		maxWait  time.Duration
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		writeErr = make(chan error, 8)
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []string
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if i%5 == 4 && len(mine) > 0 {
					serial := mine[0]
					mine = mine[1:]
					if err := errOnly(d.Revoke(ctx, serial, 1, time.Time{})); err != nil {
						writeErr <- err
						return
					}
					c, err := d.CertificateBySerial(ctx, serial)
					if err != nil {
						writeErr <- err
						return
					}
					mu.Lock()
					ledger = append(ledger, ledgerEntry{lsn: c.RevokedLSN, serial: serial})
					mu.Unlock()
				} else {
					req, c, err := d.Enroll(ctx, testRequest("snap"), testCert("snap"))
					if err != nil {
						writeErr <- err
						return
					}
					mine = append(mine, c.Serial)
					mu.Lock()
					ledger = append(ledger, ledgerEntry{lsn: req.SubmittedLSN, id: req.ID})
					mu.Unlock()
				}
				if el := time.Since(start); el > 0 {
					mu.Lock()
					maxWait = max(maxWait, el)
					mu.Unlock()
				}
			}
		}(w)
	}

	type seen struct {
		lsn     uint64
		ids     []int64
		revoked []string
	}
	var snaps []seen
	tmp := t.TempDir()
	cliChecked := 0
	for i := 0; i < 30; i++ {
		time.Sleep(time.Duration(5+i%4*5) * time.Millisecond)
		s, err := d.Snapshot(ctx)
		mustf(t, err, "snapshot %d", i)
		path := copySnapshot(t, s, tmp)
		mustf(t, s.Close(), "close snapshot")
		if got := integrityCheck(t, path); got != "ok" {
			t.Fatalf("snapshot %d (S=%d): integrity_check %q", i, s.LSN(), got)
		}
		if i%10 == 0 {
			if out, ok := sqlite3Check(t, path); ok {
				cliChecked++
				if out != "ok" {
					t.Fatalf("snapshot %d: sqlite3 integrity_check %q", i, out)
				}
			}
		}
		dump, err := DumpFile(ctx, path)
		mustf(t, err, "dump snapshot %d", i)
		if dump.Meta.AppliedLSN != s.LSN() || dump.Meta.Signatures != s.Signatures() || s.Signatures() != d.Meta().Signatures {
			t.Fatalf("snapshot %d: copy says LSN %d, snapshot %d", i, dump.Meta.AppliedLSN, s.LSN())
		}
		sn := seen{lsn: s.LSN()}
		for _, r := range dump.Requests {
			sn.ids = append(sn.ids, r.ID)
			if r.Certificate != nil && r.Certificate.Revoked {
				sn.revoked = append(sn.revoked, r.Certificate.Serial)
			}
		}
		snaps = append(snaps, sn)
		os.Remove(path)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-writeErr:
		t.Fatalf("writer: %v", err)
	default:
	}
	t.Logf("%d snapshots, %d writes, longest write %v, sqlite3 CLI checks %d", len(snaps), len(ledger), maxWait, cliChecked)
	distinct := map[uint64]bool{}
	for i, sn := range snaps {
		distinct[sn.lsn] = true
		var ids []int64
		var revoked []string
		for _, e := range ledger {
			if e.lsn > sn.lsn {
				continue
			}
			if e.id != 0 {
				ids = append(ids, e.id)
			} else {
				revoked = append(revoked, e.serial)
			}
		}
		slices.Sort(ids)
		slices.Sort(revoked)
		slices.Sort(sn.revoked)
		if !slices.Equal(ids, sn.ids) {
			t.Errorf("snapshot %d (S=%d): %d requests in the copy, %d records up to S", i, sn.lsn, len(sn.ids), len(ids))
		}
		if !slices.Equal(revoked, sn.revoked) {
			t.Errorf("snapshot %d (S=%d): %d revoked in the copy, %d revocations up to S", i, sn.lsn, len(sn.revoked), len(revoked))
		}
	}
	if len(distinct) < 10 {
		t.Errorf("only %d distinct snapshot positions: writers did not run during snapshots", len(distinct))
	}
}

// TestSnapshotIsStable checks that a pinned snapshot's bytes do not change
// while writers continue, and the Close rules.
func TestSnapshotIsStable(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	d := createDB(t, opts)
	workload(t, d, 20)
	s, err := d.Snapshot(ctx)
	mustf(t, err, "snapshot")
	hash := func() [32]byte {
		h := sha256.New()
		_, err := io.Copy(h, s.NewReader())
		mustf(t, err, "read snapshot")
		var out [32]byte
		copy(out[:], h.Sum(nil))
		return out
	}
	before := hash()
	workload(t, d, 100)
	// The engine's background SQLite checkpoint must not touch the pinned
	// file: give it several ticks.
	time.Sleep(3 * sqlCheckpointTick)
	if after := hash(); after != before {
		t.Fatal("snapshot bytes changed while pinned")
	}
	buf := make([]byte, 10)
	if n, err := s.ReadAt(buf, s.Size()-4); n != 4 || err != io.EOF {
		t.Fatalf("read across the end: %d, %v", n, err)
	}
	mustf(t, s.Close(), "close")
	mustf(t, s.Close(), "second close")
	if _, err := s.ReadAt(buf, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	// After the pin is gone the WAL is backfilled again.
	s2, err := d.Snapshot(ctx)
	mustf(t, err, "second snapshot")
	if s2.LSN() != d.LastLSN() {
		t.Fatalf("second snapshot at %d, log at %d", s2.LSN(), d.LastLSN())
	}
	// Close of the database closes an open snapshot.
	mustf(t, d.Close(), "close db")
	if _, err := s2.ReadAt(buf, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("snapshot read after database close: %v", err)
	}
	mustf(t, s2.Close(), "close after db close")
}

// TestSnapshotRestores opens a snapshot copy as a database with the live
// logs: soft recovery replays everything after S.
func TestSnapshotRestores(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	d := createDB(t, opts)
	workload(t, d, 10)
	s, err := d.Snapshot(ctx)
	mustf(t, err, "snapshot")
	copyPath := copySnapshot(t, s, t.TempDir())
	s.Close()
	workload(t, d, 10)
	want := mustDump(t, d)
	mustf(t, d.Close(), "close")
	mustf(t, os.Remove(opts.DBPath), "lose the database")
	copyFile(t, opts.DBPath, copyPath)
	d2 := openDB(t, opts)
	if r := d2.Recovery(); r.FirstLSN != s.LSN()+1 || r.LastLSN != want.Meta.AppliedLSN {
		t.Fatalf("recovery from the snapshot: %+v, S=%d", r, s.LSN())
	}
	if got := mustDump(t, d2); !equalDump(got, want) {
		t.Fatal("restored dump differs")
	}
}

func equalDump(a, b *Dump) bool {
	return a != nil && b != nil && deepEqual(a, b)
}

// TestOneSnapshotAtATime: a second snapshot while one is open is refused
// at once; reads and writes go on; after Close a new one works.
func TestOneSnapshotAtATime(t *testing.T) {
	ctx := context.Background()
	d := createDB(t, testOptions(t))
	_, c, err := d.Enroll(ctx, testRequest("one"), testCert("one"))
	mustf(t, err, "enroll")
	s, err := d.Snapshot(ctx)
	mustf(t, err, "snapshot")
	if s.LSN() != c.IssuedLSN {
		t.Fatalf("snapshot at LSN %d, last write at %d", s.LSN(), c.IssuedLSN)
	}
	_, c2, err := d.Enroll(ctx, testRequest("two"), testCert("two"))
	mustf(t, err, "enroll while pinned")
	if _, err := d.Snapshot(ctx); !errors.Is(err, ErrSnapshotOpen) {
		t.Fatalf("second snapshot: %v", err)
	}
	if _, err := d.CertificateBySerial(ctx, c2.Serial); err != nil {
		t.Fatalf("read while pinned: %v", err)
	}
	mustf(t, s.Close(), "close")
	s2, err := d.Snapshot(ctx)
	mustf(t, err, "snapshot after close")
	defer s2.Close()
	if s2.LSN() != c2.IssuedLSN {
		t.Fatalf("second snapshot at LSN %d, want %d", s2.LSN(), c2.IssuedLSN)
	}
}

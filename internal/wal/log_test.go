package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRoundTripAcrossRolls(t *testing.T) {
	dir := t.TempDir()
	l := createLog(t, dir, 2048)
	appendN(t, l, 1500)
	if l.Current() < 50 {
		t.Fatalf("Current = %d after 1500 records in 2 KiB generations, want >= 50", l.Current())
	}
	if got := readAll(t, l, 0); len(got) != 1500 || got[0] != 1 {
		t.Fatalf("live read: %d records, want 1..1500", len(got))
	}
	closeLog(t, l)
	l = openLog(t, dir, 2048)
	defer closeLog(t, l)
	if l.LastLSN() != 1500 {
		t.Fatalf("LastLSN after reopen = %d, want 1500", l.LastLSN())
	}
	if got := readAll(t, l, 1); len(got) != 1500 || got[1499] != 1500 {
		t.Fatalf("read after reopen: %d records, want 1500", len(got))
	}
	appendN(t, l, 100)
	if got := readAll(t, l, 1); len(got) != 1600 {
		t.Fatalf("read after more appends: %d records, want 1600", len(got))
	}
}

func TestReadFromArbitraryLSN(t *testing.T) {
	dir := t.TempDir()
	l := createLog(t, dir, 3000)
	defer closeLog(t, l)
	appendN(t, l, 400)
	froms := []LSN{1, 2, 17, 199, 200, 201, 399, 400, 401, 1000}
	for _, g := range l.Generations() {
		if g.FirstLSN != 0 {
			froms = append(froms, g.FirstLSN, g.LastLSN, g.LastLSN+1)
		}
	}
	for _, from := range froms {
		got := readAll(t, l, from)
		var want []LSN
		for lsn := from; lsn <= 400; lsn++ {
			want = append(want, lsn)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ReadFrom(%d) returned %d records (first %v), want %d", from, len(got), got[:min(1, len(got))], len(want))
		}
	}
	// from == 0 reads everything.
	if got := readAll(t, l, 0); len(got) != 400 {
		t.Fatalf("ReadFrom(0) returned %d records, want 400", len(got))
	}
}

func TestReadFromGenField(t *testing.T) {
	dir := t.TempDir()
	l := createLog(t, dir, 1<<20)
	defer closeLog(t, l)
	appendN(t, l, 3)
	if _, err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	gens := map[LSN]uint32{}
	if err := l.ReadFrom(context.Background(), 0, func(r Record) error { gens[r.LSN] = r.Gen; return nil }); err != nil {
		t.Fatal(err)
	}
	want := map[LSN]uint32{1: 1, 2: 1, 3: 1, 4: 2, 5: 2}
	for lsn, g := range want {
		if gens[lsn] != g {
			t.Fatalf("record %d has Gen %d, want %d", lsn, gens[lsn], g)
		}
	}
}

func TestGenerationsInfo(t *testing.T) {
	dir := t.TempDir()
	l := createLog(t, dir, 2500)
	defer closeLog(t, l)
	appendN(t, l, 300)
	if _, err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Roll(); err != nil { // an empty sealed generation
		t.Fatal(err)
	}
	appendN(t, l, 5)
	gens := l.Generations()
	if len(gens) < 5 || gens[0].Gen != 1 || gens[len(gens)-1].Gen != l.Current() {
		t.Fatalf("generations %d..%d, current %d", gens[0].Gen, gens[len(gens)-1].Gen, l.Current())
	}
	next := LSN(1)
	for i, g := range gens {
		if g.Gen != uint32(i+1) {
			t.Fatalf("generation %d at index %d", g.Gen, i)
		}
		if g.Path != genPath(dir, g.Gen) {
			t.Fatalf("generation %d path %s", g.Gen, g.Path)
		}
		if size := fileSize(t, g.Path); size != g.Size {
			t.Fatalf("generation %d: Size %d, file has %d bytes", g.Gen, g.Size, size)
		}
		if last := i == len(gens)-1; g.Sealed == last {
			t.Fatalf("generation %d: Sealed = %v", g.Gen, g.Sealed)
		}
		if g.BaseLSN != next {
			t.Fatalf("generation %d: BaseLSN %d, want %d", g.Gen, g.BaseLSN, next)
		}
		if g.FirstLSN != 0 {
			if g.FirstLSN != next || g.LastLSN < g.FirstLSN {
				t.Fatalf("generation %d: LSNs %d..%d, want first %d", g.Gen, g.FirstLSN, g.LastLSN, next)
			}
			next = g.LastLSN + 1
		} else if g.LastLSN != 0 {
			t.Fatalf("generation %d: LSNs %d..%d", g.Gen, g.FirstLSN, g.LastLSN)
		}
		if g.Sealed && g.Size > 2500 && g.LastLSN != g.FirstLSN {
			t.Fatalf("generation %d: %d bytes over the segment size with several records", g.Gen, g.Size)
		}
		if i > 0 {
			h, err := ReadHeader(g.Path)
			if err != nil {
				t.Fatal(err)
			}
			p := gens[i-1]
			if h.PrevChecksum != p.Checksum || !h.PrevCreated.Equal(p.Created) {
				t.Fatalf("generation %d header chain %08x/%v, previous has %08x/%v", g.Gen, h.PrevChecksum, h.PrevCreated, p.Checksum, p.Created)
			}
			if !g.Created.After(p.Created) {
				t.Fatalf("generation %d created %v, not after %v", g.Gen, g.Created, p.Created)
			}
		}
		if g.Signature != l.Signature() {
			t.Fatalf("generation %d signature %x", g.Gen, g.Signature)
		}
	}
	if next != 306 {
		t.Fatalf("LSNs end before %d, want 306", next)
	}
	empty := gens[len(gens)-2]
	if empty.FirstLSN != 0 || empty.Size != HeaderSize || empty.Checksum != 0 {
		t.Fatalf("empty generation: %+v", empty)
	}
}

func TestRollOnDemand(t *testing.T) {
	dir := t.TempDir()
	l := createLog(t, dir, 1<<20)
	appendN(t, l, 10)
	sealed, err := l.Roll()
	if err != nil || sealed != 1 || l.Current() != 2 {
		t.Fatalf("Roll = %d, %v; Current %d; want 1, nil, 2", sealed, err, l.Current())
	}
	if g := l.Generations(); len(g) != 2 || !g[0].Sealed || g[0].LastLSN != 10 || g[1].Sealed || g[1].BaseLSN != 11 {
		t.Fatalf("after Roll: %+v", g)
	}
	sealed, err = l.Roll()
	if err != nil || sealed != 2 || l.Current() != 3 {
		t.Fatalf("Roll of an empty generation = %d, %v; Current %d", sealed, err, l.Current())
	}
	appendN(t, l, 1)
	closeLog(t, l)
	l = openLog(t, dir, 1<<20)
	defer closeLog(t, l)
	if l.Current() != 3 || l.LastLSN() != 11 {
		t.Fatalf("reopen: Current %d LastLSN %d, want 3, 11", l.Current(), l.LastLSN())
	}
}

func TestRollAtSize(t *testing.T) {
	dir := t.TempDir()
	const seg = 1000
	l := createLog(t, dir, seg)
	defer closeLog(t, l)
	// Records of 25+100 bytes: 7 fit after the 64-byte header (939 bytes).
	for i := range 20 {
		if _, err := l.Append(context.Background(), 1, make([]byte, 100)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	gens := l.Generations()
	if len(gens) != 3 || gens[0].Size != 939 || gens[0].LastLSN != 7 || gens[1].LastLSN != 14 || gens[2].LastLSN != 20 {
		t.Fatalf("generations after 20 records: %+v", gens)
	}
	// A record larger than the segment goes alone into a fresh generation.
	big, err := l.Append(context.Background(), 1, make([]byte, 3*seg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), 1, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	gens = l.Generations()
	g := gens[len(gens)-2]
	if g.FirstLSN != big || g.LastLSN != big || g.Size != HeaderSize+RecordHeaderSize+3*seg || !g.Sealed {
		t.Fatalf("big record generation: %+v", g)
	}
	if cur := gens[len(gens)-1]; cur.FirstLSN != big+1 {
		t.Fatalf("record after the big one in generation with first LSN %d", cur.FirstLSN)
	}
}

func TestDeleteThrough(t *testing.T) {
	dir := t.TempDir()
	l := createLog(t, dir, 1<<20)
	for range 5 {
		appendN(t, l, 3)
		if _, err := l.Roll(); err != nil {
			t.Fatal(err)
		}
	}
	// Generations 1..5 sealed with 3 records each, 6 current.
	deleted, err := l.DeleteThrough(3)
	if err != nil || !slices.Equal(deleted, []uint32{1, 2, 3}) {
		t.Fatalf("DeleteThrough(3) = %v, %v", deleted, err)
	}
	for gen := uint32(1); gen <= 3; gen++ {
		if _, err := os.Stat(genPath(dir, gen)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("generation %d still there: %v", gen, err)
		}
	}
	deleted, err = l.DeleteThrough(3)
	if err != nil || len(deleted) != 0 {
		t.Fatalf("second DeleteThrough(3) = %v, %v; want nothing", deleted, err)
	}
	deleted, err = l.DeleteThrough(100)
	if err != nil || !slices.Equal(deleted, []uint32{4, 5}) {
		t.Fatalf("DeleteThrough(100) = %v, %v; want [4 5] and never the current", deleted, err)
	}
	if g := l.Generations(); len(g) != 1 || g[0].Gen != 6 {
		t.Fatalf("Generations after deleting: %+v", g)
	}
	err = l.ReadFrom(context.Background(), 10, func(Record) error { return nil })
	wantCorrupt(t, err, ErrMissingGeneration, "")
	appendN(t, l, 2)
	if got := readAll(t, l, 0); !slices.Equal(got, []LSN{16, 17}) {
		t.Fatalf("ReadFrom(0) after deletion = %v, want [16 17]", got)
	}
	closeLog(t, l)
	l = openLog(t, dir, 1<<20)
	defer closeLog(t, l)
	if got := readAll(t, l, 16); !slices.Equal(got, []LSN{16, 17}) {
		t.Fatalf("after reopen ReadFrom(16) = %v", got)
	}
}

func TestAppendValidation(t *testing.T) {
	l := createLog(t, t.TempDir(), 0)
	if _, err := l.Append(context.Background(), 0, nil); !errors.Is(err, ErrInvalidType) {
		t.Fatalf("type 0: %v", err)
	}
	if _, err := l.Append(context.Background(), 1, make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, 1, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
	if l.LastLSN() != 0 {
		t.Fatalf("LastLSN = %d after refused appends, want 0", l.LastLSN())
	}
	lsn, err := l.Append(context.Background(), 1, nil)
	if err != nil || lsn != 1 {
		t.Fatalf("empty payload: %d, %v", lsn, err)
	}
	closeLog(t, l)
	if _, err := l.Append(context.Background(), 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := l.Roll(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Roll after Close: %v", err)
	}
	if err := l.ReadFrom(context.Background(), 0, func(Record) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadFrom after Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCreateRefusesExistingLog(t *testing.T) {
	dir := makeLog(t, 0, 1, 1)
	if _, err := Create(Options{Dir: dir}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over an existing log: %v", err)
	}
}

func TestCreateSignature(t *testing.T) {
	sig := Signature{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	dir := t.TempDir()
	l, err := Create(Options{Dir: dir, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	if l.Signature() != sig {
		t.Fatalf("Signature = %x", l.Signature())
	}
	closeLog(t, l)
	other := Signature{9}
	_, err = Open(Options{Dir: dir, Signature: other})
	wantCorrupt(t, err, ErrSignature, genPath(dir, 1))
	l, err = Open(Options{Dir: dir, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)
	// A zero signature makes a random one; two logs differ.
	a, b := createLog(t, t.TempDir(), 0), createLog(t, t.TempDir(), 0)
	defer closeLog(t, a)
	defer closeLog(t, b)
	if a.Signature() == (Signature{}) || a.Signature() == b.Signature() {
		t.Fatalf("random signatures %x and %x", a.Signature(), b.Signature())
	}
}

func TestFsyncFailurePoisonsLog(t *testing.T) {
	dir := t.TempDir()
	l := createLog(t, dir, 0)
	appendN(t, l, 5)
	errDisk := errors.New("injected fsync failure")
	l.mu.Lock()
	l.syncFile = func(*os.File) error { return errDisk }
	l.mu.Unlock()
	if _, err := l.Append(context.Background(), 1, []byte("lost")); !errors.Is(err, errDisk) {
		t.Fatalf("Append with failing fsync: %v", err)
	}
	l.mu.Lock()
	l.syncFile = (*os.File).Sync
	l.mu.Unlock()
	if _, err := l.Append(context.Background(), 1, []byte("after")); !errors.Is(err, errDisk) {
		t.Fatalf("Append after a failed fsync: %v, want the same failure (no retry)", err)
	}
	if _, err := l.Roll(); !errors.Is(err, errDisk) {
		t.Fatalf("Roll after a failed fsync: %v", err)
	}
	if l.LastLSN() != 5 {
		t.Fatalf("LastLSN = %d, want 5", l.LastLSN())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The record whose fsync failed was written; reopening finds a valid log
	// with it or without it, and appends continue after it.
	l = openLog(t, dir, 0)
	defer closeLog(t, l)
	if last := l.LastLSN(); last != 5 && last != 6 {
		t.Fatalf("LastLSN after reopen = %d, want 5 or 6", last)
	}
	appendN(t, l, 1)
}

func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	l := createLog(t, dir, 64<<10)
	const writers, each = 32, 40
	var wg sync.WaitGroup
	lsns := make([][]LSN, writers)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := []byte{byte(w), byte(i)}
				lsn, err := l.Append(context.Background(), 3, p)
				if err != nil {
					errs <- err
					return
				}
				lsns[w] = append(lsns[w], lsn)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := slices.Concat(lsns...)
	slices.Sort(all)
	for i, lsn := range all {
		if lsn != LSN(i+1) {
			t.Fatalf("LSNs not unique and contiguous: position %d has %d", i, lsn)
		}
	}
	syncs := l.syncs.Load()
	if syncs >= writers*each {
		t.Fatalf("%d fsyncs for %d concurrent appends: no group commit", syncs, writers*each)
	}
	t.Logf("%d appends, %d fsyncs", writers*each, syncs)
	closeLog(t, l)
	// Every record is readable after reopen, with the payload its writer gave.
	l = openLog(t, dir, 64<<10)
	defer closeLog(t, l)
	owner := map[LSN][]byte{}
	for w := range writers {
		for i, lsn := range lsns[w] {
			owner[lsn] = []byte{byte(w), byte(i)}
		}
	}
	n := 0
	err := l.ReadFrom(context.Background(), 1, func(r Record) error {
		if !bytes.Equal(r.Payload, owner[r.LSN]) {
			t.Errorf("LSN %d payload %v, want %v", r.LSN, r.Payload, owner[r.LSN])
		}
		n++
		return nil
	})
	if err != nil || n != writers*each {
		t.Fatalf("read %d records, %v; want %d", n, err, writers*each)
	}
}

func TestReadDuringAppendRollDelete(t *testing.T) {
	dir := t.TempDir()
	l := createLog(t, dir, 4096)
	defer closeLog(t, l)
	appendN(t, l, 50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	// One appender, so that LSN and payload are known to every reader.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 1500; i++ {
			want := l.LastLSN() + 1
			lsn, err := l.Append(ctx, RecordType(want%250+1), payloadFor(want))
			if err != nil || lsn != want {
				errs <- fmt.Errorf("append: LSN %d, want %d: %v", lsn, want, err)
				return
			}
		}
		cancel()
	}()
	wg.Add(1)
	go func() { // rolls and deletes old generations
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := l.Roll(); err != nil {
				errs <- err
				return
			}
			if cur := l.Current(); cur > 6 {
				if _, err := l.DeleteThrough(cur - 6); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	var reads atomic.Int64
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				gens := l.Generations()
				from := gens[0].BaseLSN + 1
				last := l.LastLSN()
				got, err := collect(func(fn func(Record) error) error { return l.ReadFrom(context.Background(), from, fn) })
				if errors.Is(err, ErrMissingGeneration) {
					continue // the generation holding from was deleted meanwhile
				}
				if err != nil {
					errs <- err
					return
				}
				if len(got) > 0 && got[0] != from || len(got) > 0 && got[len(got)-1] < last {
					errs <- fmt.Errorf("ReadFrom(%d) returned %d..%d, last durable before the call %d", from, got[0], got[len(got)-1], last)
					return
				}
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if reads.Load() == 0 {
		t.Fatal("no read completed")
	}
	t.Logf("%d concurrent reads, %d generations", reads.Load(), l.Current())
}

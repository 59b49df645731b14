package wal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func TestParseFileName(t *testing.T) {
	if got := FileName("ca", 26); got != "ca0000001A.log" {
		t.Fatalf("FileName(ca, 26) = %q", got)
	}
	for _, tc := range []struct {
		base, name string
		gen        uint32
		ok         bool
	}{
		{"ca", "ca0000001A.log", 26, true},
		{"ca", "ca0000001a.log", 26, true},
		{"ca", "caFFFFFFFF.log", 0xFFFFFFFF, true},
		{"edb", "edb000000001.log", 0, false}, // 9 digits
		{"ca", "ca000001A.log", 0, false},     // 7 digits
		{"ca", "ca0000001G.log", 0, false},
		{"ca", "ca+0000001.log", 0, false},
		{"ca", "ca0000001A.log.tmp", 0, false},
		{"ca", "ca0000001A.LOG", 0, false},
		{"ca", "xx0000001A.log", 0, false},
		{"edb", "edb0000000F.log", 15, true},
	} {
		gen, ok := ParseFileName(tc.base, tc.name)
		if gen != tc.gen || ok != tc.ok {
			t.Errorf("ParseFileName(%q, %q) = %d, %v; want %d, %v", tc.base, tc.name, gen, ok, tc.gen, tc.ok)
		}
	}
}

func TestOtherBase(t *testing.T) {
	dir := t.TempDir()
	l, err := Create(Options{Dir: dir, Base: "edb", SegmentSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 40)
	closeLog(t, l)
	if _, err := os.Stat(filepath.Join(dir, "edb00000002.log")); err != nil {
		t.Fatalf("second generation file: %v", err)
	}
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open with the default base: %v, want not exist", err)
	}
	got, err := collect(func(fn func(Record) error) error {
		return ReadDir(context.Background(), dir, "edb", Signature{}, 0, fn)
	})
	if err != nil || len(got) != 40 {
		t.Fatalf("ReadDir edb: %d records, %v", len(got), err)
	}
}

func TestReadDirFrom(t *testing.T) {
	dir := makeLog(t, 2048, 200, 4)
	sig := mustGens(t, dir)[0].Signature
	got, err := collect(func(fn func(Record) error) error { return ReadDir(context.Background(), dir, "", sig, 77, fn) })
	if err != nil || len(got) != 124 || got[0] != 77 {
		t.Fatalf("ReadDir from 77: %d records, %v", len(got), err)
	}
	err = ReadDir(context.Background(), dir, "", Signature{1}, 0, nil)
	wantCorrupt(t, err, ErrSignature, genPath(dir, 1))
	// Without the oldest generations, records below them cannot be read.
	if err := os.Remove(genPath(dir, 1)); err != nil {
		t.Fatal(err)
	}
	err = ReadDir(context.Background(), dir, "", sig, 1, func(Record) error { return nil })
	wantCorrupt(t, err, ErrMissingGeneration, genPath(dir, 2))
	// An error from fn comes back as it is.
	stop := errors.New("stop")
	if err := ReadDir(context.Background(), dir, "", sig, 0, func(Record) error { return stop }); err != stop {
		t.Fatalf("fn error came back as %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ReadDir(ctx, dir, "", sig, 0, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled ReadDir: %v", err)
	}
}

func TestVerifyGenerationChain(t *testing.T) {
	dir := makeLog(t, 2048, 200, 4)
	gens := mustGens(t, dir)
	for _, v := range verifiers {
		t.Run(v.name, func(t *testing.T) {
			var prev *GenInfo
			for _, g := range gens[:len(gens)-1] {
				info, err := v.verify(t, g.Path, prev)
				if err != nil {
					t.Fatalf("generation %d: %v", g.Gen, err)
				}
				if info.LastLSN != g.LastLSN || info.Checksum != g.Checksum || info.Size != g.Size || info.Path != g.Path || !info.Sealed {
					t.Fatalf("generation %d: %+v, ScanDir said %+v", g.Gen, info, g)
				}
				prev = &info
			}
			// Skipping a generation breaks the chain.
			first, err := v.verify(t, gens[0].Path, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.verify(t, gens[2].Path, &first)
			wantCorrupt(t, err, ErrChain, gens[2].Path)
		})
	}
	for _, r := range headerReaders {
		h, err := r.read(t, gens[2].Path)
		if err != nil || h.Gen != 3 || h.FirstLSN != gens[2].BaseLSN || h.PrevChecksum != gens[1].Checksum || h.Version != Version {
			t.Fatalf("%s: %+v, %v", r.name, h, err)
		}
	}
}

func TestCloseWaitsForQueuedAppends(t *testing.T) {
	dir := t.TempDir()
	l := createLog(t, dir, 4096)
	var mu sync.Mutex
	var ok []LSN
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				lsn, err := l.Append(context.Background(), 1, payloadSized(LSN(w*1000+i), 50))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ok = append(ok, lsn)
				mu.Unlock()
			}
		}()
	}
	for l.LastLSN() < 200 {
		if _, err := l.Append(context.Background(), 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	l = openLog(t, dir, 4096)
	defer closeLog(t, l)
	slices.Sort(ok)
	last := l.LastLSN()
	if len(ok) == 0 || ok[len(ok)-1] > last {
		t.Fatalf("acknowledged up to %v, log ends at %d", ok[len(ok)-1:], last)
	}
	n := 0
	if err := l.ReadFrom(context.Background(), 0, func(Record) error { n++; return nil }); err != nil || LSN(n) != last {
		t.Fatalf("read %d records, %v; LastLSN %d", n, err, last)
	}
}

package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// sizeFor is the payload size used for lsn by the tests: it varies from 0 to
// 299 bytes so that records straddle generation boundaries in many ways.
func sizeFor(lsn LSN) int { return int(lsn*37) % 300 }

// payloadFor returns a deterministic payload for lsn, so that a reader can
// check every record without keeping what was written.
func payloadFor(lsn LSN) []byte { return payloadSized(lsn, sizeFor(lsn)) }

func payloadSized(lsn LSN, size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(lsn*31 + uint64(i)*7)
	}
	if size >= 8 {
		binary.LittleEndian.PutUint64(p, lsn)
	}
	return p
}

func createLog(t testing.TB, dir string, seg int64) *Log {
	t.Helper()
	l, err := Create(Options{Dir: dir, SegmentSize: seg})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return l
}

func openLog(t testing.TB, dir string, seg int64) *Log {
	t.Helper()
	l, err := Open(Options{Dir: dir, SegmentSize: seg})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func closeLog(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// appendN appends n records with payloads from payloadFor, one at a time, and
// checks their LSNs are consecutive.
func appendN(t testing.TB, l *Log, n int) {
	t.Helper()
	for range n {
		want := l.LastLSN() + 1
		lsn, err := l.Append(context.Background(), RecordType(want%250+1), payloadFor(want))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if lsn != want {
			t.Fatalf("Append got LSN %d, want %d", lsn, want)
		}
	}
}

// checkRecord is a ReadFrom callback body: the payload and type must be the
// ones appendN wrote for the record's LSN.
func checkRecord(r Record) error {
	if want := payloadFor(r.LSN); string(r.Payload) != string(want) {
		return fmt.Errorf("LSN %d: payload differs", r.LSN)
	}
	if want := RecordType(r.LSN%250 + 1); r.Type != want {
		return fmt.Errorf("LSN %d: type %d, want %d", r.LSN, r.Type, want)
	}
	return nil
}

// readAll reads every record with LSN >= from with ReadFrom, checks payloads
// and LSN continuity, and returns the LSNs seen.
func readAll(t testing.TB, l *Log, from LSN) []LSN {
	t.Helper()
	got, err := collect(func(fn func(Record) error) error { return l.ReadFrom(context.Background(), from, fn) })
	if err != nil {
		t.Fatalf("ReadFrom(%d): %v", from, err)
	}
	return got
}

func collect(read func(func(Record) error) error) ([]LSN, error) {
	var got []LSN
	err := read(func(r Record) error {
		if len(got) > 0 && r.LSN != got[len(got)-1]+1 {
			return fmt.Errorf("LSN %d after %d", r.LSN, got[len(got)-1])
		}
		if err := checkRecord(r); err != nil {
			return err
		}
		got = append(got, r.LSN)
		return nil
	})
	return got, err
}

func genPath(dir string, gen uint32) string { return filepath.Join(dir, FileName(DefaultBase, gen)) }

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// recordOffsets returns the offsets of the whole records in a generation file.
func recordOffsets(t testing.TB, b []byte) []int {
	t.Helper()
	var offs []int
	for off := HeaderSize; off < len(b); {
		_, n, st := decodeRecord(b[off:])
		if st != recOK {
			t.Fatalf("record at %d: status %d", off, st)
		}
		offs = append(offs, off)
		off += n
	}
	return offs
}

// wantCorrupt asserts err is a *CorruptError matching sentinel, for the file
// path, and returns it.
func wantCorrupt(t testing.TB, err error, sentinel error, path string) *CorruptError {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *CorruptError", err)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v does not match ErrCorrupt", err)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %v does not match %v", err, sentinel)
	}
	if path != "" && ce.Path != path {
		t.Fatalf("error names %s, want %s (%v)", ce.Path, path, err)
	}
	return ce
}

// makeLog creates a log in a new directory with records appended, seals it
// into at least minGens generations, closes it and returns the directory.
func makeLog(t testing.TB, seg int64, records int, minGens uint32) string {
	t.Helper()
	dir := t.TempDir()
	l := createLog(t, dir, seg)
	appendN(t, l, records)
	if l.Current() < minGens {
		t.Fatalf("only %d generations, want %d", l.Current(), minGens)
	}
	closeLog(t, l)
	return dir
}

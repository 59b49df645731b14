package wal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// verifiers are the two entry points of sealed-generation verification: the
// file reader and the in-memory one. Tests that verify a generation run
// through both and expect the same answer.
var verifiers = []struct {
	name   string
	verify func(t testing.TB, path string, prev *GenInfo) (GenInfo, error)
}{
	{"VerifyGeneration", func(_ testing.TB, path string, prev *GenInfo) (GenInfo, error) {
		return VerifyGeneration(path, prev)
	}},
	{"VerifyGenerationBytes", func(t testing.TB, path string, prev *GenInfo) (GenInfo, error) {
		return VerifyGenerationBytes(path, mustRead(t, path), prev)
	}},
}

// headerReaders are the two entry points of header decoding. path gives
// the Path a *CorruptError from the reader names: DecodeHeader knows none.
var headerReaders = []struct {
	name string
	read func(t testing.TB, path string) (Header, error)
	path func(string) string
}{
	{"ReadHeader", func(_ testing.TB, path string) (Header, error) { return ReadHeader(path) }, func(p string) string { return p }},
	{"DecodeHeader", func(t testing.TB, path string) (Header, error) { return DecodeHeader(mustRead(t, path)) }, func(string) string { return "" }},
}

// fixCRC recomputes the CRC of the record at off in b.
func fixCRC(b []byte, off int) {
	n := int(binary.LittleEndian.Uint32(b[off:]))
	binary.LittleEndian.PutUint32(b[off+4:], crc32.Checksum(b[off+8:off+8+n], castagnoli))
}

// TestSealedCorruptionBothEntryPoints damages generation 2 of a closed log
// one way at a time and verifies it (or generation 3 after it) through
// VerifyGeneration and VerifyGenerationBytes: both must report the same
// damage, with the same sentinel, generation and offset.
func TestSealedCorruptionBothEntryPoints(t *testing.T) {
	other := corruptionDir(t)
	cases := []struct {
		name string
		// damage returns the new bytes of generation 2, given its bytes,
		// record offsets and the bytes of generation 3.
		damage   func(b []byte, offs []int, next []byte) []byte
		target   int // the generation verified: 2, or 3 with generation 2 as prev
		prevGen  int // generation passed as prev: 0 for none
		sentinel error
		offset   func(b []byte, offs []int) int64
	}{
		{"flipped record byte", func(b []byte, offs []int, _ []byte) []byte { b[offs[1]+20] ^= 1; return b },
			2, 1, ErrCorrupt, func(_ []byte, offs []int) int64 { return int64(offs[1]) }},
		{"partial last record", func(b []byte, offs []int, _ []byte) []byte { return b[:offs[len(offs)-1]+9] },
			2, 1, ErrCorrupt, func(_ []byte, offs []int) int64 { return int64(offs[len(offs)-1]) }},
		{"bad last record", func(b []byte, _ []int, _ []byte) []byte { b[len(b)-1] ^= 0x40; return b },
			2, 1, ErrCorrupt, func(_ []byte, offs []int) int64 { return int64(offs[len(offs)-1]) }},
		{"zeros appended", func(b []byte, _ []int, _ []byte) []byte { return append(b, make([]byte, 100)...) },
			2, 1, ErrCorrupt, func(b []byte, _ []int) int64 { return int64(len(b)) }},
		{"length below minimum", func(b []byte, offs []int, _ []byte) []byte {
			binary.LittleEndian.PutUint32(b[offs[1]:], 3)
			return b
		}, 2, 1, ErrCorrupt, func(_ []byte, offs []int) int64 { return int64(offs[1]) }},
		{"type 0 with a valid CRC", func(b []byte, offs []int, _ []byte) []byte { b[offs[1]+8] = 0; fixCRC(b, offs[1]); return b },
			2, 1, ErrCorrupt, func(_ []byte, offs []int) int64 { return int64(offs[1]) }},
		{"LSN skips with a valid CRC", func(b []byte, offs []int, _ []byte) []byte {
			binary.LittleEndian.PutUint64(b[offs[1]+9:], binary.LittleEndian.Uint64(b[offs[1]+9:])+1)
			fixCRC(b, offs[1])
			return b
		}, 2, 1, ErrCorrupt, func(_ []byte, offs []int) int64 { return int64(offs[1]) }},
		{"header checksum", func(b []byte, _ []int, _ []byte) []byte { b[20] ^= 1; return b },
			2, 1, ErrCorrupt, func([]byte, []int) int64 { return 60 }},
		{"bad magic", func(b []byte, _ []int, _ []byte) []byte { b[0] = 'X'; return b },
			2, 1, ErrCorrupt, func([]byte, []int) int64 { return 0 }},
		{"unknown version", func(b []byte, _ []int, _ []byte) []byte {
			binary.LittleEndian.PutUint32(b[8:], 2)
			binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
			return b
		}, 2, 1, ErrVersion, func([]byte, []int) int64 { return 8 }},
		{"short header", func(b []byte, _ []int, _ []byte) []byte { return b[:30] },
			2, 1, ErrCorrupt, func([]byte, []int) int64 { return 0 }},
		{"empty file", func([]byte, []int, []byte) []byte { return nil },
			2, 1, ErrCorrupt, func([]byte, []int) int64 { return 0 }},
		{"another generation's bytes", func(_ []byte, _ []int, next []byte) []byte { return next },
			2, 1, ErrCorrupt, func([]byte, []int) int64 { return 28 }},
		{"another log set's generation", func([]byte, []int, []byte) []byte { return mustRead(t, genPath(other, 2)) },
			2, 1, ErrSignature, func([]byte, []int) int64 { return 12 }},
		{"last record dropped (chain)", func(b []byte, offs []int, _ []byte) []byte { return b[:offs[len(offs)-1]] },
			3, 2, ErrChain, func([]byte, []int) int64 { return 48 }},
		{"record altered, CRC fixed (chain)", func(b []byte, offs []int, _ []byte) []byte {
			b[len(b)-1] ^= 0xff
			fixCRC(b, offs[len(offs)-1])
			return b
		}, 3, 2, ErrChain, func([]byte, []int) int64 { return 48 }},
		{"generation skipped (chain)", func(b []byte, _ []int, _ []byte) []byte { return b },
			3, 1, ErrChain, func([]byte, []int) int64 { return 28 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := corruptionDir(t)
			orig := mustRead(t, genPath(dir, 2))
			offs := recordOffsets(t, orig)
			if len(offs) < 3 {
				t.Fatalf("generation 2 has %d records", len(offs))
			}
			damaged := tc.damage(append([]byte{}, orig...), offs, mustRead(t, genPath(dir, 3)))
			mustWrite(t, genPath(dir, 2), damaged)
			target := genPath(dir, uint32(tc.target))
			var msgs []string
			for _, v := range verifiers {
				var prev *GenInfo
				if tc.prevGen != 0 {
					// prev is generation prevGen as it now is on disk: for
					// a chain case, the damaged generation 2 verified alone.
					p, err := v.verify(t, genPath(dir, uint32(tc.prevGen)), nil)
					if err != nil {
						t.Fatalf("%s: verify generation %d as prev: %v", v.name, tc.prevGen, err)
					}
					prev = &p
				}
				_, err := v.verify(t, target, prev)
				ce := wantCorrupt(t, err, tc.sentinel, target)
				if want := tc.offset(orig, offs); ce.Offset != want || ce.Gen != uint32(tc.target) {
					t.Fatalf("%s: generation %d offset %d, want %d, %d (%v)", v.name, ce.Gen, ce.Offset, tc.target, want, err)
				}
				msgs = append(msgs, err.Error())
			}
			if msgs[0] != msgs[1] {
				t.Fatalf("the entry points disagree:\n%s\n%s", msgs[0], msgs[1])
			}
		})
	}
}

// TestVerifyGenerationBytesReportsOnTheBytes: the in-memory entry point
// verifies the bytes it is given, whatever the file at path holds.
func TestVerifyGenerationBytesReportsOnTheBytes(t *testing.T) {
	dir := corruptionDir(t)
	gens := mustGens(t, dir)
	g, prev := gens[1], &gens[0]
	orig := mustRead(t, g.Path)
	offs := recordOffsets(t, orig)

	// Damaged bytes, intact file: the bytes are reported, at their offset.
	bad := append([]byte{}, orig...)
	bad[offs[2]+RecordHeaderSize] ^= 0x10
	_, err := VerifyGenerationBytes(g.Path, bad, prev)
	if ce := wantCorrupt(t, err, ErrCorrupt, g.Path); ce.Offset != int64(offs[2]) || ce.Gen != g.Gen {
		t.Fatalf("damaged bytes reported at generation %d offset %d, want %d, %d", ce.Gen, ce.Offset, g.Gen, offs[2])
	}
	if _, err := VerifyGeneration(g.Path, prev); err != nil {
		t.Fatalf("the intact file: %v", err)
	}

	// Intact bytes, damaged file: the bytes verify and describe themselves.
	mustWrite(t, g.Path, bad)
	info, err := VerifyGenerationBytes(g.Path, orig, prev)
	if err != nil {
		t.Fatalf("intact bytes of a damaged file: %v", err)
	}
	if info.Size != g.Size || info.Checksum != g.Checksum || info.LastLSN != g.LastLSN || info.Path != g.Path {
		t.Fatalf("intact bytes: %+v, want %+v", info, g)
	}
	if _, err := VerifyGeneration(g.Path, prev); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("the damaged file verified: %v", err)
	}
	mustWrite(t, g.Path, orig)

	// A prefix at a record boundary is a valid generation by itself; the
	// result describes the prefix, and the next generation's chain refuses it.
	short := orig[:offs[len(offs)-1]]
	info, err = VerifyGenerationBytes(g.Path, short, prev)
	if err != nil || info.Size != int64(len(short)) || info.LastLSN != g.LastLSN-1 {
		t.Fatalf("prefix: %+v, %v", info, err)
	}
	_, err = VerifyGenerationBytes(gens[2].Path, mustRead(t, gens[2].Path), &info)
	wantCorrupt(t, err, ErrChain, gens[2].Path)

	// The bytes are not retained: changing them afterwards changes nothing.
	buf := append([]byte{}, orig...)
	info, err = VerifyGenerationBytes(g.Path, buf, prev)
	clear(buf)
	if err != nil || info.Checksum != g.Checksum {
		t.Fatalf("verify: %+v, %v", info, err)
	}
	if _, err := VerifyGenerationBytes(gens[2].Path, mustRead(t, gens[2].Path), &info); err != nil {
		t.Fatalf("chain from a GenInfo whose bytes were cleared: %v", err)
	}

	// A name that is not a generation file name is refused before anything.
	if _, err := VerifyGenerationBytes(dir+"/notalog.txt", orig, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad name: %v", err)
	}
}

// TestDecodeHeaderMatchesReadHeader decodes damaged headers in memory and
// from the file: same sentinel and offset; DecodeHeader names no file and
// ignores bytes after the header.
func TestDecodeHeaderMatchesReadHeader(t *testing.T) {
	dir := corruptionDir(t)
	p := genPath(dir, 3)
	orig := mustRead(t, p)
	h, err := DecodeHeader(orig)
	if err != nil || h.Gen != 3 {
		t.Fatalf("DecodeHeader of a whole file: %+v, %v", h, err)
	}
	if h2, err := DecodeHeader(orig[:HeaderSize]); err != nil || h2 != h {
		t.Fatalf("DecodeHeader of the header alone: %+v, %v", h2, err)
	}
	for _, tc := range []struct {
		name     string
		edit     func([]byte) []byte
		sentinel error
		offset   int64
	}{
		{"magic", func(b []byte) []byte { b[3] ^= 1; return b }, ErrCorrupt, 0},
		{"version", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[8:], 7)
			return b
		}, ErrVersion, 8},
		{"crc", func(b []byte) []byte { b[33] ^= 1; return b }, ErrCorrupt, 60},
		{"short", func(b []byte) []byte { return b[:HeaderSize-1] }, ErrCorrupt, 0},
		{"generation 0", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[28:], 0)
			binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
			return b
		}, ErrCorrupt, 28},
		{"first LSN 0", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[52:], 0)
			binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
			return b
		}, ErrCorrupt, 52},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustWrite(t, p, tc.edit(append([]byte{}, orig...)))
			for _, r := range headerReaders {
				_, err := r.read(t, p)
				if ce := wantCorrupt(t, err, tc.sentinel, r.path(p)); ce.Offset != tc.offset {
					t.Fatalf("%s: offset %d, want %d (%v)", r.name, ce.Offset, tc.offset, err)
				}
			}
		})
	}
}

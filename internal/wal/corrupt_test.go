package wal

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// corruptionDir makes a closed log of 4 generations (3 sealed with records,
// the newest with records too) and returns its directory.
func corruptionDir(t *testing.T) string {
	t.Helper()
	dir := makeLog(t, 2048, 60, 4)
	if n := len(mustGens(t, dir)); n < 4 {
		t.Fatalf("%d generations", n)
	}
	return dir
}

func mustGens(t *testing.T, dir string) []GenInfo {
	t.Helper()
	gens, err := ScanDir(context.Background(), dir, "", Signature{})
	if err != nil {
		t.Fatalf("ScanDir: %v", err)
	}
	return gens
}

func newestGen(t *testing.T, dir string) GenInfo {
	g := mustGens(t, dir)
	return g[len(g)-1]
}

func TestTornTailPartialRecordCut(t *testing.T) {
	dir := corruptionDir(t)
	g := newestGen(t, dir)
	b := mustRead(t, g.Path)
	offs := recordOffsets(t, b)
	lastOff := offs[len(offs)-1]
	for _, cut := range []int{lastOff + 3, lastOff + 8, lastOff + RecordHeaderSize, len(b) - 1} {
		mustWrite(t, g.Path, b[:cut])
		l := openLog(t, dir, 2048)
		if l.LastLSN() != g.LastLSN-1 {
			t.Fatalf("cut at %d: LastLSN %d, want %d", cut, l.LastLSN(), g.LastLSN-1)
		}
		if size := fileSize(t, g.Path); size != int64(lastOff) {
			t.Fatalf("cut at %d: file is %d bytes after Open, want %d", cut, size, lastOff)
		}
		// The lost LSN is given again, and the log reads whole.
		appendN(t, l, 1)
		if l.LastLSN() != g.LastLSN {
			t.Fatalf("append after cut got LSN %d, want %d", l.LastLSN(), g.LastLSN)
		}
		if got := readAll(t, l, 1); len(got) != int(g.LastLSN) {
			t.Fatalf("read %d records", len(got))
		}
		closeLog(t, l)
		b = mustRead(t, g.Path) // the same length as before, rewritten
	}
}

func TestZeroedTailCut(t *testing.T) {
	dir := corruptionDir(t)
	g := newestGen(t, dir)
	b := mustRead(t, g.Path)
	// Zeros appended (a file extended by a crash before its data landed).
	mustWrite(t, g.Path, append(append([]byte{}, b...), make([]byte, 4096)...))
	l := openLog(t, dir, 2048)
	if l.LastLSN() != g.LastLSN || fileSize(t, g.Path) != int64(len(b)) {
		t.Fatalf("zeros appended: LastLSN %d, size %d; want %d, %d", l.LastLSN(), fileSize(t, g.Path), g.LastLSN, len(b))
	}
	closeLog(t, l)
	// The last two records zeroed in place.
	offs := recordOffsets(t, b)
	z := append([]byte{}, b...)
	clear(z[offs[len(offs)-2]:])
	mustWrite(t, g.Path, z)
	l = openLog(t, dir, 2048)
	defer closeLog(t, l)
	if l.LastLSN() != g.LastLSN-2 || fileSize(t, g.Path) != int64(offs[len(offs)-2]) {
		t.Fatalf("zeroed records: LastLSN %d, size %d; want %d, %d", l.LastLSN(), fileSize(t, g.Path), g.LastLSN-2, offs[len(offs)-2])
	}
}

func TestBadLastRecordCut(t *testing.T) {
	dir := corruptionDir(t)
	g := newestGen(t, dir)
	b := mustRead(t, g.Path)
	offs := recordOffsets(t, b)
	b[len(b)-1] ^= 0x40
	mustWrite(t, g.Path, b)
	l := openLog(t, dir, 2048)
	defer closeLog(t, l)
	if l.LastLSN() != g.LastLSN-1 || fileSize(t, g.Path) != int64(offs[len(offs)-1]) {
		t.Fatalf("LastLSN %d, size %d; want %d, %d", l.LastLSN(), fileSize(t, g.Path), g.LastLSN-1, offs[len(offs)-1])
	}
}

func TestFlippedByteNewestMiddleIsCorrupt(t *testing.T) {
	dir := corruptionDir(t)
	g := newestGen(t, dir)
	b := mustRead(t, g.Path)
	offs := recordOffsets(t, b)
	if len(offs) < 3 {
		t.Fatalf("newest generation has %d records", len(offs))
	}
	b[offs[1]+12] ^= 1 // inside the LSN of the second record
	mustWrite(t, g.Path, b)
	_, err := Open(Options{Dir: dir, SegmentSize: 2048})
	ce := wantCorrupt(t, err, ErrCorrupt, g.Path)
	if ce.Offset != int64(offs[1]) || ce.Gen != g.Gen {
		t.Fatalf("CorruptError gen %d offset %d, want %d, %d", ce.Gen, ce.Offset, g.Gen, offs[1])
	}
	if fileSize(t, g.Path) != int64(len(b)) {
		t.Fatal("Open changed a corrupt file")
	}
}

func TestFlippedByteOlderGenerationIsCorrupt(t *testing.T) {
	dir := corruptionDir(t)
	g := mustGens(t, dir)[1]
	b := mustRead(t, g.Path)
	offs := recordOffsets(t, b)
	mid := offs[len(offs)/2]
	b[mid+RecordHeaderSize-1] ^= 0x80 // inside the time field
	mustWrite(t, g.Path, b)
	_, err := Open(Options{Dir: dir})
	ce := wantCorrupt(t, err, ErrCorrupt, g.Path)
	if ce.Offset != int64(mid) || ce.Gen != 2 {
		t.Fatalf("CorruptError gen %d offset %d, want 2, %d", ce.Gen, ce.Offset, mid)
	}
	err = ReadDir(context.Background(), dir, "", Signature{}, 0, nil)
	wantCorrupt(t, err, ErrCorrupt, g.Path)
	for _, v := range verifiers {
		_, err = v.verify(t, g.Path, nil)
		if ce := wantCorrupt(t, err, ErrCorrupt, g.Path); ce.Offset != int64(mid) {
			t.Fatalf("%s: offset %d, want %d", v.name, ce.Offset, mid)
		}
	}
}

func TestBadLastRecordOlderGenerationIsCorrupt(t *testing.T) {
	dir := corruptionDir(t)
	g := mustGens(t, dir)[0]
	b := mustRead(t, g.Path)
	offs := recordOffsets(t, b)
	b[len(b)-1] ^= 1
	mustWrite(t, g.Path, b)
	_, err := Open(Options{Dir: dir})
	wantCorrupt(t, err, ErrCorrupt, g.Path)
	// Cut mid-record: a partial record in a sealed generation.
	mustWrite(t, g.Path, b[:offs[len(offs)-1]+5])
	_, err = Open(Options{Dir: dir})
	ce := wantCorrupt(t, err, ErrCorrupt, g.Path)
	if ce.Offset != int64(offs[len(offs)-1]) {
		t.Fatalf("offset %d, want %d", ce.Offset, offs[len(offs)-1])
	}
}

func TestChainDetectsAlteredOlderGeneration(t *testing.T) {
	dir := corruptionDir(t)
	gens := mustGens(t, dir)
	g := gens[1]
	orig := mustRead(t, g.Path)
	offs := recordOffsets(t, orig)
	last := offs[len(offs)-1]

	// A byte of the last record changed and its CRC recomputed: every record
	// verifies, only the final checksum in generation 3's header tells.
	b := append([]byte{}, orig...)
	b[len(b)-1] ^= 0xff
	binary.LittleEndian.PutUint32(b[last+4:], crc32.Checksum(b[last+8:], castagnoli))
	mustWrite(t, g.Path, b)
	_, err := Open(Options{Dir: dir})
	ce := wantCorrupt(t, err, ErrChain, gens[2].Path)
	if ce.Gen != 3 || ce.Offset != 48 {
		t.Fatalf("chain error gen %d offset %d, want 3, 48", ce.Gen, ce.Offset)
	}
	for _, v := range verifiers {
		altered, err := v.verify(t, g.Path, &gens[0])
		if err != nil {
			t.Fatalf("%s of the altered generation itself: %v", v.name, err)
		}
		if altered.Checksum != crc32.Checksum(b[HeaderSize:], castagnoli) {
			t.Fatalf("%s: final checksum %08x of the altered bytes", v.name, altered.Checksum)
		}
		_, err = v.verify(t, gens[2].Path, &altered)
		if ce := wantCorrupt(t, err, ErrChain, gens[2].Path); ce.Offset != 48 {
			t.Fatalf("%s: chain error at offset %d, want 48", v.name, ce.Offset)
		}
	}

	// The last record dropped at a record boundary: also only the chain tells.
	mustWrite(t, g.Path, orig[:last])
	_, err = Open(Options{Dir: dir})
	wantCorrupt(t, err, ErrChain, gens[2].Path)
}

func TestMissingGeneration(t *testing.T) {
	dir := corruptionDir(t)
	if err := os.Remove(genPath(dir, 2)); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Open":    func() error { _, err := Open(Options{Dir: dir}); return err }(),
		"ReadDir": ReadDir(context.Background(), dir, "", Signature{}, 0, nil),
	} {
		ce := wantCorrupt(t, err, ErrMissingGeneration, genPath(dir, 2))
		if ce.Gen != 2 {
			t.Fatalf("%s: missing generation named %d, want 2", name, ce.Gen)
		}
	}
}

func TestGenerationFromAnotherLogSet(t *testing.T) {
	dir := corruptionDir(t)
	other := corruptionDir(t)
	data := mustRead(t, genPath(other, 3))
	mustWrite(t, genPath(dir, 3), data)
	_, err := Open(Options{Dir: dir})
	wantCorrupt(t, err, ErrSignature, genPath(dir, 3))
	err = ReadDir(context.Background(), dir, "", Signature{}, 0, nil)
	wantCorrupt(t, err, ErrSignature, genPath(dir, 3))
}

func TestUnknownVersion(t *testing.T) {
	dir := corruptionDir(t)
	p := genPath(dir, 1)
	b := mustRead(t, p)
	binary.LittleEndian.PutUint32(b[8:], 2)
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	mustWrite(t, p, b)
	_, err := Open(Options{Dir: dir})
	ce := wantCorrupt(t, err, ErrVersion, p)
	if ce.Offset != 8 {
		t.Fatalf("offset %d, want 8", ce.Offset)
	}
	for _, r := range headerReaders {
		_, err := r.read(t, p)
		if ce := wantCorrupt(t, err, ErrVersion, r.path(p)); ce.Offset != 8 {
			t.Fatalf("%s: offset %d, want 8", r.name, ce.Offset)
		}
	}
}

func TestRenamedGeneration(t *testing.T) {
	dir := corruptionDir(t)
	// Generations 2 and 3 swap names: no gap, but the headers disagree.
	tmp := filepath.Join(dir, "swap")
	for _, mv := range [][2]string{{genPath(dir, 2), tmp}, {genPath(dir, 3), genPath(dir, 2)}, {tmp, genPath(dir, 3)}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(Options{Dir: dir})
	ce := wantCorrupt(t, err, ErrCorrupt, genPath(dir, 2))
	if ce.Offset != 28 {
		t.Fatalf("offset %d, want 28 (the generation field)", ce.Offset)
	}
}

func TestCopiedGenerationAsNewest(t *testing.T) {
	dir := corruptionDir(t)
	n := newestGen(t, dir).Gen
	mustWrite(t, genPath(dir, n+1), mustRead(t, genPath(dir, 2)))
	_, err := Open(Options{Dir: dir})
	wantCorrupt(t, err, ErrCorrupt, genPath(dir, n+1))
}

func TestTruncatedHeaderOlderIsCorrupt(t *testing.T) {
	dir := corruptionDir(t)
	p := genPath(dir, 2)
	mustWrite(t, p, mustRead(t, p)[:30])
	_, err := Open(Options{Dir: dir})
	wantCorrupt(t, err, ErrCorrupt, p)
	mustWrite(t, p, nil)
	_, err = Open(Options{Dir: dir})
	wantCorrupt(t, err, ErrCorrupt, p)
}

func TestTornCreationNewestRecreated(t *testing.T) {
	for name, content := range map[string][]byte{"empty": nil, "short": make([]byte, 30), "zero": make([]byte, HeaderSize)} {
		t.Run(name, func(t *testing.T) {
			dir := corruptionDir(t)
			n := newestGen(t, dir)
			p := genPath(dir, n.Gen+1)
			if name == "short" {
				h := encodeHeader(Header{Signature: n.Signature, Gen: n.Gen + 1})
				copy(content, h)
			}
			mustWrite(t, p, content)
			// Read-only readers treat it as the end of the log.
			got, err := collect(func(fn func(Record) error) error { return ReadDir(context.Background(), dir, "", Signature{}, 0, fn) })
			if err != nil || len(got) != int(n.LastLSN) {
				t.Fatalf("ReadDir: %d records, %v", len(got), err)
			}
			l := openLog(t, dir, 2048)
			if l.Current() != n.Gen+1 || l.LastLSN() != n.LastLSN {
				t.Fatalf("Current %d LastLSN %d, want %d, %d", l.Current(), l.LastLSN(), n.Gen+1, n.LastLSN)
			}
			if h, err := ReadHeader(p); err != nil || h.Gen != n.Gen+1 || h.FirstLSN != n.LastLSN+1 {
				t.Fatalf("recreated header %+v, %v", h, err)
			}
			appendN(t, l, 3)
			closeLog(t, l)
			l = openLog(t, dir, 2048)
			defer closeLog(t, l)
			if got := readAll(t, l, 1); len(got) != int(n.LastLSN)+3 {
				t.Fatalf("read %d records after recreate", len(got))
			}
		})
	}
}

func TestOnlyGenerationTornIsCorrupt(t *testing.T) {
	dir := t.TempDir()
	p := genPath(dir, 1)
	mustWrite(t, p, nil)
	_, err := Open(Options{Dir: dir})
	wantCorrupt(t, err, ErrCorrupt, p)
}

func TestValidCRCBadContentIsCorrupt(t *testing.T) {
	for name, edit := range map[string]func(rec []byte){
		"type 0":    func(rec []byte) { rec[8] = 0 },
		"LSN skips": func(rec []byte) { binary.LittleEndian.PutUint64(rec[9:], binary.LittleEndian.Uint64(rec[9:])+1) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := corruptionDir(t)
			g := newestGen(t, dir)
			b := mustRead(t, g.Path)
			offs := recordOffsets(t, b)
			last := offs[len(offs)-1]
			rec := b[last:]
			edit(rec)
			binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[8:], castagnoli))
			mustWrite(t, g.Path, b)
			_, err := Open(Options{Dir: dir})
			ce := wantCorrupt(t, err, ErrCorrupt, g.Path)
			if ce.Offset != int64(last) {
				t.Fatalf("offset %d, want %d", ce.Offset, last)
			}
		})
	}
}

// A length field damaged so that the record seems to run past the end of
// the file must not pass for a torn tail: that would silently drop every
// record after it.
func TestLengthRunningPastEndIsCorrupt(t *testing.T) {
	for name, length := range map[string]uint32{"above maximum": MaxPayload + 1000, "plausible": 1 << 20} {
		t.Run(name, func(t *testing.T) {
			dir := corruptionDir(t)
			g := newestGen(t, dir)
			b := mustRead(t, g.Path)
			offs := recordOffsets(t, b)
			binary.LittleEndian.PutUint32(b[offs[1]:], length)
			mustWrite(t, g.Path, b)
			_, err := Open(Options{Dir: dir})
			ce := wantCorrupt(t, err, ErrCorrupt, g.Path)
			if ce.Offset != int64(offs[1]) {
				t.Fatalf("offset %d, want %d", ce.Offset, offs[1])
			}
		})
	}
}

func TestBadLengthFollowedByDataIsCorrupt(t *testing.T) {
	dir := corruptionDir(t)
	g := newestGen(t, dir)
	b := mustRead(t, g.Path)
	offs := recordOffsets(t, b)
	binary.LittleEndian.PutUint32(b[offs[1]:], 3) // below the minimum, more records follow
	mustWrite(t, g.Path, b)
	_, err := Open(Options{Dir: dir})
	ce := wantCorrupt(t, err, ErrCorrupt, g.Path)
	if ce.Offset != int64(offs[1]) {
		t.Fatalf("offset %d, want %d", ce.Offset, offs[1])
	}
}

func TestStrayTempFileRemoved(t *testing.T) {
	dir := corruptionDir(t)
	n := newestGen(t, dir)
	tmp := genPath(dir, n.Gen+1) + ".tmp"
	mustWrite(t, tmp, []byte("half a header"))
	l := openLog(t, dir, 2048)
	defer closeLog(t, l)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("stray %s still there: %v", tmp, err)
	}
	if l.Current() != n.Gen {
		t.Fatalf("Current %d, want %d", l.Current(), n.Gen)
	}
}

func TestReadDirLeavesTornTail(t *testing.T) {
	dir := corruptionDir(t)
	g := newestGen(t, dir)
	b := mustRead(t, g.Path)
	torn := append(append([]byte{}, b...), 0x21, 0, 0, 0, 9) // a partial record header
	mustWrite(t, g.Path, torn)
	got, err := collect(func(fn func(Record) error) error {
		return ReadDir(context.Background(), dir, "", Signature{}, 0, fn)
	})
	if err != nil || len(got) != int(g.LastLSN) {
		t.Fatalf("ReadDir: %d records, %v; want %d", len(got), err, g.LastLSN)
	}
	if fileSize(t, g.Path) != int64(len(torn)) {
		t.Fatal("ReadDir changed the file")
	}
	gens, err := ScanDir(context.Background(), dir, "", Signature{})
	if err != nil || gens[len(gens)-1].Size != int64(len(b)) || gens[len(gens)-1].Sealed {
		t.Fatalf("ScanDir newest %+v, %v", gens[len(gens)-1], err)
	}
	// Verification of a sealed generation treats the torn tail as corruption.
	for _, v := range verifiers {
		_, err = v.verify(t, g.Path, &gens[len(gens)-2])
		if ce := wantCorrupt(t, err, ErrCorrupt, g.Path); ce.Offset != int64(len(b)) {
			t.Fatalf("%s: offset %d, want %d", v.name, ce.Offset, len(b))
		}
	}
}

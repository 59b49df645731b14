package wal

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// dirFiles returns the bytes of every regular file in dir by name.
func dirFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range ents {
		if e.Type().IsRegular() {
			m[e.Name()] = mustRead(t, filepath.Join(dir, e.Name()))
		}
	}
	return m
}

func genRange(from, to uint32) []uint32 {
	var out []uint32
	for g := from; g <= to; g++ {
		out = append(out, g)
	}
	return out
}

// checkContinues opens the cut log, checks that it ends at lsn in
// generation gen, appends enough records to roll several times, reopens
// it and verifies the whole chain, including the cut generation, whose
// final checksum the first roll wrote into the next header.
func checkContinues(t *testing.T, dir string, lsn LSN, gen uint32) {
	t.Helper()
	l := openLog(t, dir, 2048)
	if l.LastLSN() != lsn || l.Current() != gen {
		t.Fatalf("after the cut: LastLSN %d Current %d, want %d, %d", l.LastLSN(), l.Current(), lsn, gen)
	}
	appendN(t, l, 60)
	if l.Current() < gen+2 {
		t.Fatalf("60 appends rolled only to generation %d", l.Current())
	}
	closeLog(t, l)
	l = openLog(t, dir, 2048)
	if got := readAll(t, l, 0); len(got) == 0 || got[len(got)-1] != lsn+60 {
		t.Fatalf("after appending: records up to %v, want %d", got[len(got)-1:], lsn+60)
	}
	closeLog(t, l)
	gens := mustGens(t, dir)
	var prev *GenInfo
	for _, g := range gens[:len(gens)-1] {
		info, err := VerifyGeneration(g.Path, prev)
		if err != nil {
			t.Fatalf("chain after the cut, generation %d: %v", g.Gen, err)
		}
		prev = &info
	}
}

// checkKept checks that the files moved into keep are byte-identical to
// the originals, that nothing else is there, and that they verify as a
// chain continuing the original generation before the first of them.
func checkKept(t *testing.T, keep string, before map[string][]byte, moved []uint32) {
	t.Helper()
	got := dirFiles(t, keep)
	if len(got) != len(moved) {
		t.Fatalf("keep directory holds %d files, %d moved", len(got), len(moved))
	}
	var prev *GenInfo
	if len(moved) > 0 {
		name := FileName(DefaultBase, moved[0]-1)
		p, err := VerifyGenerationBytes(name, before[name], nil)
		if err != nil {
			t.Fatalf("original generation %d: %v", moved[0]-1, err)
		}
		prev = &p
	}
	for _, g := range moved {
		name := FileName(DefaultBase, g)
		if !bytes.Equal(got[name], before[name]) {
			t.Fatalf("kept %s differs from the original", name)
		}
		if len(before[name]) == 0 {
			continue // a torn creation, kept as it was
		}
		info, err := VerifyGeneration(filepath.Join(keep, name), prev)
		if err != nil {
			t.Fatalf("kept generation %d does not verify: %v", g, err)
		}
		prev = &info
	}
}

func TestTruncateAfterMiddleOfGeneration(t *testing.T) {
	ctx := context.Background()
	dir := makeLog(t, 2048, 200, 6)
	gens := mustGens(t, dir)
	newest := gens[len(gens)-1].Gen
	// A torn creation after the newest generation goes with the others.
	mustWrite(t, genPath(dir, newest+1), nil)
	g := gens[3]
	lsn := (g.FirstLSN + g.LastLSN) / 2
	if lsn <= g.FirstLSN || lsn >= g.LastLSN {
		t.Fatalf("generation %d holds LSNs %d..%d: no middle", g.Gen, g.FirstLSN, g.LastLSN)
	}
	before := dirFiles(t, dir)
	offs := recordOffsets(t, before[filepath.Base(g.Path)])
	wantSize := int64(offs[lsn-g.FirstLSN+1])
	keep := filepath.Join(t.TempDir(), "later", "log")

	res, err := TruncateAfter(ctx, dir, "", g.Signature, lsn, keep)
	if err != nil {
		t.Fatalf("TruncateAfter: %v", err)
	}
	want := CutResult{Gen: g.Gen, Size: wantSize, Cut: g.Size - wantSize, Moved: genRange(g.Gen+1, newest+1)}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	after := dirFiles(t, dir)
	for name, b := range before {
		gen, _ := ParseFileName(DefaultBase, name)
		switch {
		case gen < g.Gen && !bytes.Equal(after[name], b):
			t.Fatalf("%s changed", name)
		case gen == g.Gen && !bytes.Equal(after[name], b[:wantSize]):
			t.Fatalf("%s is not its first %d bytes", name, wantSize)
		case gen > g.Gen && after[name] != nil:
			t.Fatalf("%s still in the log directory", name)
		}
	}
	checkKept(t, keep, before, res.Moved)
	if kept, err := ScanDir(ctx, keep, "", g.Signature); err != nil || kept[0].Gen != g.Gen+1 || kept[len(kept)-1].Gen != newest {
		t.Fatalf("ScanDir of the keep directory: %v", err)
	}
	checkContinues(t, dir, lsn, g.Gen)
}

func TestTruncateAfterGenerationEnd(t *testing.T) {
	ctx := context.Background()
	dir := makeLog(t, 2048, 200, 6)
	gens := mustGens(t, dir)
	g := gens[2]
	before := dirFiles(t, dir)
	keep := t.TempDir()
	res, err := TruncateAfter(ctx, dir, "", Signature{}, g.LastLSN, keep)
	if err != nil {
		t.Fatalf("TruncateAfter: %v", err)
	}
	// The generation after the one holding the LSN keeps its header only;
	// the one holding it stays byte for byte.
	next := gens[3]
	want := CutResult{Gen: next.Gen, Size: HeaderSize, Cut: next.Size - HeaderSize, Moved: genRange(next.Gen+1, gens[len(gens)-1].Gen)}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if !bytes.Equal(mustRead(t, g.Path), before[filepath.Base(g.Path)]) {
		t.Fatal("the generation holding the cut LSN changed")
	}
	if !bytes.Equal(mustRead(t, next.Path), before[filepath.Base(next.Path)][:HeaderSize]) {
		t.Fatal("the next generation is not its header")
	}
	checkKept(t, keep, before, res.Moved)
	checkContinues(t, dir, g.LastLSN, next.Gen)
}

func TestTruncateAfterLastLSNIsNoop(t *testing.T) {
	ctx := context.Background()
	dir := makeLog(t, 2048, 200, 4)
	gens := mustGens(t, dir)
	last := gens[len(gens)-1]
	before := dirFiles(t, dir)
	keep := filepath.Join(t.TempDir(), "keep")
	res, err := TruncateAfter(ctx, dir, "", Signature{}, last.LastLSN, keep)
	if err != nil {
		t.Fatalf("TruncateAfter: %v", err)
	}
	if want := (CutResult{Gen: last.Gen, Size: last.Size}); !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if !reflect.DeepEqual(dirFiles(t, dir), before) {
		t.Fatal("a no-op cut changed the log directory")
	}
	if _, err := os.Stat(keep); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a no-op cut made the keep directory: %v", err)
	}

	// With a torn tail after the last record, the cut removes the tail.
	torn := append(append([]byte{}, before[filepath.Base(last.Path)]...), 0x30, 0, 0, 0, 7, 7)
	mustWrite(t, last.Path, torn)
	res, err = TruncateAfter(ctx, dir, "", Signature{}, last.LastLSN, keep)
	if err != nil || res.Cut != 6 || res.Size != last.Size || res.Moved != nil {
		t.Fatalf("cut of a torn tail: %+v, %v", res, err)
	}
	if fileSize(t, last.Path) != last.Size {
		t.Fatalf("file is %d bytes, want %d", fileSize(t, last.Path), last.Size)
	}
	checkContinues(t, dir, last.LastLSN, last.Gen)
}

func TestTruncateAfterOutOfRange(t *testing.T) {
	ctx := context.Background()
	dir := makeLog(t, 2048, 200, 6)
	gens := mustGens(t, dir)
	// Without the two oldest generations, the log can end no earlier than
	// just before the third one's first LSN.
	for _, g := range gens[:2] {
		if err := os.Remove(g.Path); err != nil {
			t.Fatal(err)
		}
	}
	oldest, last := gens[2], gens[len(gens)-1]
	before := dirFiles(t, dir)
	keep := t.TempDir()
	for _, tc := range []struct {
		lsn   LSN
		below bool
	}{{oldest.BaseLSN - 2, true}, {1, true}, {last.LastLSN + 1, false}, {last.LastLSN + 1000, false}} {
		_, err := TruncateAfter(ctx, dir, "", Signature{}, tc.lsn, keep)
		var re *RangeError
		if !errors.As(err, &re) || !errors.Is(err, ErrOutOfRange) || errors.Is(err, ErrMissingGeneration) != tc.below {
			t.Fatalf("LSN %d: %v", tc.lsn, err)
		}
		if re.LSN != tc.lsn || re.Low != oldest.BaseLSN-1 || re.High != last.LastLSN || re.Dir != dir {
			t.Fatalf("LSN %d: %+v", tc.lsn, re)
		}
	}
	for name, kd := range map[string]string{"no keep directory": "", "keep directory is the log": dir, "same, spelled differently": dir + "/."} {
		if _, err := TruncateAfter(ctx, dir, "", Signature{}, oldest.LastLSN, kd); !errors.Is(err, ErrKeepDir) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := TruncateAfter(ctx, dir, "", Signature{9}, oldest.LastLSN, keep); !errors.Is(err, ErrSignature) {
		t.Fatalf("another log set's signature: %v", err)
	}
	if !reflect.DeepEqual(dirFiles(t, dir), before) || len(dirFiles(t, keep)) != 0 {
		t.Fatal("a refused cut changed something")
	}

	// Just before the oldest generation's first LSN is the lowest possible
	// end: the oldest generation keeps only its header.
	res, err := TruncateAfter(ctx, dir, "", Signature{}, oldest.BaseLSN-1, keep)
	if err != nil || res.Gen != oldest.Gen || res.Size != HeaderSize || !reflect.DeepEqual(res.Moved, genRange(oldest.Gen+1, last.Gen)) {
		t.Fatalf("cut before the oldest record: %+v, %v", res, err)
	}
	checkContinues(t, dir, oldest.BaseLSN-1, oldest.Gen)
}

func TestTruncateAfterRefusesDamage(t *testing.T) {
	ctx := context.Background()
	dir := makeLog(t, 2048, 200, 6)
	gens := mustGens(t, dir)
	b := mustRead(t, gens[4].Path)
	b[HeaderSize+30] ^= 1
	mustWrite(t, gens[4].Path, b)
	before := dirFiles(t, dir)
	_, err := TruncateAfter(ctx, dir, "", Signature{}, gens[1].LastLSN, t.TempDir())
	wantCorrupt(t, err, ErrCorrupt, gens[4].Path)
	if !reflect.DeepEqual(dirFiles(t, dir), before) {
		t.Fatal("a cut of a damaged log changed it")
	}
}

// TestTruncateAfterResumes repeats a cut interrupted after some moves, and
// one whose keep directory already holds a copy (a move across file
// systems interrupted after the copy); a different file there is refused.
func TestTruncateAfterResumes(t *testing.T) {
	ctx := context.Background()
	dir := makeLog(t, 2048, 200, 8)
	gens := mustGens(t, dir)
	n := len(gens)
	before := dirFiles(t, dir)
	keep := t.TempDir()
	cut := gens[2]
	lsn := cut.FirstLSN + 1

	// A different file under a name to be moved: refused, nothing changes.
	conflict := filepath.Join(keep, filepath.Base(gens[n-2].Path))
	mustWrite(t, conflict, []byte("something else"))
	if _, err := TruncateAfter(ctx, dir, "", Signature{}, lsn, keep); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("conflicting file in the keep directory: %v", err)
	}
	if !reflect.DeepEqual(dirFiles(t, dir), before) {
		t.Fatal("a refused cut changed the log directory")
	}
	if err := os.Remove(conflict); err != nil {
		t.Fatal(err)
	}

	// The state a crash leaves: the newest generation moved, the one
	// before it copied but not yet removed.
	if err := os.Rename(gens[n-1].Path, filepath.Join(keep, filepath.Base(gens[n-1].Path))); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(keep, filepath.Base(gens[n-2].Path)), before[filepath.Base(gens[n-2].Path)])
	if _, err := ScanDir(ctx, dir, "", Signature{}); err != nil {
		t.Fatalf("the log an interrupted cut leaves does not verify: %v", err)
	}
	res, err := TruncateAfter(ctx, dir, "", Signature{}, lsn, keep)
	if err != nil {
		t.Fatalf("resumed cut: %v", err)
	}
	if !reflect.DeepEqual(res.Moved, genRange(cut.Gen+1, gens[n-2].Gen)) || res.Gen != cut.Gen {
		t.Fatalf("resumed cut: %+v", res)
	}
	checkKept(t, keep, before, genRange(cut.Gen+1, gens[n-1].Gen))
	checkContinues(t, dir, lsn, cut.Gen)
}

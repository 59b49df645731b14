package fsutil

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

func TestWritebackWriterWritesEverything(t *testing.T) {
	data := make([]byte, 5<<20+123)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("head")); err != nil {
		t.Fatal(err)
	}
	w := NewWritebackWriter(f, 256<<10)
	for rest := data; len(rest) > 0; {
		k := min(len(rest), 1+r.IntN(100<<10))
		if n, err := w.Write(rest[:k]); err != nil || n != k {
			t.Fatalf("Write = %d, %v; want %d", n, err, k)
		}
		rest = rest[k:]
	}
	if w.off {
		t.Fatal("the writeback hint failed on a regular file")
	}
	if want := int64(4 + len(data)); w.started < want-256<<10 || w.started > want {
		t.Fatalf("writeback started through %d of %d bytes", w.started, want)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append([]byte("head"), data...)) {
		t.Fatal("file content differs from what was written")
	}
}

// A file that refuses the hint (a pipe) is still written in full.
func TestWritebackWriterWithoutHint(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	data := bytes.Repeat([]byte("certsrv "), 64<<10)
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(pr)
		got <- b
	}()
	w := NewWritebackWriter(pw, 64<<10)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if !bytes.Equal(<-got, data) {
		t.Fatal("pipe content differs from what was written")
	}
	if !w.off {
		t.Fatal("sync_file_range on a pipe did not fail: the fallback path is untested")
	}
}

func TestDirectWriter(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	block := AlignedBuffer(1 << 20)
	if uintptr(unsafe.Pointer(&block[0]))%DirectAlign != 0 || len(block) != 1<<20 {
		t.Fatal("AlignedBuffer returned an unaligned or short buffer")
	}
	var want []byte
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewDirectWriter(f)
	direct := w.Direct()
	if !direct {
		// tmpfs before Linux 6.6: the buffered fallback must still write
		// every byte.
		t.Logf("the file system of %s refuses O_DIRECT; checking the buffered fallback", path)
	}
	for i := 0; i < 5; i++ {
		for j := range block {
			block[j] = byte(r.Uint32())
		}
		if n, err := w.Write(block); err != nil || n != len(block) {
			t.Fatalf("direct Write = %d, %v", n, err)
		}
		want = append(want, block...)
	}
	if w.Direct() != direct {
		t.Fatal("aligned writes left direct I/O")
	}
	tail := []byte("a short, unaligned tail")
	if _, err := w.Write(tail); err != nil {
		t.Fatal(err)
	}
	want = append(want, tail...)
	if w.Direct() {
		t.Fatal("an unaligned write did not switch the file back to buffered I/O")
	}
	if _, err := w.Write(block[:8192]); err != nil { // buffered from now on
		t.Fatal(err)
	}
	want = append(want, block[:8192]...)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file content differs from what was written (%d vs %d bytes)", len(got), len(want))
	}
}

func TestDirectWriterMaxWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewDirectWriter(f)
	if !w.Direct() {
		t.Skipf("the file system of %s refuses O_DIRECT: no direct pieces to count", path)
	}
	buf := AlignedBuffer(4 << 20)
	for i := range buf {
		buf[i] = byte(i / 4096)
	}
	write := func(max, wantPieces int) {
		t.Helper()
		w.SetMaxWrite(max)
		before := w.writes
		if n, err := w.Write(buf); err != nil || n != len(buf) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if got := w.writes - before; got != wantPieces {
			t.Errorf("SetMaxWrite(%d): a 4 MiB buffer took %d direct writes, want %d", max, got, wantPieces)
		}
	}
	write(0, 4)         // DirectMaxWrite, 1 MiB
	write(4<<20, 1)     // the whole buffer
	write(2<<20+100, 2) // rounded down to 2 MiB
	write(100, 4)       // below DirectAlign: the default
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat(buf, 4)
	if !bytes.Equal(got, want) {
		t.Fatalf("file holds %d bytes, not the %d written", len(got), len(want))
	}
}

package backupset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The pipeline hashes two chunks at once when its buffers pair one to one
// across two chunks; its digests must be the chunks' SHA-256 wherever the
// file ends: inside an even chunk or at its end (nothing of the odd chunk
// came), inside an odd chunk at a buffer boundary or inside a buffer, at
// the end of a pair, and after several pairs. The chunk size times
// maxPairedChunk and the single-chunk hasher check the same sums.
func TestPipeWriterPairedChunkDigests(t *testing.T) {
	const mib = 1 << 20
	data := make([]byte, 41*mib+7)
	r := rand.New(rand.NewPCG(1, 2)) // no two chunks alike
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, chunk := range []int64{4 * mib, 8 * mib, 2 * maxPairedChunk} {
		for _, size := range []int{
			8*mib + 1, 12 * mib, 12*mib + 5, 16 * mib, 16*mib + 3, 20 * mib,
			24 * mib, 24*mib + 4096, 32 * mib, 40*mib + 7, 41*mib + 7,
		} {
			file := data[:size]
			limit := int64(size)
			if size%2 == 1 {
				limit += 3 * mib // a file shorter than announced
			}
			p := newPipeWriter(context.Background(), io.Discard, limit, chunk)
			if paired := p.hasher.pair != nil; paired != (chunk <= maxPairedChunk && limit > chunk) {
				t.Errorf("chunk %d, limit %d: paired %v", chunk, limit, paired)
			}
			for off := 0; off < size; {
				k := min(size-off, 1+(off*7919)%(3*mib))
				if _, err := p.Write(file[off : off+k]); err != nil {
					t.Fatal(err)
				}
				off += k
			}
			sums, err := p.finish()
			var want []string
			for off := int64(0); off < int64(size); off += chunk {
				s := sha256.Sum256(file[off:min(off+chunk, int64(size))])
				want = append(want, hex.EncodeToString(s[:]))
			}
			if err != nil || !slices.Equal(sums, want) {
				t.Errorf("chunk %d MiB, file %d bytes: digests %v, want %v (%v)", chunk/mib, size, sums, want, err)
			}
			// Every buffer came back, the held ones included.
			if n := len(p.free); n != cap(p.free) {
				t.Errorf("chunk %d MiB, file %d bytes: %d of %d buffers back", chunk/mib, size, n, cap(p.free))
			}
		}
	}
}

// hashRanges hashes two ranges of a file as a pair; where the file ends
// inside the second range (a file changed after its size was checked),
// each range goes on alone and is read and hashed exactly as far as it
// goes.
func TestHashRangesPair(t *testing.T) {
	const n = 5<<20 + 3 // more than one read buffer, not a whole number of blocks
	data := make([]byte, 2*n-777)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	digest := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	for _, c := range []struct {
		name string
		offs []int64
		n    int64
	}{
		{"two whole ranges", []int64{0, n - 777}, n},
		{"the second range short", []int64{0, n}, n},
		{"the first range short", []int64{n, 0}, n},
		{"one range", []int64{12345}, n},
		{"the whole file", []int64{0}, -1},
	} {
		var counted int64
		read, sums, err := hashRanges(context.Background(), p, c.offs, c.n, func(k int64) { counted += k })
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var total int64
		for k, off := range c.offs {
			end := int64(len(data))
			if c.n >= 0 {
				end = min(end, off+c.n)
			}
			want := data[off:end]
			if read[k] != int64(len(want)) || sums[k] != digest(want) {
				t.Errorf("%s: range %d: read %d, %s; want %d, %s", c.name, k, read[k], sums[k], len(want), digest(want))
			}
			total += read[k]
		}
		if counted != total {
			t.Errorf("%s: hashed counted %d bytes, read %d", c.name, counted, total)
		}
	}
}

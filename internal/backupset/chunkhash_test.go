package backupset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
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
			if paired := p.hasher.paired; paired != (chunk <= maxPairedChunk && limit > chunk) {
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

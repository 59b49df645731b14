package sha256x2

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"
)

// modes runs f with the two-lane block function (where this machine has
// it) and with the fallback of two crypto/sha256 digests.
func modes(t *testing.T, f func(t *testing.T)) {
	saved := useSHANI
	t.Cleanup(func() { useSHANI = saved })
	if saved {
		t.Run("sha-ni", f)
	} else {
		t.Log("no SHA-NI here: only the fallback runs")
	}
	useSHANI = false
	t.Run("fallback", f)
	useSHANI = saved
}

func random(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestPairMatchesSHA256 writes two random messages of every length up to
// a few blocks, and longer ones, in random pieces, and compares the sums
// with crypto/sha256's.
func TestPairMatchesSHA256(t *testing.T) {
	modes(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		lengths := []int{}
		for n := 0; n <= 300; n++ {
			lengths = append(lengths, n)
		}
		lengths = append(lengths, 4096, 65536+17, 1<<20+63)
		for _, n := range lengths {
			a, b := random(r, n), random(r, n)
			p := New()
			for off := 0; off < n; {
				k := min(n-off, r.IntN(200)+1)
				if r.IntN(4) == 0 {
					k = min(n-off, r.IntN(5000))
				}
				p.Write(a[off:off+k], b[off:off+k])
				off += k
			}
			if p.Len() != int64(n) {
				t.Fatalf("Len %d after %d bytes", p.Len(), n)
			}
			sa, sb := p.Sum()
			if sa != sha256.Sum256(a) || sb != sha256.Sum256(b) {
				t.Fatalf("length %d: Sum differs from crypto/sha256", n)
			}
			// Sum leaves the Pair as it was: more bytes continue both.
			p.Write([]byte("tail"), []byte("tail"))
			sa, sb = p.Sum()
			if sa != sha256.Sum256(append(a, "tail"...)) || sb != sha256.Sum256(append(b, "tail"...)) {
				t.Fatalf("length %d: Sum changed the Pair", n)
			}
		}
	})
}

// TestPairSameMessage feeds the same bytes to both lanes: the lanes must
// not mix (a wrong register in one lane shows as two different sums).
func TestPairSameMessage(t *testing.T) {
	modes(t, func(t *testing.T) {
		a := random(rand.New(rand.NewPCG(3, 4)), 1<<16)
		p := New()
		p.Write(a, a)
		sa, sb := p.Sum()
		if want := sha256.Sum256(a); sa != want || sb != want {
			t.Fatalf("sums %x, %x; want %x for both", sa, sb, want)
		}
	})
}

// TestPairSplit continues each lane alone, with different lengths, from
// every offset within a block: the digests handed over carry the state,
// the partial block and the length.
func TestPairSplit(t *testing.T) {
	modes(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for common := 0; common < 3*blockSize; common += 7 {
			a, b := random(r, common+1000), random(r, common+37)
			p := New()
			p.Write(a[:common], b[:common])
			ha, hb := p.Split()
			ha.Write(a[common:])
			hb.Write(b[common:])
			if !bytes.Equal(ha.Sum(nil), sum(a)) || !bytes.Equal(hb.Sum(nil), sum(b)) {
				t.Fatalf("common prefix %d: split digests differ from crypto/sha256", common)
			}
		}
	})
}

// TestPairReset starts over.
func TestPairReset(t *testing.T) {
	modes(t, func(t *testing.T) {
		p := New()
		p.Write([]byte("some bytes first"), []byte("other bytes here"))
		p.Reset()
		p.Write([]byte("abc"), []byte(""+"abc"))
		sa, sb := p.Sum()
		want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
		if fmt.Sprintf("%x", sa) != want || fmt.Sprintf("%x", sb) != want {
			t.Fatalf("after Reset: %x, %x; want %s", sa, sb, want)
		}
	})
}

func TestPairUnequalLengthsPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Write of 3 and 4 bytes did not panic")
		}
	}()
	New().Write([]byte("abc"), []byte("abcd"))
}

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// FuzzPair compares a Pair with crypto/sha256 on arbitrary messages and
// piece sizes.
func FuzzPair(f *testing.F) {
	f.Add([]byte("abc"), []byte("xyz"), uint8(1))
	f.Add(make([]byte, 200), make([]byte, 200), uint8(64))
	f.Fuzz(func(t *testing.T, a, b []byte, piece uint8) {
		n := min(len(a), len(b))
		a, b = a[:n], b[:n]
		step := int(piece) + 1
		p := New()
		for off := 0; off < n; off += step {
			end := min(n, off+step)
			p.Write(a[off:end], b[off:end])
		}
		sa, sb := p.Sum()
		if sa != sha256.Sum256(a) || sb != sha256.Sum256(b) {
			t.Fatalf("%d bytes in pieces of %d: sums differ from crypto/sha256", n, step)
		}
	})
}

// BenchmarkPair compares one Pair over two 16 MiB messages with
// crypto/sha256 over the same two messages one after the other; SetBytes
// counts both messages.
func BenchmarkPair(b *testing.B) {
	const n = 16 << 20
	r := rand.New(rand.NewPCG(7, 8))
	x, y := random(r, n), random(r, n)
	b.Run("crypto-sha256", func(b *testing.B) {
		b.SetBytes(2 * n)
		for b.Loop() {
			sha256.Sum256(x)
			sha256.Sum256(y)
		}
	})
	b.Run("pair", func(b *testing.B) {
		b.SetBytes(2 * n)
		p := New()
		for b.Loop() {
			p.Reset()
			p.Write(x, y)
			p.Sum()
		}
	})
}

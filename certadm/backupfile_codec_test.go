package certadm

import (
	"bytes"
	"testing"
	"unsafe"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

func testCodec(t testing.TB) chunkCodec {
	t.Helper()
	std := encoding.GetCodecV2("proto")
	if std == nil {
		t.Fatal("gRPC's proto codec is not registered")
	}
	return chunkCodec{proto: std}
}

// split cuts b into buffers at the given offsets (clamped, in order),
// keeping empty buffers, as a received message may arrive in frames of any
// size.
func split(b []byte, at ...int) mem.BufferSlice {
	var s mem.BufferSlice
	prev := 0
	for _, a := range at {
		a = min(max(a, prev), len(b))
		s = append(s, mem.SliceBuffer(b[prev:a]))
		prev = a
	}
	return append(s, mem.SliceBuffer(b[prev:]))
}

// splits returns the ways the tests cut a message of n bytes: whole, at
// every single offset, in 1-byte buffers, and in 16 KiB frames.
func splits(n int) [][]int {
	out := [][]int{nil}
	for i := 0; i <= n && i < 40; i++ {
		out = append(out, []int{i})
	}
	var ones, frames []int
	for i := 1; i < n && i < 300; i++ {
		ones = append(ones, i)
	}
	for i := 16 << 10; i < n; i += 16 << 10 {
		frames = append(frames, i)
	}
	return append(out, ones, frames, []int{0, 0, 3, 3, n})
}

type wireField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

func encode(fields ...wireField) []byte {
	var b []byte
	for _, f := range fields {
		b = protowire.AppendTag(b, f.num, f.typ)
		switch f.typ {
		case protowire.VarintType:
			b = protowire.AppendVarint(b, f.v)
		case protowire.Fixed64Type:
			b = protowire.AppendFixed64(b, f.v)
		case protowire.Fixed32Type:
			b = protowire.AppendFixed32(b, uint32(f.v))
		case protowire.BytesType:
			b = protowire.AppendBytes(b, f.b)
		}
	}
	return b
}

// sameAsProto decodes wire with the chunk codec into a message that
// already holds other data and fails unless the outcome is proto.Unmarshal's.
func sameAsProto(t *testing.T, c chunkCodec, wire []byte, at []int) {
	t.Helper()
	var want certsrvv1.FileChunk
	werr := proto.Unmarshal(wire, &want)
	got := &certsrvv1.FileChunk{Offset: 99, Data: bytes.Repeat([]byte{7}, 5000)}
	gerr := c.Unmarshal(split(wire, at...), got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("split %v: chunk codec error %v, proto.Unmarshal error %v", at, gerr, werr)
	}
	if werr == nil && (got.GetOffset() != want.GetOffset() || !bytes.Equal(got.GetData(), want.GetData())) {
		t.Fatalf("split %v: chunk codec gave offset %d and %d bytes, proto.Unmarshal offset %d and %d bytes",
			at, got.GetOffset(), len(got.GetData()), want.GetOffset(), len(want.GetData()))
	}
}

func TestChunkCodecMatchesProto(t *testing.T) {
	c := testCodec(t)
	data := randomBytes(40 << 10)
	off := func(v uint64) wireField { return wireField{num: 1, typ: protowire.VarintType, v: v} }
	dat := func(b []byte) wireField { return wireField{num: 2, typ: protowire.BytesType, b: b} }
	plain := map[string][]byte{
		"as the server writes it": mustMarshal(t, &certsrvv1.FileChunk{Offset: 1 << 33, Data: data}),
		"offset zero, omitted":    mustMarshal(t, &certsrvv1.FileChunk{Data: data[:100]}),
		"empty message":           {},
		"empty data":              encode(off(5), dat(nil)),
		"data before offset":      encode(dat(data[:300]), off(77)),
		"repeated fields":         encode(off(1), dat(data[:10]), off(2), dat(data[10:500])),
		"negative offset":         encode(off(1<<64-5), dat(data[:3])),
		"largest varint":          encode(off(1<<64-1), dat(data[:1])),
	}
	for name, wire := range plain {
		t.Run(name, func(t *testing.T) {
			for _, at := range splits(len(wire)) {
				if !decodeChunk(split(wire, at...), new(certsrvv1.FileChunk)) {
					t.Fatalf("split %v: the plain encoding was not decoded directly", at)
				}
				sameAsProto(t, c, wire, at)
			}
		})
	}
	// Encodings the direct decoder leaves to proto.Unmarshal, malformed
	// ones included: the answer must still be proto.Unmarshal's.
	unusual := map[string][]byte{
		"unknown varint field":       encode(off(3), wireField{num: 9, typ: protowire.VarintType, v: 1}, dat(data[:20])),
		"unknown bytes field":        encode(dat(data[:20]), wireField{num: 15, typ: protowire.BytesType, b: []byte("x")}),
		"unknown fixed32 field":      encode(wireField{num: 4, typ: protowire.Fixed32Type, v: 8}, dat(data[:2])),
		"offset with wrong type":     encode(wireField{num: 1, typ: protowire.Fixed64Type, v: 8}, dat(data[:2])),
		"data with wrong type":       encode(off(4), wireField{num: 2, typ: protowire.VarintType, v: 8}),
		"field number zero":          encode(wireField{num: 0, typ: protowire.VarintType, v: 1}),
		"truncated tag":              {0x80},
		"truncated offset":           {0x08, 0xff, 0xff},
		"data longer than message":   append(protowire.AppendVarint([]byte{0x12}, 50), data[:49]...),
		"varint of eleven bytes":     append([]byte{0x08}, bytes.Repeat([]byte{0xff}, 10)...),
		"varint overflowing 64 bits": append(append([]byte{0x08}, bytes.Repeat([]byte{0xff}, 9)...), 0x02),
		"group start":                {0x0b, 0x0c},
	}
	for name, wire := range unusual {
		t.Run(name, func(t *testing.T) {
			for _, at := range splits(len(wire)) {
				sameAsProto(t, c, wire, at)
			}
		})
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestChunkCodecReusesData: a chunk is decoded into the memory of the one
// before when it fits, without allocating.
func TestChunkCodecReusesData(t *testing.T) {
	c := testCodec(t)
	big := mustMarshal(t, &certsrvv1.FileChunk{Offset: 0, Data: randomBytes(1 << 20)})
	smallData := randomBytes(70_000)
	small := mustMarshal(t, &certsrvv1.FileChunk{Offset: 1 << 20, Data: smallData})
	m := new(certsrvv1.FileChunk)
	if err := c.Unmarshal(split(big, 16<<10, 32<<10), m); err != nil {
		t.Fatal(err)
	}
	first := unsafe.SliceData(m.Data)
	if err := c.Unmarshal(split(small, 5, 16<<10), m); err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(m.Data) != first || m.Offset != 1<<20 || !bytes.Equal(m.Data, smallData) {
		t.Fatalf("second chunk: offset %d, %d bytes, same memory %v", m.Offset, len(m.Data), unsafe.SliceData(m.Data) == first)
	}
	frames := split(small, 16<<10, 32<<10, 48<<10)
	if n := testing.AllocsPerRun(50, func() {
		if err := c.Unmarshal(frames, m); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("decoding into a message with room allocated %v times, want 0", n)
	}
}

// TestChunkCodecOtherMessages: messages other than FileChunk go through the
// standard proto codec both ways.
func TestChunkCodecOtherMessages(t *testing.T) {
	c := testCodec(t)
	req := &certsrvv1.ReadFileRequest{SessionId: "0123abcd", ChunkSize: 1 << 20}
	out, err := c.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	wire := out.Materialize()
	out.Free()
	if !bytes.Equal(wire, mustMarshal(t, req)) {
		t.Fatalf("Marshal = %x, proto.Marshal = %x", wire, mustMarshal(t, req))
	}
	var back certsrvv1.ReadFileRequest
	if err := c.Unmarshal(split(wire, 3), &back); err != nil || !proto.Equal(&back, req) {
		t.Fatalf("Unmarshal = %v, %v", &back, err)
	}
	if c.Name() != "proto" {
		t.Fatalf("Name() = %q: the content-subtype on the wire must stay \"proto\"", c.Name())
	}
}

// FuzzChunkCodec compares the chunk codec with proto.Unmarshal on any
// input cut at any two places. The normal test run replays the seeds.
func FuzzChunkCodec(f *testing.F) {
	f.Add(mustMarshal(f, &certsrvv1.FileChunk{Offset: 12345, Data: []byte("hello, backup")}), 3, 9)
	f.Add(encode(wireField{num: 2, typ: protowire.BytesType, b: []byte("ab")}, wireField{num: 1, typ: protowire.VarintType, v: 1 << 63}), 1, 1)
	f.Add([]byte{0x08, 0x80}, 0, 2)
	f.Add([]byte{0x12, 0x05, 'a'}, 2, 2)
	f.Add(encode(wireField{num: 7, typ: protowire.Fixed64Type, v: 3}), 0, 0)
	f.Fuzz(func(t *testing.T, wire []byte, a, b int) {
		if a < 0 || b < 0 {
			return
		}
		sameAsProto(t, testCodec(t), wire, []int{a, b})
	})
}

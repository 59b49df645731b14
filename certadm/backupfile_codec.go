package certadm

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// chunkCodec is the gRPC codec of ReadFile calls. Its wire format is
// protobuf, exactly what the server's "proto" codec writes and reads (its
// name is "proto", so the content-subtype on the wire does not change),
// but it decodes a FileChunk straight from the received HTTP/2 frames into
// the message's existing Data buffer: one copy of the file's bytes where
// the standard codec makes two (gathering the frames into one buffer, then
// proto.Unmarshal copying the bytes field out of it) and allocates a new
// chunk-sized buffer for each message. Every other message, and a
// FileChunk in any encoding but the two fields the server writes, goes
// through the standard codec, so the result is always what proto.Unmarshal
// gives, except that unknown fields of a FileChunk are dropped instead of
// kept.
type chunkCodec struct {
	proto encoding.CodecV2
}

// readFileCallOptions returns the call options of a ReadFile call: the
// chunk codec when gRPC's standard proto codec is registered (it always is
// when the grpc package is linked), none otherwise. grpc.ForceCodecV2 is
// marked experimental in grpc-go; the codec changes only how this client
// decodes, never what is on the wire.
func readFileCallOptions() []grpc.CallOption {
	std := encoding.GetCodecV2("proto")
	if std == nil {
		return nil
	}
	return []grpc.CallOption{grpc.ForceCodecV2(chunkCodec{proto: std})}
}

// Name returns "proto": the codec speaks the standard wire format.
func (c chunkCodec) Name() string { return "proto" }

// Marshal encodes v with the standard codec.
func (c chunkCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

// Unmarshal decodes data into v. A *certsrvv1.FileChunk reuses the
// capacity of its Data slice: the caller must be done with the previous
// chunk's bytes before it receives the next one into the same message.
func (c chunkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*certsrvv1.FileChunk); ok {
		if decodeChunk(data, m) {
			return nil
		}
		// Anything decodeChunk does not handle, malformed input included,
		// is left to proto.Unmarshal, whose answer (and error) is the
		// reference.
	}
	return c.proto.Unmarshal(data, v)
}

// FileChunk field numbers (proto/certsrv/v1/certsrv.proto).
const (
	chunkFieldOffset protowire.Number = 1
	chunkFieldData   protowire.Number = 2
)

// decodeChunk decodes a FileChunk made only of offset (field 1, varint)
// and data (field 2, length-delimited) fields, in any order and number
// (the last occurrence of each wins, as in proto.Unmarshal), copying the
// data bytes once from data's buffers into m.Data, whose capacity it
// reuses, and reports true. It reports false for any other input (another
// field, a field with another wire type, malformed input), leaving m in an
// unspecified state for the caller to decode again.
func decodeChunk(data mem.BufferSlice, m *certsrvv1.FileChunk) bool {
	c := sliceCursor{bufs: data, left: data.Len()}
	m.Offset = 0
	m.Data = m.Data[:0]
	for c.left > 0 {
		tag, ok := c.varint()
		if !ok {
			return false
		}
		num, typ := protowire.DecodeTag(tag)
		switch {
		case num == chunkFieldOffset && typ == protowire.VarintType:
			v, ok := c.varint()
			if !ok {
				return false
			}
			m.Offset = int64(v)
		case num == chunkFieldData && typ == protowire.BytesType:
			n, ok := c.varint()
			if !ok || n > uint64(c.left) {
				return false
			}
			if uint64(cap(m.Data)) < n {
				m.Data = make([]byte, n)
			}
			m.Data = m.Data[:n]
			c.copyTo(m.Data)
		default:
			return false
		}
	}
	return true
}

// sliceCursor reads a mem.BufferSlice front to back without gathering it.
type sliceCursor struct {
	bufs mem.BufferSlice
	i    int // current buffer
	off  int // offset in the current buffer
	left int // bytes not yet read
}

// byte returns the next byte; the caller has checked that left > 0.
func (c *sliceCursor) byte() byte {
	for {
		b := c.bufs[c.i].ReadOnlyData()
		if c.off < len(b) {
			v := b[c.off]
			c.off++
			c.left--
			return v
		}
		c.i, c.off = c.i+1, 0
	}
}

// varint reads a protobuf varint of at most 10 bytes; ok is false when
// the input ends inside it or it is longer than 10 bytes or overflows 64
// bits (protowire.ConsumeVarint's rules).
func (c *sliceCursor) varint() (v uint64, ok bool) {
	for shift := uint(0); shift < 64; shift += 7 {
		if c.left == 0 {
			return 0, false
		}
		b := c.byte()
		if shift == 63 && b > 1 {
			return 0, false
		}
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, true
		}
	}
	return 0, false
}

// copyTo fills p from the cursor; the caller has checked that len(p) <=
// left.
func (c *sliceCursor) copyTo(p []byte) {
	for len(p) > 0 {
		b := c.bufs[c.i].ReadOnlyData()[c.off:]
		n := copy(p, b)
		p = p[n:]
		c.off += n
		c.left -= n
		if c.off == len(c.bufs[c.i].ReadOnlyData()) {
			c.i, c.off = c.i+1, 0
		}
	}
}

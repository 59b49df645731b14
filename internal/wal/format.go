package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"
)

// Format constants. doc.go describes the layout they define.
const (
	// Version is the generation format version this package writes and reads.
	Version = 1
	// HeaderSize is the size in bytes of a generation header.
	HeaderSize = 64
	// RecordHeaderSize is the size in bytes of a record's fixed part: length,
	// CRC, type, LSN and time.
	RecordHeaderSize = 25
	// MaxPayload is the largest record payload Append accepts and a reader
	// believes.
	MaxPayload = 64 << 20

	// recordFixedBody is the part of a record counted by its length field
	// that is not payload: type (1), LSN (8) and time (8).
	recordFixedBody = 17
	// DefaultSegmentSize is the generation size at which Append rolls to a
	// new generation when Options.SegmentSize is zero.
	DefaultSegmentSize = 4 << 20
	// DefaultBase is the file name base used when Options.Base is empty.
	DefaultBase = "ca"
)

// magic opens every generation file.
var magic = [8]byte{'C', 'S', 'R', 'V', 'L', 'O', 'G', 0}

// castagnoli is the CRC-32C table used for every checksum in the format.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded fixed header of a generation file.
type Header struct {
	Version      uint32
	Signature    Signature
	Gen          uint32
	Created      time.Time // creation time of this generation
	PrevCreated  time.Time // creation time of generation Gen-1; zero for generation 1
	PrevChecksum uint32    // final checksum of generation Gen-1; 0 for generation 1
	FirstLSN     LSN       // LSN the first record of this generation has (or will have)
}

// unixNano is the on-disk form of a time: nanoseconds since the Unix epoch,
// with the zero time written as 0.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano is the inverse of unixNano.
func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// encodeHeader returns the HeaderSize bytes of h, with its CRC. The version
// written is always Version unless h.Version is non-zero (tests write other
// versions to check that readers refuse them).
func encodeHeader(h Header) []byte {
	b := make([]byte, HeaderSize)
	copy(b[0:8], magic[:])
	v := h.Version
	if v == 0 {
		v = Version
	}
	binary.LittleEndian.PutUint32(b[8:12], v)
	copy(b[12:28], h.Signature[:])
	binary.LittleEndian.PutUint32(b[28:32], h.Gen)
	binary.LittleEndian.PutUint64(b[32:40], uint64(unixNano(h.Created)))
	binary.LittleEndian.PutUint64(b[40:48], uint64(unixNano(h.PrevCreated)))
	binary.LittleEndian.PutUint32(b[48:52], h.PrevChecksum)
	binary.LittleEndian.PutUint64(b[52:60], h.FirstLSN)
	binary.LittleEndian.PutUint32(b[60:64], crc32.Checksum(b[0:60], castagnoli))
	return b
}

// headerError is a header decoding failure: the sentinel it maps to, the
// offset of the offending field and a reason.
type headerError struct {
	err    error
	off    int64
	reason string
}

// decodeHeader decodes the first HeaderSize bytes of b. It never panics; any
// input that is not a valid version-1 header yields a *headerError.
func decodeHeader(b []byte) (Header, *headerError) {
	if len(b) < 8 || !bytes.Equal(b[0:8], magic[:]) {
		if len(b) < HeaderSize {
			return Header{}, &headerError{ErrCorrupt, 0, fmt.Sprintf("short header: %d of %d bytes", len(b), HeaderSize)}
		}
		return Header{}, &headerError{ErrCorrupt, 0, "bad magic"}
	}
	if len(b) >= 12 {
		if v := binary.LittleEndian.Uint32(b[8:12]); v != Version {
			return Header{}, &headerError{ErrVersion, 8, fmt.Sprintf("format version %d, want %d", v, Version)}
		}
	}
	if len(b) < HeaderSize {
		return Header{}, &headerError{ErrCorrupt, 0, fmt.Sprintf("short header: %d of %d bytes", len(b), HeaderSize)}
	}
	want := binary.LittleEndian.Uint32(b[60:64])
	if got := crc32.Checksum(b[0:60], castagnoli); got != want {
		return Header{}, &headerError{ErrCorrupt, 60, fmt.Sprintf("header checksum %08x, stored %08x", got, want)}
	}
	var h Header
	h.Version = Version
	copy(h.Signature[:], b[12:28])
	h.Gen = binary.LittleEndian.Uint32(b[28:32])
	h.Created = fromUnixNano(int64(binary.LittleEndian.Uint64(b[32:40])))
	h.PrevCreated = fromUnixNano(int64(binary.LittleEndian.Uint64(b[40:48])))
	h.PrevChecksum = binary.LittleEndian.Uint32(b[48:52])
	h.FirstLSN = binary.LittleEndian.Uint64(b[52:60])
	switch {
	case h.Gen == 0:
		return Header{}, &headerError{ErrCorrupt, 28, "generation number 0"}
	case h.Created.IsZero():
		return Header{}, &headerError{ErrCorrupt, 32, "zero creation time"}
	case h.FirstLSN == 0:
		return Header{}, &headerError{ErrCorrupt, 52, "first LSN 0"}
	case h.Gen == 1 && (!h.PrevCreated.IsZero() || h.PrevChecksum != 0 || h.FirstLSN != 1):
		return Header{}, &headerError{ErrCorrupt, 40, "generation 1 with a predecessor"}
	case h.Gen > 1 && h.PrevCreated.IsZero():
		return Header{}, &headerError{ErrCorrupt, 40, "no predecessor creation time"}
	}
	return h, nil
}

// recordSize is the number of bytes a record with an n-byte payload takes.
func recordSize(n int) int { return RecordHeaderSize + n }

// appendRecord appends the encoding of one record to dst and returns the
// extended slice.
func appendRecord(dst []byte, t RecordType, lsn LSN, ns int64, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(recordFixedBody+len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // CRC, filled below
	dst = append(dst, byte(t))
	dst = binary.LittleEndian.AppendUint64(dst, lsn)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(ns))
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start+4:start+8], crc32.Checksum(dst[start+8:], castagnoli))
	return dst
}

// recStatus classifies the bytes at a record position.
type recStatus int

const (
	recOK        recStatus = iota
	recShort               // fewer bytes than the record needs
	recBadLength           // length field below the minimum or above MaxPayload
	recBadCRC              // stored CRC does not match the content
	recBadType             // CRC matches but the type is 0
)

// rawRecord is a decoded record whose Payload aliases the input.
type rawRecord struct {
	Type    RecordType
	LSN     LSN
	TimeNS  int64
	Payload []byte
	CRC     uint32
}

// decodeRecord decodes the record at the start of b. On recOK, n is the
// record's size in bytes. On recBadCRC and recBadType, n is the size the
// length field claims (the record's bytes are all present). On recShort (a
// valid length field, or none, and fewer bytes than it claims) and
// recBadLength n is 0. It never panics.
func decodeRecord(b []byte) (rec rawRecord, n int, st recStatus) {
	if len(b) < 8 {
		return rawRecord{}, 0, recShort
	}
	length := binary.LittleEndian.Uint32(b[0:4])
	if length < recordFixedBody || length > recordFixedBody+MaxPayload {
		return rawRecord{}, 0, recBadLength
	}
	total := 8 + int(length)
	if len(b) < total {
		return rawRecord{}, 0, recShort
	}
	stored := binary.LittleEndian.Uint32(b[4:8])
	if crc32.Checksum(b[8:total], castagnoli) != stored {
		return rawRecord{}, total, recBadCRC
	}
	rec = rawRecord{
		Type:    RecordType(b[8]),
		LSN:     binary.LittleEndian.Uint64(b[9:17]),
		TimeNS:  int64(binary.LittleEndian.Uint64(b[17:25])),
		Payload: b[25:total:total],
		CRC:     stored,
	}
	if rec.Type == 0 {
		return rawRecord{}, total, recBadType
	}
	return rec, total, recOK
}

// FileName returns the file name of generation gen: base, gen as 8
// upper-case hexadecimal digits, ".log".
func FileName(base string, gen uint32) string {
	return fmt.Sprintf("%s%08X.log", base, gen)
}

// ParseFileName reports the generation number of a file named by FileName
// for base. It accepts upper- or lower-case hexadecimal digits, exactly 8 of
// them, and nothing else.
func ParseFileName(base, name string) (gen uint32, ok bool) {
	rest, found := strings.CutPrefix(name, base)
	if !found {
		return 0, false
	}
	digits, found := strings.CutSuffix(rest, ".log")
	if !found || len(digits) != 8 {
		return 0, false
	}
	for _, c := range digits {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(digits, 16, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

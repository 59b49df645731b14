package wal

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// The seed corpora live in testdata/fuzz/FuzzDecodeRecord and
// testdata/fuzz/FuzzDecodeHeader; the normal test run runs them. Run
// `go test -fuzz FuzzDecodeRecord ./internal/wal/` to search further.

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, 1, 1, 1, nil))
	f.Add(appendRecord(nil, 7, 42, time.Now().UnixNano(), []byte("payload")))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, st := decodeRecord(b)
		switch st {
		case recOK:
			if n < RecordHeaderSize || n > len(b) {
				t.Fatalf("recOK with size %d of %d bytes", n, len(b))
			}
			if rec.Type == 0 {
				t.Fatal("recOK with type 0")
			}
			if re := appendRecord(nil, rec.Type, rec.LSN, rec.TimeNS, rec.Payload); !bytes.Equal(re, b[:n]) {
				t.Fatalf("re-encoding differs:\n%x\n%x", re, b[:n])
			}
		case recBadCRC, recBadType:
			if n < RecordHeaderSize || n > len(b) {
				t.Fatalf("status %d with size %d of %d bytes", st, n, len(b))
			}
		case recShort, recBadLength:
			if n != 0 {
				t.Fatalf("status %d with size %d", st, n)
			}
		default:
			t.Fatalf("unknown status %d", st)
		}
		// The bytes as the record area of a newest generation: the scanner
		// must not panic, and what it accepts must be whole records.
		h := encodeHeader(Header{Signature: Signature{1}, Gen: 1, Created: time.Unix(0, 1), FirstLSN: 1})
		buf := append(h, b...)
		records := 0
		sc, err := scanGeneration(context.Background(), "fuzz", 1, buf, Signature{}, true, 0, func(Record) error {
			records++
			return nil
		})
		if err == nil {
			if sc.info.Size+sc.torn != int64(len(buf)) || sc.info.Size < HeaderSize {
				t.Fatalf("size %d + torn %d != %d", sc.info.Size, sc.torn, len(buf))
			}
			if records > 0 && (sc.info.FirstLSN != 1 || sc.info.LastLSN != LSN(records)) {
				t.Fatalf("%d records, LSNs %d..%d", records, sc.info.FirstLSN, sc.info.LastLSN)
			}
		}
	})
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add(encodeHeader(Header{Signature: Signature{1, 2}, Gen: 1, Created: time.Unix(0, 1), FirstLSN: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, herr := decodeHeader(b)
		if herr != nil {
			if herr.err == nil || herr.off < 0 || herr.off >= HeaderSize {
				t.Fatalf("header error %+v", herr)
			}
			return
		}
		if len(b) < HeaderSize {
			t.Fatalf("accepted a %d-byte header", len(b))
		}
		if re := encodeHeader(h); !bytes.Equal(re, b[:HeaderSize]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, b[:HeaderSize])
		}
	})
}

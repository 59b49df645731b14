package wal

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The expected bytes below were computed from doc.go with an independent
// CRC-32C implementation, not with this package.

func TestRecordLayout(t *testing.T) {
	got := appendRecord(nil, 5, 42, 1700000000123456789, []byte("abc"))
	want := "14000000" + "6dba1d34" + "05" + "2a00000000000000" + "15cd853dfe9c9717" + "616263"
	if hex.EncodeToString(got) != want {
		t.Fatalf("record bytes\n got %x\nwant %s", got, want)
	}
}

func TestHeaderLayout(t *testing.T) {
	var sig Signature
	for i := range sig {
		sig[i] = byte(i + 1)
	}
	got := encodeHeader(Header{Signature: sig, Gen: 2, Created: time.Unix(0, 1700000000000000002),
		PrevCreated: time.Unix(0, 1700000000000000001), PrevChecksum: 0xdeadbeef, FirstLSN: 42})
	want := "435352564c4f4700" + "01000000" + "0102030405060708090a0b0c0d0e0f10" + "02000000" +
		"02002a36fe9c9717" + "01002a36fe9c9717" + "efbeadde" + "2a00000000000000" + "b01c7182"
	if hex.EncodeToString(got) != want {
		t.Fatalf("header bytes\n got %x\nwant %s", got, want)
	}
}

// TestGoldenV1 reads a log written in format version 1 and committed under
// testdata/golden/v1; a change that stops this test passing changes the
// on-disk format.
func TestGoldenV1(t *testing.T) {
	src := filepath.Join("testdata", "golden", "v1")
	type rec struct {
		typ     RecordType
		ns      int64
		payload string
		gen     uint32
	}
	c1, c2 := int64(1772366400000000000), int64(1772366460000000000)
	want := map[LSN]rec{
		1: {1, c1 + 1000, "submit request 1", 1},
		2: {2, c1 + 2000, "issue request 1", 1},
		3: {3, c1 + 3000, "", 1},
		4: {4, c2 + 1000, "revoke 0A1B", 2},
		5: {200, c2 + 2000, string(make([]byte, 300)), 2},
	}
	check := func(r Record) error {
		w, ok := want[r.LSN]
		if !ok || r.Type != w.typ || r.Time.UnixNano() != w.ns || string(r.Payload) != w.payload || r.Gen != w.gen {
			t.Errorf("record %d: type %d time %d gen %d payload %q", r.LSN, r.Type, r.Time.UnixNano(), r.Gen, r.Payload)
		}
		delete(want, r.LSN)
		return nil
	}
	if err := ReadDir(context.Background(), src, "ca", Signature{}, 0, check); err != nil {
		t.Fatal(err)
	}
	if len(want) != 0 {
		t.Fatalf("records not read: %v", want)
	}
	// Open (on a copy: it may write) continues the log.
	dir := t.TempDir()
	for _, name := range []string{"ca00000001.log", "ca00000002.log"} {
		mustWrite(t, filepath.Join(dir, name), mustRead(t, filepath.Join(src, name)))
	}
	l := openLog(t, dir, 0)
	defer closeLog(t, l)
	if l.LastLSN() != 5 || l.Current() != 2 || l.Signature()[0] != 0xc5 {
		t.Fatalf("LastLSN %d Current %d Signature %x", l.LastLSN(), l.Current(), l.Signature())
	}
	if lsn, err := l.Append(context.Background(), 9, []byte("next")); err != nil || lsn != 6 {
		t.Fatalf("Append: %d, %v", lsn, err)
	}
	if _, err := os.Stat(filepath.Join(src, "ca00000003.log")); !os.IsNotExist(err) {
		t.Fatal("test wrote into testdata")
	}
}

package restore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// goldenRecord is testdata/record/recovering/restore.json decoded.
func goldenRecord() *Record {
	return &Record{
		Format:         RecordFormat,
		State:          StateRecovering,
		CAName:         "Example CA",
		CheckpointDir:  "/srv/certsrv-data/sys",
		LogDir:         "/srv/certsrv-data/log",
		LogBase:        "ca",
		RestoreMap:     []MapEntry{{Old: "/var/lib/certsrv/db/Example CA.db", New: "/srv/certsrv-data/db/Example CA.db"}},
		BackupLogDir:   "/srv/certsrv-data/restore/logs",
		LowGen:         3,
		HighGen:        9,
		SnapshotLSN:    1200,
		Until:          Until{Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)},
		CatchUp:        true,
		NewCredentials: true,
		OwnsBackupLogs: true,
		Registered:     time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC),
		Completed:      time.Date(2026, 5, 2, 8, 1, 0, 0, time.UTC),
		Recovery: &Progress{
			Started:      time.Date(2026, 5, 2, 8, 2, 0, 0, time.UTC),
			Attempts:     1,
			DBSignature:  "000102030405060708090a0b0c0d0e0f",
			LogSignature: "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
			SetAside:     "set-aside-20260502T080200.000000000Z",
		},
	}
}

// TestRecordGolden checks the file format against a golden file: decoding
// gives the documented values and encoding them again gives the same bytes.
func TestRecordGolden(t *testing.T) {
	p := filepath.Join("testdata", "record", "recovering", "restore.json")
	want := goldenRecord()
	if os.Getenv("CERTSRV_UPDATE_GOLDEN") != "" {
		b, err := encodeRecord(want)
		must(t, err, "encode")
		must(t, os.MkdirAll(filepath.Dir(p), 0o755), "mkdir")
		must(t, os.WriteFile(p, b, 0o644), "write golden")
	}
	b, err := os.ReadFile(p)
	must(t, err, "read golden (CERTSRV_UPDATE_GOLDEN=1 rewrites it)")
	got, err := decodeRecord(b)
	must(t, err, "decode golden")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("golden record decodes to\n%+v\nwant\n%+v", got, want)
	}
	again, err := encodeRecord(got)
	must(t, err, "encode")
	if !bytes.Equal(again, b) {
		t.Fatalf("re-encoding the golden record changes it:\n%s", again)
	}
	// The checksum is the SHA-256 of everything before the checksum member.
	i := bytes.LastIndex(b, []byte(checksumMember))
	sum := sha256.Sum256(b[:i])
	if !bytes.Contains(b[i:], []byte(hex.EncodeToString(sum[:]))) {
		t.Fatal("the checksum is not the SHA-256 of the bytes before its member")
	}
}

// TestRecordDamage damages an encoded record one way at a time.
func TestRecordDamage(t *testing.T) {
	good, err := encodeRecord(goldenRecord())
	must(t, err, "encode")
	resign := func(b []byte) []byte {
		i := bytes.LastIndex(b, []byte(checksumMember))
		sum := sha256.Sum256(b[:i])
		out := append([]byte{}, b[:i]...)
		out = append(out, checksumMember...)
		out = append(out, hex.EncodeToString(sum[:])...)
		return append(out, "\"\n}\n"...)
	}
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"value changed", bytes.Replace(good, []byte(`"high_generation": 9`), []byte(`"high_generation": 8`), 1), ErrRecordCorrupt},
		{"checksum changed", bytes.Replace(good, []byte(`"checksum": "`), []byte(`"checksum": "0`), 1)[:len(good)], ErrRecordCorrupt},
		{"truncated", good[:len(good)/2], ErrRecordCorrupt},
		{"empty", nil, ErrRecordCorrupt},
		{"not JSON", []byte("restore pending\n"), ErrRecordCorrupt},
		{"newer format", resign(bytes.Replace(good, []byte(`"format": 1`), []byte(`"format": 2`), 1)), ErrRecordVersion},
		{"unknown member", resign(bytes.Replace(good, []byte(`"state":`), []byte(`"surprise": true,
  "state":`), 1)), ErrRecordCorrupt},
		{"contradiction", resign(bytes.Replace(good, []byte(`"low_generation": 3`), []byte(`"low_generation": 10`), 1)), ErrRecordCorrupt},
		{"relative path", resign(bytes.Replace(good, []byte(`"log_dir": "/srv`), []byte(`"log_dir": "srv`), 1)), ErrRecordCorrupt},
		{"bad state", resign(bytes.Replace(good, []byte(`"state": "recovering"`), []byte(`"state": "done"`), 1)), ErrRecordCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(tc.data, good) {
				t.Fatal("the damage did not change the record")
			}
			_, err := decodeRecord(tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("decode: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := decodeRecord(resign(good)); err != nil {
		t.Fatalf("re-signing an intact record breaks it: %v", err)
	}
}

func TestParseUntil(t *testing.T) {
	for in, want := range map[string]Until{
		"":                            {},
		"lsn:42":                      {LSN: 42},
		"LSN:7":                       {LSN: 7},
		"2026-05-01T12:00:00Z":        {Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)},
		"2026-05-01T14:00:00.5+02:00": {Time: time.Date(2026, 5, 1, 12, 0, 0, 5e8, time.UTC)},
	} {
		got, err := ParseUntil(in)
		if err != nil || got != want {
			t.Errorf("ParseUntil(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if again, err := ParseUntil(got.String()); err != nil || again != got {
			t.Errorf("ParseUntil(%q.String()) = %+v, %v", in, again, err)
		}
	}
	for _, in := range []string{"lsn:", "lsn:0", "lsn:-1", "yesterday", "2026-05-01", "2026-05-01T12:00:00"} {
		if _, err := ParseUntil(in); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseUntil(%q) = %v, want ErrInvalidArgument", in, err)
		}
	}
	if !strings.HasPrefix(Until{LSN: 5}.String(), "lsn:") {
		t.Error("Until.String for an LSN")
	}
}

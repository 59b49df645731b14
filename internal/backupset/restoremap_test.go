package backupset

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func goldenMap() RestoreMap {
	return RestoreMap{Entries: []RestoreEntry{
		{TagDatabase, "/var/lib/certsrv/db/Example CA.db"},
		{TagLogDir, "/var/lib/certsrv/log"},
		{TagCheckpointDir, "/var/lib/certsrv/sys"},
	}}
}

// TestRestoreMapGolden pins the file form: testdata/restoremap/v1 was
// written by hand, its checksum line computed with sha256sum(1) over the
// lines before it.
func TestRestoreMapGolden(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "restoremap", "v1", RestoreMapFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := goldenMap().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Marshal:\n%s\nwant:\n%s", got, want)
	}
	m, err := ParseRestoreMap(want)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Equal(goldenMap()) || m.Database() != "/var/lib/certsrv/db/Example CA.db" ||
		m.LogDir() != "/var/lib/certsrv/log" || m.CheckpointDir() != "/var/lib/certsrv/sys" {
		t.Errorf("parsed %+v", m)
	}
}

func TestRestoreMapDamage(t *testing.T) {
	good, _ := goldenMap().Marshal()
	for name, b := range map[string][]byte{
		"empty":               nil,
		"no final line feed":  good[:len(good)-1],
		"flipped path byte":   bytes.Replace(good, []byte("/log\n"), []byte("/lof\n"), 1),
		"unknown version":     bytes.Replace(good, []byte("certsrv-restore-map 1"), []byte("certsrv-restore-map 2"), 1),
		"checksum upper-case": append(append([]byte{}, good[:len(good)-65]...), bytes.ToUpper(good[len(good)-65:])...),
		"checksum missing":    good[:bytes.LastIndex(good[:len(good)-1], []byte("\n"))+1],
		"trailing line":       append(append([]byte{}, good...), "x\n"...),
		"CRLF":                bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n")),
	} {
		if _, err := ParseRestoreMap(b); !errors.Is(err, ErrBadRestoreMap) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Content checks, with a correct checksum.
	for name, m := range map[string]RestoreMap{
		"missing checkpoint dir": {Entries: goldenMap().Entries[:2]},
		"relative path":          {Entries: []RestoreEntry{{TagDatabase, "db/x.db"}, {TagLogDir, "/l"}, {TagCheckpointDir, "/s"}}},
		"duplicate tag":          {Entries: []RestoreEntry{{TagDatabase, "/a"}, {TagDatabase, "/b"}, {TagLogDir, "/l"}, {TagCheckpointDir, "/s"}}},
		"log tag":                {Entries: []RestoreEntry{{TagLog, "/a"}, {TagDatabase, "/b"}, {TagLogDir, "/l"}, {TagCheckpointDir, "/s"}}},
		"newline in path":        {Entries: []RestoreEntry{{TagDatabase, "/a\n44 /b"}, {TagLogDir, "/l"}, {TagCheckpointDir, "/s"}}},
	} {
		if _, err := m.Marshal(); !errors.Is(err, ErrBadRestoreMap) {
			t.Errorf("marshal %s: %v", name, err)
		}
	}
}

package certadm_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/backupset"
)

func TestFileGeneration(t *testing.T) {
	cases := []struct {
		f    certadm.File
		gen  uint32
		isOK bool
	}{
		{certadm.File{Type: certadm.FileLog, Name: "/var/lib/certsrv/log/ca0000000A.log"}, 10, true},
		{certadm.File{Type: certadm.FileLog, Name: "/srv/log/edb000000ff.log"}, 255, true},
		{certadm.File{Type: certadm.FileLog, Name: `C:\log\ca00000001.log`}, 1, true},
		{certadm.File{Type: certadm.FileLog, Name: "/log/ca0000000G.log"}, 0, false},
		{certadm.File{Type: certadm.FileLog, Name: "/log/ca00000000.log"}, 0, false},
		{certadm.File{Type: certadm.FileLog, Name: "/log/ca1.log"}, 0, false},
		{certadm.File{Type: certadm.FileDatabase, Name: "/db/ca00000001.log"}, 0, false},
	}
	for _, c := range cases {
		if gen, ok := c.f.Generation(); gen != c.gen || ok != c.isOK {
			t.Errorf("%v.Generation() = %d, %v; want %d, %v", c.f, gen, ok, c.gen, c.isOK)
		}
	}
}

// TestRestoreMapRoundTrip: the restore map a real server returns, written
// with WriteRestoreMap, is what certsrv restore reads, and ReadRestoreMap
// gives it back; a damaged file is refused.
func TestRestoreMapRoundTrip(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	b, err := certadm.BackupPrepare(ctx, srv.Addr, certadm.BackupFull, certadm.WithCredentials(srv.CredsDir))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort(ctx)
	locs, err := b.DatabaseLocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := certadm.WriteRestoreMap(&buf, locs); err != nil {
		t.Fatal(err)
	}
	m, err := backupset.ParseRestoreMap(buf.Bytes())
	if err != nil || m.Database() != srv.Dir.DBPath(srv.CA.Name()) || m.LogDir() != srv.Dir.LogDir() {
		t.Fatalf("the set's parser reads %+v, %v", m, err)
	}
	back, err := certadm.ReadRestoreMap(bytes.NewReader(buf.Bytes()))
	if err != nil || len(back) != len(locs) {
		t.Fatalf("ReadRestoreMap = %v, %v", back, err)
	}
	for i := range locs {
		if back[i].Type != locs[i].Type || back[i].Name != locs[i].Name {
			t.Fatalf("entry %d: %v, want %v", i, back[i], locs[i])
		}
	}
	e, err := certadm.RestoreMapEntryFor(back, filepath.Join("/new", "db", "x.db"))
	if err != nil || e.DatabaseName != srv.Dir.DBPath(srv.CA.Name()) {
		t.Fatalf("RestoreMapEntryFor = %+v, %v", e, err)
	}
	damaged := bytes.Replace(buf.Bytes(), []byte("/db/"), []byte("/xx/"), 1)
	if _, err := certadm.ReadRestoreMap(bytes.NewReader(damaged)); !errors.Is(err, certadm.ErrInvalidData) {
		t.Fatalf("a damaged restore map: %v", err)
	}
	if err := certadm.WriteRestoreMap(&bytes.Buffer{}, locs[:1]); !errors.Is(err, certadm.ErrInvalidArg) {
		t.Fatalf("an incomplete restore map: %v", err)
	}
	if _, err := certadm.RestoreMapEntryFor(nil, "/x"); !errors.Is(err, certadm.ErrInvalidArg) {
		t.Fatalf("RestoreMapEntryFor without a database: %v", err)
	}
}

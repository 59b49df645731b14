package backupset

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// withChunkSize writes the test's new sets with chunk bytes per digest.
func withChunkSize(t *testing.T, chunk int64) {
	old := chunkSize
	chunkSize = chunk
	t.Cleanup(func() { chunkSize = old })
}

// chunkedSet writes a set whose database (3.5 MiB or more) is recorded with
// chunk digests of 1 MiB, and returns its directory and manifest.
func chunkedSet(t *testing.T) (*source, string, *Manifest) {
	t.Helper()
	withChunkSize(t, MinChunkSize)
	src := newSource(t, "Chunk CA")
	src.dbBytes = 3<<20 + 512<<10
	dir := t.TempDir()
	return src, dir, src.fullBackup(dir)
}

func TestChunkedDigestsVerify(t *testing.T) {
	src, dir, m := chunkedSet(t)
	if m.Format != ManifestFormat || m.ChunkSize != MinChunkSize {
		t.Fatalf("format %d, chunk size %d", m.Format, m.ChunkSize)
	}
	for _, f := range m.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		want := fileDigests(t, p, m.ChunkSize)
		switch {
		case f.Kind == KindDatabase && (f.SHA256 != "" || len(f.ChunkSHA256) != chunks(f.Size, m.ChunkSize) || len(f.ChunkSHA256) < 4):
			t.Errorf("database of %d bytes: sha256 %q, %d chunk digests", f.Size, f.SHA256, len(f.ChunkSHA256))
		case f.Kind != KindDatabase && (f.SHA256 == "" || f.ChunkSHA256 != nil):
			t.Errorf("%s (%d bytes) has chunk digests", f.Path, f.Size)
		case !slices.Equal(entryDigests(f), want):
			t.Errorf("%s: manifest %v, file %v", f.Path, entryDigests(f), want)
		}
	}
	if _, err := verifyDir(t, dir); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// An incremental keeps the set's chunk size, even when new sets are
	// written with another.
	withChunkSize(t, DefaultChunkSize)
	m2 := appendTo(t, src, dir, m)
	if m2.ChunkSize != MinChunkSize || len(m2.Backups) != 2 {
		t.Errorf("after an incremental: chunk size %d, %d backups", m2.ChunkSize, len(m2.Backups))
	}
	if _, err := verifyDir(t, dir); err != nil {
		t.Fatalf("verify after an incremental: %v", err)
	}
}

// appendTo appends a logs-only backup of 100 more records to the set in dir
// whose manifest is m, and returns the new manifest.
func appendTo(t *testing.T, src *source, dir string, m *Manifest) *Manifest {
	t.Helper()
	set, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := src.appendIncremental(set, src.incremental(m.LastBackup().LastGen, 100))
	if err != nil {
		t.Fatal(err)
	}
	return m2
}

// TestChunkedDigestNamesTheDamage changes bytes in one chunk, then in two,
// of a set's database: verification names the file, the first damaged
// chunk and its byte range, and how many chunks differ.
func TestChunkedDigestNamesTheDamage(t *testing.T) {
	_, dir, m := chunkedSet(t)
	var db FileEntry
	for _, f := range m.Files {
		if f.Kind == KindDatabase {
			db = f
		}
	}
	n := len(db.ChunkSHA256)
	flip := func(off int64) {
		p := filepath.Join(dir, filepath.FromSlash(db.Path))
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		f.ReadAt(b, off)
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	flip(2<<20 + 12345) // chunk 3
	rep, err := verifyDir(t, dir)
	if !errors.Is(err, ErrDigestMismatch) || !slices.Equal(rep.FailedFiles, []string{db.Path}) {
		t.Fatalf("one damaged chunk: %v (failed %v)", err, rep.FailedFiles)
	}
	msg := rep.Problems[0].Error()
	want := db.Path + ": file digest mismatch: expected SHA-256 " + db.ChunkSHA256[2] + " of bytes 2097152 to 3145727 (chunk 3 of "
	if !strings.HasPrefix(msg, want) {
		t.Errorf("message %q\nwant it to start %q", msg, want)
	}
	flip(1<<20 + 7) // chunk 2
	rep, err = verifyDir(t, dir)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("two damaged chunks: %v", err)
	}
	msg = rep.Problems[0].Error()
	if !strings.Contains(msg, "in 2 of its "+strconv.Itoa(n)+" chunks, the first") || !strings.Contains(msg, "(chunk 2 of "+strconv.Itoa(n)+")") {
		t.Errorf("two damaged chunks: %q", msg)
	}
}

// TestFormat1SetStillVerifies reads a set whose manifest is format 1 (every
// file with one whole-file digest, no chunk size), as earlier versions
// wrote it; an incremental appended to it makes it format 2 and keeps the
// old files' digests.
func TestFormat1SetStillVerifies(t *testing.T) {
	src := newSource(t, "Old CA")
	dir := t.TempDir()
	m := src.fullBackup(dir)
	rewriteManifest(t, dir, func(m *Manifest) { m.Format, m.ChunkSize = 1, 0 })
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "chunk") || !strings.Contains(string(raw), `"format": 1,`) {
		t.Fatalf("not a format-1 manifest:\n%s", raw)
	}
	if _, err := verifyDir(t, dir); err != nil {
		t.Fatalf("verify a format-1 set: %v", err)
	}
	m2 := appendTo(t, src, dir, m)
	if m2.Format != ManifestFormat || m2.ChunkSize != DefaultChunkSize {
		t.Errorf("after an incremental: format %d, chunk size %d", m2.Format, m2.ChunkSize)
	}
	for i, f := range m.Files {
		if m2.Files[i].SHA256 != f.SHA256 {
			t.Errorf("%s: digest changed from %s to %s", f.Path, f.SHA256, m2.Files[i].SHA256)
		}
	}
	if _, err := verifyDir(t, dir); err != nil {
		t.Fatalf("verify after an incremental: %v", err)
	}
}

// TestManifestChunkRules checks the manifest rules of chunk digests, each
// broken alone.
func TestManifestChunkRules(t *testing.T) {
	_, _, good := chunkedSet(t)
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	dbIndex := slices.IndexFunc(good.Files, func(f FileEntry) bool { return f.Kind == KindDatabase })
	logIndex := slices.IndexFunc(good.Files, func(f FileEntry) bool { return f.Kind == KindLog })
	for _, c := range []struct {
		name string
		edit func(m *Manifest)
		want string
	}{
		{"format 3", func(m *Manifest) { m.Format = 3 }, "format 3, want 1 to 2"},
		{"chunk size not a power of two", func(m *Manifest) { m.ChunkSize = 3 << 20 }, "chunk_size 3145728 is not a power of two"},
		{"chunk size too small", func(m *Manifest) { m.ChunkSize = 4096 }, "chunk_size 4096"},
		{"chunk size too large", func(m *Manifest) { m.ChunkSize = 2 << 30 }, "chunk_size 2147483648"},
		{"no chunk size in format 2", func(m *Manifest) { m.ChunkSize = 0 }, "chunk_size 0"},
		{"chunk size in format 1", func(m *Manifest) { m.Format = 1 }, "chunk_size in a format-1 manifest"},
		{"chunk digests in format 1", func(m *Manifest) { m.Format, m.ChunkSize = 1, 0 }, "chunk digests in a format-1 manifest"},
		{"a chunk digest missing", func(m *Manifest) {
			f := &m.Files[dbIndex]
			f.ChunkSHA256 = f.ChunkSHA256[1:]
		}, "chunk digests;"},
		{"a chunk digest too many", func(m *Manifest) {
			f := &m.Files[dbIndex]
			f.ChunkSHA256 = append(f.ChunkSHA256, f.ChunkSHA256[0])
		}, "chunk digests;"},
		{"both digests", func(m *Manifest) { m.Files[dbIndex].SHA256 = m.Files[dbIndex].ChunkSHA256[0] }, "both a digest and chunk digests"},
		{"no digest", func(m *Manifest) { m.Files[logIndex].SHA256 = "" }, "has no digest"},
		{"chunk digests for a small file", func(m *Manifest) {
			f := &m.Files[logIndex]
			f.ChunkSHA256, f.SHA256 = []string{f.SHA256}, ""
		}, "need none (one sha256 for the whole file)"},
		{"a chunk digest upper-case", func(m *Manifest) {
			f := &m.Files[dbIndex]
			f.ChunkSHA256[1] = strings.ToUpper(f.ChunkSHA256[1])
		}, "not 64 lower-case hex digits"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := good.clone()
			c.edit(m)
			err := m.validate()
			if !errors.Is(err, ErrManifestFormat) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want ErrManifestFormat saying %q", err, c.want)
			}
			if _, err := parseManifest(mustMarshal(t, m)); !errors.Is(err, ErrManifestFormat) {
				t.Errorf("parse: %v", err)
			}
		})
	}
}

// mustMarshal returns m as manifest JSON with a correct checksum, without
// the checks marshalManifest makes (a format the checksum refuses is
// returned without one).
func mustMarshal(t *testing.T, m *Manifest) []byte {
	t.Helper()
	c := m.clone()
	c.Checksum = ""
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if sum, _, err := manifestChecksum(raw); err == nil {
		c.Checksum = sum
		if raw, err = json.Marshal(c); err != nil {
			t.Fatal(err)
		}
	}
	return raw
}

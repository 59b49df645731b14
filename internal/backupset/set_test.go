package backupset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

func TestWriteOpenVerifyRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newSource(t, "Example CA")
	dir := filepath.Join(t.TempDir(), "set")
	m := src.fullBackup(dir)

	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatalf("verify a fresh set: %v", err)
	}
	got := s.Manifest()
	sig := src.log.Signature()
	switch {
	case got.CA.Name != "Example CA":
		t.Errorf("CA name %q", got.CA.Name)
	case got.CA.LogSignature != hex.EncodeToString(sig[:]):
		t.Errorf("log signature %s, log has %x", got.CA.LogSignature, sig)
	case got.CA.DBSignature != hex.EncodeToString(src.dbSig[:]):
		t.Errorf("db signature %s, database has %x", got.CA.DBSignature, src.dbSig)
	case got.CA.CertSHA256 != hex.EncodeToString(src.cert[:]):
		t.Errorf("certificate digest %s", got.CA.CertSHA256)
	case got.Checksum != m.Checksum:
		t.Errorf("checksum read %s, written %s", got.Checksum, m.Checksum)
	}
	b := got.Backups[0]
	if len(got.Backups) != 1 || b.Type != BackupFull || b.LastGen <= b.FirstGen {
		t.Fatalf("backups %+v", got.Backups)
	}
	if b.FirstLSN > b.SnapshotLSN+1 || b.LastLSN != src.log.LastLSN() {
		t.Errorf("LSNs %d..%d snapshot %d, log ends at %d", b.FirstLSN, b.LastLSN, b.SnapshotLSN, src.log.LastLSN())
	}
	if rep.Files != len(got.Files) || rep.FirstGen != b.FirstGen || rep.LastGen != b.LastGen || rep.SnapshotLSN != b.SnapshotLSN {
		t.Errorf("report %+v vs backup %+v", rep, b)
	}
	// Every file is where the manifest says, with its digest, and private.
	for _, f := range got.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != filePerm {
			t.Errorf("%s has mode %v", f.Path, fi.Mode().Perm())
		}
		if sums := fileDigests(t, p, m.ChunkSize); !slices.Equal(sums, entryDigests(f)) || fi.Size() != f.Size {
			t.Errorf("%s: manifest %d %v, file %d %v", f.Path, f.Size, entryDigests(f), fi.Size(), sums)
		}
	}
	if parts := partFiles(dir); len(parts) != 0 {
		t.Errorf("part files left: %v", parts)
	}
	// The logs are byte-identical to the source's generations.
	for _, l := range s.Logs() {
		gen, _ := wal.ParseFileName("ca", filepath.Base(l.Path))
		a, _ := os.ReadFile(src.genPath(gen))
		c, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(l.Path)))
		if !bytes.Equal(a, c) {
			t.Errorf("generation %d differs from the source", gen)
		}
	}
	rm, err := s.RestoreMap()
	if err != nil || !rm.Equal(src.rmap) {
		t.Errorf("restore map %+v, %v", rm, err)
	}
}

func TestIncrementalAppendsVerify(t *testing.T) {
	ctx := context.Background()
	src := newSource(t, "Inc CA")
	dir := t.TempDir()
	m := src.fullBackup(dir)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	last := m.Backups[0].LastGen
	for round := 0; round < 2; round++ {
		m, err = src.appendIncremental(s, src.incremental(last, 250))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		b := m.LastBackup()
		prev := m.Backups[len(m.Backups)-2]
		if b.Type != BackupLogsOnly || b.FirstGen != prev.LastGen+1 || b.FirstLSN != prev.LastLSN+1 || b.SnapshotLSN != 0 {
			t.Fatalf("round %d: backup %+v after %+v", round, b, prev)
		}
		last = b.LastGen
	}
	// Verify both through the Set that appended and a fresh Open.
	if _, err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s2.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Backups != 3 || rep.LastLSN != src.log.LastLSN() || rep.LastGen != last {
		t.Errorf("report %+v, log at LSN %d", rep, src.log.LastLSN())
	}
}

func TestManifestChecksumIgnoresFormatting(t *testing.T) {
	src := newSource(t, "Fmt CA")
	dir := t.TempDir()
	src.fullBackup(dir)
	p := filepath.Join(dir, ManifestFile)
	b, _ := os.ReadFile(p)
	// Compact it and reorder the top-level members: same JSON value.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.WriteString("{")
	for i, k := range []string{"checksum", "notes", "files", "backups", "ca", "chunk_size", "format"} {
		if i > 0 {
			out.WriteString(",")
		}
		kb, _ := json.Marshal(k)
		out.Write(kb)
		out.WriteString(":")
		json.Compact(&out, obj[k])
	}
	out.WriteString("}")
	if err := os.WriteFile(p, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyDir(t, dir); err != nil {
		t.Fatalf("reformatted manifest: %v", err)
	}
}

func TestCanonicalJSON(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"b":1,"a":[true,null,"x\n\u0001é\"\\/"],"A":{"z":0,"y":-5}}`,
			`{"A":{"y":-5,"z":0},"a":[true,null,"x\n\u0001é\"\\/"],"b":1}`},
		// RFC 8785 §3.2.3: names sorted by UTF-16 code units, so the
		// surrogate pair of U+1F600 sorts before U+FB33.
		{`{"\u20ac":1,"\r":2,"\ufb33":3,"1":4,"\ud83d\ude00":5,"\u0080":6,"\u00f6":7}`,
			"{\"\\r\":2,\"1\":4,\"\u0080\":6,\"ö\":7,\"€\":1,\"\U0001F600\":5,\"\ufb33\":3}"},
		{` [ 9007199254740991 , "\b\f\t" ] `, `[9007199254740991,"\b\f\t"]`},
	} {
		v, err := decodeGeneric([]byte(c.in))
		if err != nil {
			t.Fatal(err)
		}
		got, err := canonicalJSON(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("canonical(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	for _, in := range []string{`1.5`, `1e3`, `9007199254740992`, `{"a":1} x`} {
		v, err := decodeGeneric([]byte(in))
		if err == nil {
			_, err = canonicalJSON(nil, v)
		}
		if err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestCreateRefusesNonEmptyAndClear(t *testing.T) {
	src := newSource(t, "Clear CA")
	dir := t.TempDir()
	src.fullBackup(dir)
	opts := Options{CAName: "Clear CA", CACertSHA256: src.cert}
	if _, err := Create(dir, opts); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("create over a set: %v", err)
	}
	// A file that is not part of a set stops Clear before it removes
	// anything.
	foreign := filepath.Join(dir, "holiday.jpg")
	os.WriteFile(foreign, []byte("x"), 0o600)
	if err := Clear(dir); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("clear with a foreign file: %v", err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatalf("the set was touched: %v", err)
	}
	os.Remove(foreign)
	if err := Clear(dir); err != nil {
		t.Fatal(err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Fatalf("left after clear: %v", es)
	}
	if _, err := Create(dir, opts); err != nil {
		t.Fatalf("create after clear: %v", err)
	}
}

func TestAddFileSizeAndPathChecks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := Create(dir, Options{CAName: "X", CACertSHA256: [32]byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	rel := DynamicDir + "/X.crl"
	_, err = w.AddFile(ctx, KindDynamic, rel, strings.NewReader("short"), 10)
	if !errors.Is(err, ErrTruncated) || !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("short source: %v", err)
	}
	_, err = w.AddFile(ctx, KindDynamic, rel, strings.NewReader("longer than announced"), 4)
	if !errors.Is(err, ErrSizeMismatch) || errors.Is(err, ErrTruncated) {
		t.Errorf("long source: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, DynamicDir, "X.crl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed file left behind: %v", err)
	}
	if parts := partFiles(dir); len(parts) != 0 {
		t.Errorf("part files left: %v", parts)
	}
	for _, c := range []struct {
		k   Kind
		rel string
	}{
		{KindDynamic, "../escape.crl"},
		{KindDynamic, "Dynamic/../../escape"},
		{KindDynamic, "/abs/path"},
		{KindDynamic, "Dynamic/sub/x.crl"},
		{KindDynamic, "Dynamic/.hidden"},
		{KindDynamic, "Dynamic/x.part"},
		{KindDatabase, "DataBase/x.txt"},
		{KindDatabase, "x.db"},
		{KindLog, "DataBase/ca1.log"},
		{KindLog, "DataBase/ca0000000a.log"}, // lower-case digits: not the writer's name
		{KindRestoreMap, "certbkxp.dat"},
		{KindConfig, "Config/other.json"},
		{KindKey, "DataBase/X.p12"},
		{KindKey, ManifestFile},
		{Kind("other"), "Dynamic/x"},
	} {
		if _, err := w.AddFile(ctx, c.k, c.rel, strings.NewReader("x"), 1); !errors.Is(err, ErrBadPath) {
			t.Errorf("%s %q: %v", c.k, c.rel, err)
		}
	}
	if _, err := w.AddFile(ctx, KindDynamic, rel, strings.NewReader("ok"), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddFile(ctx, KindDynamic, rel, strings.NewReader("ok"), 2); !errors.Is(err, ErrBadPath) {
		t.Errorf("same path twice: %v", err)
	}
	// Commit without a database refuses and writes no manifest.
	if _, err := w.Commit(ctx, BackupInfo{}); !errors.Is(err, ErrManifestFormat) {
		t.Errorf("commit without database: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); !errors.Is(err, os.ErrNotExist) {
		t.Error("manifest written for an incomplete set")
	}
	if _, err := w.AddFile(ctx, KindDynamic, "Dynamic/y", strings.NewReader("y"), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("add after commit: %v", err)
	}
}

// cancelReader cancels a context after the first read.
type cancelReader struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:min(len(p), 1000)])
	c.cancel()
	return n, err
}

func TestAddFileCancelled(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, Options{CAName: "X", CACertSHA256: [32]byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelReader{r: bytes.NewReader(make([]byte, 100000)), cancel: cancel}
	if _, err := w.AddFile(ctx, KindDynamic, "Dynamic/big", r, 100000); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled copy: %v", err)
	}
	if parts := partFiles(dir); len(parts) != 0 {
		t.Errorf("part files left: %v", parts)
	}
}

func TestCommitRefusesForeignLogAndGap(t *testing.T) {
	ctx := context.Background()
	a := newSource(t, "A")
	other := newSource(t, "B")
	a.write(500)
	other.write(500)
	sealedA := a.roll()
	sealedB := other.roll()
	if sealedA < 3 || sealedB < 3 {
		t.Fatalf("need 3 generations, have %d and %d", sealedA, sealedB)
	}
	snap := filepath.Join(t.TempDir(), "A.db")
	makeDB(t, snap, a.dbSig, a.log.Signature(), 0)

	build := func(logs ...string) error {
		dir := t.TempDir()
		w, err := Create(dir, Options{CAName: "A", CACertSHA256: a.cert})
		if err != nil {
			t.Fatal(err)
		}
		w.AddRestoreMap(ctx, a.rmap)
		a.addFile(w, KindDatabase, "DataBase/A.db", snap)
		for _, l := range logs {
			a.addFile(w, KindLog, "DataBase/"+filepath.Base(l), l)
		}
		_, err = w.Commit(ctx, BackupInfo{})
		if _, serr := os.Stat(filepath.Join(dir, ManifestFile)); err != nil && serr == nil {
			t.Error("manifest written although commit failed")
		}
		return err
	}
	if err := build(a.genPath(1), a.genPath(2), a.genPath(3)); err != nil {
		t.Fatalf("good set: %v", err)
	}
	if err := build(a.genPath(1), other.genPath(2), a.genPath(3)); !errors.Is(err, ErrForeignLog) {
		t.Errorf("foreign generation 2: %v", err)
	}
	if err := build(a.genPath(1), a.genPath(3)); !errors.Is(err, ErrChainGap) {
		t.Errorf("generation 2 missing: %v", err)
	}
	// The snapshot must be covered: logs starting after S+1 leave a gap.
	if err := build(a.genPath(2), a.genPath(3)); !errors.Is(err, ErrChainGap) {
		t.Errorf("logs start after the snapshot: %v", err)
	}
}

func TestOpenWithoutManifest(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); !errors.Is(err, ErrNoManifest) {
		t.Errorf("empty dir: %v", err)
	}
	os.Mkdir(filepath.Join(dir, DatabaseDir), 0o700)
	os.WriteFile(filepath.Join(dir, DatabaseDir, "X.db.part"), []byte("half"), 0o600)
	if _, err := Open(dir); !errors.Is(err, ErrIncomplete) {
		t.Errorf("interrupted write: %v", err)
	}
}

func TestLogBaseTakenFromFirstLog(t *testing.T) {
	ctx := context.Background()
	for name, want := range map[string]string{
		"ca0000001A.log":   "ca",
		"srv00000001.log":  "srv",
		"00000001.log":     "",
		"ca0000001G.log":   "",
		"ca0000001A.log.x": "",
	} {
		if got := logBaseOf(name); got != want {
			t.Errorf("logBaseOf(%q) = %q, want %q", name, got, want)
		}
	}
	w, err := Create(t.TempDir(), Options{CAName: "X", CACertSHA256: [32]byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddFile(ctx, KindLog, "DataBase/srv00000001.log", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddFile(ctx, KindLog, "DataBase/ca00000002.log", strings.NewReader("x"), 1); !errors.Is(err, ErrBadPath) {
		t.Errorf("a log of another base: %v", err)
	}
}

func TestVerifyNoticesManifestReplacedAfterOpen(t *testing.T) {
	src := newSource(t, "Swap CA")
	dir := t.TempDir()
	src.fullBackup(dir)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rewriteManifest(t, dir, func(m *Manifest) { m.Notes = append(m.Notes, "changed") })
	if _, err := s.Verify(context.Background()); !errors.Is(err, ErrManifestMismatch) {
		t.Errorf("verify after the manifest changed: %v", err)
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("medium full")
	}
	f.after--
	return len(p), nil
}

func TestPipeWriterReportsWriteError(t *testing.T) {
	p := newPipeWriter(context.Background(), &failingWriter{after: 1}, 64<<20, DefaultChunkSize)
	chunk := make([]byte, pipeBufferSize)
	var werr error
	for i := 0; i < 16 && werr == nil; i++ {
		_, werr = p.Write(chunk)
	}
	_, ferr := p.finish()
	if ferr == nil || ferr.Error() != "medium full" {
		t.Errorf("finish: %v", ferr)
	}
	if werr == nil {
		t.Error("Write kept accepting data after the medium failed")
	}
	// The digest is that of the bytes written, in order.
	// The digests are those of the bytes written, in order: the whole
	// file's when it fits one chunk, else each chunk's, whatever the
	// boundaries of the writes and of the pipeline's buffers.
	data := make([]byte, 10<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, chunk := range []int64{DefaultChunkSize, 10 << 20, 3<<20 + 1, 1 << 20} {
		p = newPipeWriter(context.Background(), io.Discard, int64(len(data)), chunk)
		for off := 0; off < len(data); off += 777777 {
			p.Write(data[off:min(off+777777, len(data))])
		}
		sums, err := p.finish()
		var want []string
		for off := int64(0); off < int64(len(data)); off += chunk {
			s := sha256.Sum256(data[off:min(off+chunk, int64(len(data)))])
			want = append(want, hex.EncodeToString(s[:]))
		}
		if err != nil || !slices.Equal(sums, want) {
			t.Errorf("chunk %d: digests %v, want %v (%v)", chunk, sums, want, err)
		}
	}
	// An empty file has one digest, that of no bytes.
	p = newPipeWriter(context.Background(), io.Discard, 0, DefaultChunkSize)
	sums, err := p.finish()
	if empty := sha256.Sum256(nil); err != nil || len(sums) != 1 || sums[0] != hex.EncodeToString(empty[:]) {
		t.Errorf("empty file: digests %v (%v)", sums, err)
	}
}

// pieceWriter records, for every Write, the largest single write the pipe
// asked for; gate, when set, holds each Write until it can receive.
type pieceWriter struct {
	max    int
	gate   chan struct{}
	mu     sync.Mutex
	pieces []int
}

func (w *pieceWriter) SetMaxWrite(n int) { w.max = n }

func (w *pieceWriter) Write(p []byte) (int, error) {
	if w.gate != nil {
		<-w.gate
	}
	w.mu.Lock()
	w.pieces = append(w.pieces, w.max)
	w.mu.Unlock()
	return len(p), nil
}

func (w *pieceWriter) seen() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.pieces)
}

// A file writer that keeps up writes in its default pieces (so that the
// CA's fsyncs wait less behind it); one that has fallen behind, with
// buffers queued, writes each buffer whole.
func TestPipeWriterPieceSizeFollowsBacklog(t *testing.T) {
	chunk := make([]byte, pipeBufferSize)

	// Keeping up: each buffer is written before the next is queued.
	w := &pieceWriter{}
	p := newPipeWriter(context.Background(), w, 4*pipeBufferSize, DefaultChunkSize)
	for i := 1; i <= 4; i++ {
		if _, err := p.Write(chunk); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); len(w.seen()) < i; {
			if time.Now().After(deadline) {
				t.Fatalf("buffer %d was never written", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if _, err := p.finish(); err != nil {
		t.Fatal(err)
	}
	if got := w.seen(); !slices.Equal(got, []int{0, 0, 0, 0}) {
		t.Errorf("a writer keeping up was asked for pieces %v, want the default (0) each time", got)
	}

	// Behind: the first write is held until every buffer is queued.
	w = &pieceWriter{gate: make(chan struct{})}
	p = newPipeWriter(context.Background(), w, pipeBuffers*pipeBufferSize, DefaultChunkSize)
	for range pipeBuffers {
		if _, err := p.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	close(w.gate)
	if _, err := p.finish(); err != nil {
		t.Fatal(err)
	}
	got := w.seen()
	if len(got) != pipeBuffers {
		t.Fatalf("%d writes, want %d", len(got), pipeBuffers)
	}
	// The first buffer was taken before the others were queued; the
	// others found a backlog behind them until the last.
	for i, n := range got[1 : pipeBuffers-1] {
		if n != pipeBufferSize {
			t.Errorf("write %d of a writer behind asked for %d-byte pieces, want the whole %d-byte buffer (all: %v)", i+2, n, pipeBufferSize, got)
		}
	}
	if got[pipeBuffers-1] != 0 {
		t.Errorf("the last write, with nothing queued behind it, asked for %d-byte pieces, want the default", got[pipeBuffers-1])
	}
}

package certadm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/certsrv/certsrv/certadm/internal/wiretest"
	"github.com/certsrv/certsrv/internal/apierr"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

func TestChunkSizeClamp(t *testing.T) {
	cases := []struct {
		hint int
		want int32
	}{
		{0, 1 << 20},
		{1, 64 << 10},
		{64<<10 - 1, 64 << 10},
		{64 << 10, 64 << 10},
		{300_000, 300_000},
		{4<<20 - 1<<10, 4<<20 - 1<<10},
		{4 << 20, 4<<20 - 1<<10},
		{1 << 40, 4<<20 - 1<<10},
	}
	for _, c := range cases {
		if got := chunkSize(c.hint); got != c.want {
			t.Errorf("chunkSize(%d) = %d, want %d", c.hint, got, c.want)
		}
	}
}

// startBackup runs the wire double and prepares a session against it.
func startBackup(t *testing.T) (*wiretest.Server, *BackupContext) {
	t.Helper()
	clearEnv(t)
	p := wiretest.NewPKI(t, "anchor")
	s := wiretest.Start(t, p)
	dir := t.TempDir()
	p.WriteCreds(t, dir, "operator", s.Addr)
	b, err := BackupPrepare(context.Background(), "", BackupFull, WithCredentials(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return s, b
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestBackupFileReadsWholeFileWithClampedChunks(t *testing.T) {
	s, b := startBackup(t)
	data := randomBytes(3<<20 + 12345)
	s.Backup.Files["ca.db"] = &wiretest.FileScript{Size: int64(len(data)), Data: data}
	for _, c := range []struct {
		hint int
		want int32
	}{{0, 1 << 20}, {1000, 64 << 10}, {8 << 20, 4<<20 - 1<<10}, {200_000, 200_000}} {
		f, err := b.OpenFile(context.Background(), "ca.db", c.hint)
		if err != nil {
			t.Fatal(err)
		}
		if f.Size() != int64(len(data)) || f.Name() != "ca.db" {
			t.Fatalf("size %d name %q", f.Size(), f.Name())
		}
		var got []byte
		if c.hint == 1000 {
			// Small reads through Read.
			got, err = io.ReadAll(io.LimitReader(struct{ io.Reader }{f}, 1<<30))
		} else {
			var buf bytes.Buffer
			_, err = io.Copy(&buf, f)
			got = buf.Bytes()
		}
		if err != nil {
			t.Fatalf("hint %d: %v", c.hint, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("hint %d: content differs (%d bytes)", c.hint, len(got))
		}
		if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Fatalf("read after end: %d, %v", n, err)
		}
		asked := s.Backup.Last("ReadFile").(*certsrvv1.ReadFileRequest).GetChunkSize()
		if asked != c.want {
			t.Errorf("hint %d: asked for chunks of %d, want %d", c.hint, asked, c.want)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Read(make([]byte, 1)); err == nil {
			t.Fatal("read after close succeeded")
		}
	}
}

func TestBackupFileStreamIntegrity(t *testing.T) {
	chunk := func(off int64, n int) *certsrvv1.FileChunk {
		return &certsrvv1.FileChunk{Offset: off, Data: bytes.Repeat([]byte{byte(off)}, n)}
	}
	cases := []struct {
		name   string
		script wiretest.FileScript
		want   error
		hr     uint32
	}{
		{"short stream", wiretest.FileScript{Size: 300, Chunks: []*certsrvv1.FileChunk{chunk(0, 100), chunk(100, 100)}}, ErrTruncatedFile, 0x80070026},
		{"no data at all", wiretest.FileScript{Size: 10, Chunks: []*certsrvv1.FileChunk{}}, ErrTruncatedFile, 0x80070026},
		{"gap", wiretest.FileScript{Size: 300, Chunks: []*certsrvv1.FileChunk{chunk(0, 100), chunk(200, 100)}}, ErrInvalidData, 0x8007000D},
		{"overlap", wiretest.FileScript{Size: 300, Chunks: []*certsrvv1.FileChunk{chunk(0, 100), chunk(50, 100)}}, ErrInvalidData, 0x8007000D},
		{"first chunk not at zero", wiretest.FileScript{Size: 100, Chunks: []*certsrvv1.FileChunk{chunk(1, 99)}}, ErrInvalidData, 0x8007000D},
		{"longer than announced", wiretest.FileScript{Size: 150, Chunks: []*certsrvv1.FileChunk{chunk(0, 100), chunk(100, 100)}}, ErrInvalidData, 0x8007000D},
		{"extra chunk after the end", wiretest.FileScript{Size: 100, Chunks: []*certsrvv1.FileChunk{chunk(0, 100), chunk(100, 1)}}, ErrInvalidData, 0x8007000D},
		{"server error after data", wiretest.FileScript{Size: 300, Chunks: []*certsrvv1.FileChunk{chunk(0, 100)}, Err: wiretest.Fail(apierr.LogFileCorrupt, "ca00000004.log: bad CRC at offset 100")}, ErrLogFileCorrupt, 0xC80001F5},
		{"server error at the very end", wiretest.FileScript{Size: 100, Chunks: []*certsrvv1.FileChunk{chunk(0, 100)}, Err: wiretest.Fail(apierr.LogFileCorrupt, "chain broken")}, ErrLogFileCorrupt, 0xC80001F5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, b := startBackup(t)
			script := c.script
			s.Backup.Files["f"] = &script
			f, err := b.OpenFile(context.Background(), "f", 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			n, err := io.Copy(io.Discard, f)
			if !errors.Is(err, c.want) {
				t.Fatalf("copied %d bytes, err %v; want %v", n, err, c.want)
			}
			if HRESULT(err) != c.hr {
				t.Errorf("HRESULT 0x%08X, want 0x%08X", HRESULT(err), c.hr)
			}
			// The error is sticky.
			if _, err2 := f.Read(make([]byte, 8)); !errors.Is(err2, c.want) {
				t.Errorf("second read: %v", err2)
			}
		})
	}
}

func TestBackupFileEmpty(t *testing.T) {
	s, b := startBackup(t)
	s.Backup.Files["empty"] = &wiretest.FileScript{Size: 0}
	f, err := b.OpenFile(context.Background(), "empty", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || len(got) != 0 {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
}

func TestOneOpenFileAtATime(t *testing.T) {
	s, b := startBackup(t)
	s.Backup.Files["a"] = &wiretest.FileScript{Size: 3, Data: []byte("abc")}
	s.Backup.Files["b"] = &wiretest.FileScript{Size: 3, Data: []byte("def")}
	ctx := context.Background()
	f, err := b.OpenFile(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.OpenFile(ctx, "b", 0); !errors.Is(err, ErrAlreadyOpen) {
		t.Fatalf("second open: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	g, err := b.OpenFile(ctx, "b", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(g)
	if err != nil || string(got) != "def" {
		t.Fatalf("%q %v", got, err)
	}
	g.Close()
	if _, err := b.OpenFile(ctx, "b", -1); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("negative hint: %v", err)
	}
	if _, err := b.OpenFile(ctx, "unlisted", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unlisted: %v", err)
	}
}

func TestCancelledContextEndsStream(t *testing.T) {
	s, b := startBackup(t)
	hold := make(chan struct{})
	defer close(hold)
	s.Backup.Files["big"] = &wiretest.FileScript{Size: 300, Chunks: []*certsrvv1.FileChunk{{Offset: 0, Data: make([]byte, 100)}}, Hold: hold}
	ctx, cancel := context.WithCancel(context.Background())
	f, err := b.OpenFile(ctx, "big", 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.ReadFull(f, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.Copy(io.Discard, f)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
}

// TestBackupFileCancelledContextFailsLaterReads: once the context given to
// OpenFile ends, every Read fails with ErrCancelled, even though the whole
// (small) file had already arrived.
func TestBackupFileCancelledContextFailsLaterReads(t *testing.T) {
	s, b := startBackup(t)
	data := randomBytes(100_000)
	s.Backup.Files["ca.db"] = &wiretest.FileScript{Size: int64(len(data)), Data: data}
	ctx, cancel := context.WithCancel(context.Background())
	f, err := b.OpenFile(ctx, "ca.db", 0)
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 10)
	if _, err := io.ReadFull(f, one); err != nil {
		t.Fatal(err)
	}
	cancel()
	for i := 0; i < 2; i++ {
		n, err := f.Read(make([]byte, len(data)))
		if n != 0 || !errors.Is(err, context.Canceled) || HRESULT(err) != 0x800704C7 {
			t.Fatalf("read %d after cancel: %d bytes, %v", i, n, err)
		}
	}
	if _, err := f.WriteTo(io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteTo after cancel: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after cancel: %v", err)
	}
}

// TestNilAndZeroValuesDoNotPanic: cleanup calls on the nil BackupContext a
// failed BackupPrepare returns do nothing; other calls on nil or zero
// values fail with ErrInvalidArg.
func TestNilAndZeroValuesDoNotPanic(t *testing.T) {
	ctx := context.Background()
	var nilB *BackupContext
	if err := nilB.Abort(ctx); err != nil {
		t.Fatalf("nil Abort: %v", err)
	}
	if err := nilB.Close(); err != nil {
		t.Fatalf("nil Close: %v", err)
	}
	for name, b := range map[string]*BackupContext{"nil": nil, "zero": {}} {
		if _, err := b.DatabaseNames(ctx); !errors.Is(err, ErrInvalidArg) {
			t.Errorf("%s DatabaseNames: %v", name, err)
		}
		if _, err := b.OpenFile(ctx, "/x", 0); !errors.Is(err, ErrInvalidArg) {
			t.Errorf("%s OpenFile: %v", name, err)
		}
		if err := b.End(ctx); !errors.Is(err, ErrInvalidArg) {
			t.Errorf("%s End: %v", name, err)
		}
	}
	var zeroF BackupFile
	if _, err := zeroF.Read(make([]byte, 1)); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("zero BackupFile Read: %v", err)
	}
	if err := zeroF.Close(); err != nil {
		t.Errorf("zero BackupFile Close: %v", err)
	}
}

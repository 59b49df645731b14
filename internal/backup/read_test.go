package backup

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// pinnedFile returns the first size bytes of the live database file at
// path: while a snapshot is pinned they are the snapshot's bytes (see
// store.Snapshot), so they are what a full backup must stream.
func pinnedFile(t testing.TB, path string, size int64) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) < size {
		t.Fatalf("%s has %d bytes, the snapshot %d", path, len(b), size)
	}
	return b[:size]
}

// TestReadReusesOneBuffer: every database chunk of one Read is read into
// the same memory, and what send sees (copied at once, as the contract
// says) is exactly the pinned file, while writers continue.
func TestReadReusesOneBuffer(t *testing.T) {
	db := newDB(t)
	write(t, db, 400)
	m, _ := newManager(t, db)
	ctx := context.Background()
	stop := writer(t, db)
	defer stop()
	id, names := prepareFull(t, m, op1)
	name, size := names[0].Name, names[0].Size
	if size < 4*MinChunk {
		t.Fatalf("database snapshot is only %d bytes", size)
	}
	if _, err := m.OpenFile(ctx, op1, id, name); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	bufs := map[*byte]int{}
	err := m.Read(ctx, op1, id, MinChunk, func(off int64, p []byte) error {
		bufs[unsafe.SliceData(p)]++
		got.Write(p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bufs) != 1 {
		t.Fatalf("%d chunks were read into %d different buffers, want 1", size/MinChunk+1, len(bufs))
	}
	if !bytes.Equal(got.Bytes(), pinnedFile(t, name, size)) {
		t.Fatalf("streamed %d bytes that differ from the pinned database file", got.Len())
	}
	integrity, _, requests := sqliteMeta(t, got.Bytes())
	if integrity != "ok" || requests < 400 {
		t.Fatalf("streamed snapshot: integrity_check %q, %d requests", integrity, requests)
	}
	if _, err := m.End(ctx, op1, id, true); err != nil {
		t.Fatal(err)
	}
}

// TestGRPCStreamWithReusedBuffer: over real gRPC (TLS on loopback), whose
// Send returns before the bytes are on the wire, a database streamed in
// many small chunks arrives intact although the server reads every chunk
// into the memory of the one before: Send keeps a copy, never the
// caller's bytes. The client checks each chunk against the pinned file as
// it arrives.
func TestGRPCStreamWithReusedBuffer(t *testing.T) {
	ts := startServer(t, 0)
	db := ts.CA.Store()
	writeParallel(t, db, 3000)
	cl, _ := client(t, ts, ts.CredsDir)
	ctx := context.Background()
	stop := writer(t, db)
	defer stop()
	prep, err := cl.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	if err != nil {
		t.Fatal(err)
	}
	sid := prep.SessionId
	names, err := cl.GetDatabaseNames(ctx, &certsrvv1.SessionRequest{SessionId: sid})
	if err != nil {
		t.Fatal(err)
	}
	name, size := names.Files[0].Name, names.Files[0].Size
	if size < 16*MinChunk {
		t.Fatalf("database snapshot is only %d bytes", size)
	}
	want := pinnedFile(t, name, size)
	if _, err := cl.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: sid, Name: name}); err != nil {
		t.Fatal(err)
	}
	st, err := cl.ReadFile(ctx, &certsrvv1.ReadFileRequest{SessionId: sid, ChunkSize: MinChunk})
	if err != nil {
		t.Fatal(err)
	}
	var next int64
	chunks := 0
	for {
		c, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n := int64(len(c.Data))
		if c.Offset != next || n == 0 || next+n > size {
			t.Fatalf("chunk %d: %d bytes at offset %d, want offset %d within %d bytes", chunks, n, c.Offset, next, size)
		}
		if !bytes.Equal(c.Data, want[next:next+n]) {
			t.Fatalf("chunk %d at offset %d differs from the pinned database file", chunks, next)
		}
		next += n
		chunks++
	}
	if next != size || chunks < 16 {
		t.Fatalf("streamed %d bytes in %d chunks, want %d bytes in at least 16", next, chunks, size)
	}
	if _, err := cl.End(ctx, &certsrvv1.EndRequest{SessionId: sid, Abort: true}); err != nil {
		t.Fatal(err)
	}
}

// CloseFile while a read is still streaming (the client dropped the stream
// and the server has not noticed yet) ends that read and closes the file.
func TestCloseFileEndsARead(t *testing.T) {
	db := newDB(t)
	write(t, db, 400)
	m, _ := newManager(t, db)
	ctx := context.Background()
	id, names := prepareFull(t, m, op1)
	if _, err := m.OpenFile(ctx, op1, id, names[0].Name); err != nil {
		t.Fatal(err)
	}
	sending := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		first := true
		readDone <- m.Read(ctx, op1, id, MinChunk, func(off int64, p []byte) error {
			if first {
				first = false
				close(sending)
			}
			time.Sleep(20 * time.Millisecond) // a slow client
			return nil
		})
	}()
	<-sending
	if err := m.CloseFile(ctx, op1, id, MinChunk); err != nil {
		t.Fatalf("CloseFile during a read: %v", err)
	}
	if err := <-readDone; err == nil {
		t.Fatal("the read went on to the end after CloseFile")
	}
	// The file is closed: the session goes on, and the read counts for
	// nothing, so End records nothing.
	if _, err := m.OpenFile(ctx, op1, id, names[0].Name); err != nil {
		t.Fatalf("OpenFile after CloseFile: %v", err)
	}
	res, err := m.End(ctx, op1, id, false)
	if res.Recorded || err == nil || !strings.Contains(err.Error(), "not read to its end") {
		t.Fatalf("End after a half-read file: recorded %v, %v; want nothing recorded and why", res.Recorded, err)
	}
}

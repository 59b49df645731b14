package certadm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"

	"google.golang.org/grpc"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// Chunk sizes for reading a backup file over gRPC. The readHint of
// OpenFile is the chunk size the server is asked to send, clamped to
// MinChunkSize .. MaxChunkSize; zero means DefaultChunkSize. The server
// clamps to the same range: MaxChunkSize is 4 MiB less 1 KiB, so that a
// chunk message fits gRPC's default 4 MiB limit. Over the HTTP/1.1 stream
// the file arrives as one body and the hint plays no part.
const (
	MinChunkSize     = 64 << 10
	MaxChunkSize     = 4<<20 - 1<<10
	DefaultChunkSize = 1 << 20
)

// chunkSize clamps a read hint; readHint must not be negative.
func chunkSize(readHint int) int32 {
	switch {
	case readHint == 0:
		return DefaultChunkSize
	case readHint < MinChunkSize:
		return MinChunkSize
	case readHint > MaxChunkSize:
		return MaxChunkSize
	}
	return int32(readHint)
}

// BackupFile is a file of a backup session opened for reading
// (CertSrvBackupOpenFile, CertSrvBackupRead, CertSrvBackupClose). It is an
// io.ReadCloser whose content arrives as one stream of chunks from the
// server. Read returns io.EOF only after exactly Size bytes arrived and the
// server ended the stream without an error; a stream that ends early fails
// with ErrTruncatedFile, one that skips or repeats bytes or sends more than
// Size fails with ErrInvalidData, and a log generation that fails the
// server's verification while it is served fails with ErrLogFileCorrupt.
// Errors are sticky: every later Read returns the same error. A BackupFile
// is for one goroutine at a time.
type BackupFile struct {
	b      *BackupContext
	name   string
	size   int64
	op     string
	ctx    context.Context // derived from the OpenFile context; cancel ends the stream
	cancel context.CancelFunc
	chunk  int32
	stream grpc.ServerStreamingClient[certsrvv1.FileChunk] // nil until the first Read
	msg    *certsrvv1.FileChunk                            // every chunk is received into it, reusing its Data

	resp    *http.Response // the HTTP/1.1 stream (rawread.go), nil until the first Read or over gRPC
	rawBuf  []byte         // resp's bytes are read into it
	rawDone bool           // resp ended with an OK status after Size bytes

	buf  []byte // received, not yet returned (a part of msg.Data)
	next int64  // offset of the next byte the stream must deliver
	done bool   // the stream ended cleanly after Size bytes
	err  error  // sticky

	closeOnce sync.Once
	closeErr  error
}

// OpenFile opens name, exactly as DatabaseNames or BackupLogs listed it
// (CertSrvBackupOpenFile). The first Read starts the stream of its
// content: over the admin port's HTTP/1.1 stream when the server offers it
// (the whole file as one body), else over gRPC's ReadFile, whose chunks
// readHint sizes: it is clamped to MinChunkSize .. MaxChunkSize and 0 means
// DefaultChunkSize. A negative readHint gives ErrInvalidArg. Either way
// Read and WriteTo deliver the same bytes. ctx governs the whole life of
// the file: once it is cancelled or its deadline passes, every later Read
// fails with an error that matches context.Canceled or
// context.DeadlineExceeded (HRESULT ERROR_CANCELLED or ERROR_TIMEOUT), even
// when bytes had already arrived. One file may be open at a time; opening
// a second before closing the first gives ErrAlreadyOpen. The caller must
// Close the file.
func (b *BackupContext) OpenFile(ctx context.Context, name string, readHint int) (*BackupFile, error) {
	op := "open " + name
	if readHint < 0 {
		return nil, newError(condInvalidArg, op, "negative read hint %d", readHint)
	}
	if err := b.active(op); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.open != nil {
		other := b.open.name
		b.mu.Unlock()
		return nil, newError(condAlreadyOpen, op, "%s is still open; close it first", other)
	}
	b.mu.Unlock()
	r, err := b.c.backup.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: b.id, Name: name})
	if err != nil {
		return nil, fromRPC(ctx, op, err)
	}
	if r.GetSize() < 0 {
		return nil, newError(condInvalidData, op, "server announced size %d", r.GetSize())
	}
	sctx, cancel := context.WithCancel(ctx)
	f := &BackupFile{b: b, name: name, size: r.GetSize(), op: "read " + name, ctx: sctx, cancel: cancel, chunk: chunkSize(readHint)}
	b.mu.Lock()
	b.open = f
	b.mu.Unlock()
	return f, nil
}

// Name returns the name the file was opened with.
func (f *BackupFile) Name() string { return f.name }

// Size returns the file's size in bytes as the server announced it at open.
// Reading the file to io.EOF delivers exactly this many bytes.
func (f *BackupFile) Size() int64 { return f.size }

// Offset returns the number of bytes received from the server so far.
func (f *BackupFile) Offset() int64 { return f.next - int64(len(f.buf)) }

// fill makes buf non-empty, or returns io.EOF at a verified end, or the
// sticky error.
// rawNext reports whether the next bytes come from the HTTP/1.1 stream:
// nothing is buffered or failed, and the stream is open or may be.
func (f *BackupFile) rawNext() bool {
	return len(f.buf) == 0 && f.err == nil && !f.done &&
		(f.resp != nil || (f.stream == nil && f.b.c.raw != nil && !f.b.c.raw.off.Load()))
}

// rawSettled reports whether err, from a read of the HTTP/1.1 stream, is
// the read's outcome: nil, io.EOF, or a failure it makes sticky. It is
// false for errRawRefused, after which the file is read over gRPC.
func (f *BackupFile) rawSettled(err error) bool {
	switch {
	case err == nil || err == io.EOF:
		return true
	case errors.Is(err, errRawRefused):
		return false
	}
	f.err = err
	return true
}

// cancelled makes the file's context's end its sticky error, unless the
// file ended or failed already: a cancelled file fails every later Read,
// even with bytes already received.
func (f *BackupFile) cancelled() error {
	if f == nil || f.b == nil {
		return newError(condInvalidArg, "read", "no open file: use the BackupFile OpenFile returned")
	}
	if f.err == nil && !f.done {
		if err := f.ctx.Err(); err != nil {
			f.buf = nil
			f.err = fromRPC(f.ctx, f.op, err)
		}
	}
	return f.err
}

func (f *BackupFile) fill() error {
	if err := f.cancelled(); err != nil {
		return err
	}
	if f.rawNext() {
		if err := f.rawFill(); f.rawSettled(err) {
			return err
		}
		// The server speaks gRPC only: go on below.
	}
	for len(f.buf) == 0 {
		if f.err != nil {
			return f.err
		}
		if f.done {
			return io.EOF
		}
		if f.stream == nil {
			stream, err := f.b.c.backup.ReadFile(f.ctx, &certsrvv1.ReadFileRequest{SessionId: f.b.id, ChunkSize: f.chunk}, readFileCallOptions()...)
			if err != nil {
				f.err = fromRPC(f.ctx, f.op, err)
				return f.err
			}
			f.stream = stream
			f.msg = new(certsrvv1.FileChunk)
		}
		// The previous chunk is consumed (buf is empty): its memory is
		// reused for this one.
		chunk := f.msg
		err := f.stream.RecvMsg(chunk)
		switch {
		case err == io.EOF && f.next == f.size:
			f.done = true
			return io.EOF
		case err == io.EOF:
			f.err = newError(condTruncated, f.op, "stream ended after %d of %d bytes", f.next, f.size)
		case err != nil:
			f.err = fromRPC(f.ctx, f.op, err)
		case chunk.GetOffset() != f.next:
			f.err = newError(condInvalidData, f.op, "chunk at offset %d, expected offset %d", chunk.GetOffset(), f.next)
		case int64(len(chunk.GetData())) > f.size-f.next:
			f.err = newError(condInvalidData, f.op, "chunk of %d bytes at offset %d runs past the announced size %d", len(chunk.GetData()), f.next, f.size)
		default:
			f.buf = chunk.GetData()
			f.next += int64(len(f.buf))
		}
	}
	return nil
}

// Read reads up to len(p) bytes (CertSrvBackupRead). It returns io.EOF
// only at the verified end of the file; see BackupFile for the errors.
func (f *BackupFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.cancelled(); err != nil {
		return 0, err
	}
	if f.rawNext() {
		// Straight from the HTTP/1.1 stream into p: no copy of our own.
		if n, err := f.rawRead(p); f.rawSettled(err) {
			return n, err
		}
	}
	if err := f.fill(); err != nil {
		return 0, err
	}
	n := copy(p, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

// WriteTo writes the rest of the file to w without an intermediate copy,
// so io.Copy uses it. It returns the number of bytes written and nil at the
// verified end of the file, or the first error from the stream or from w.
func (f *BackupFile) WriteTo(w io.Writer) (int64, error) {
	if err := f.cancelled(); err != nil {
		return 0, err
	}
	var total int64
	for {
		if err := f.fill(); err == io.EOF {
			return total, nil
		} else if err != nil {
			return total, err
		}
		n, err := w.Write(f.buf)
		total += int64(n)
		f.buf = f.buf[n:]
		if err != nil {
			return total, err
		}
	}
}

// Close ends the stream and closes the file on the server
// (CertSrvBackupClose), bounded by 30 seconds, telling it how many bytes
// Read delivered (Offset). Closing a file before its end is allowed, but
// the server then counts the file as not copied: it refuses TruncateLogs
// and End does not record the backup, however much of the file the server
// had already sent. Close after Close returns nil; Read after Close fails.
func (f *BackupFile) Close() error {
	if f == nil || f.b == nil {
		return nil
	}
	f.closeOnce.Do(func() {
		consumed := f.Offset()
		f.cancel()
		if f.resp != nil {
			f.resp.Body.Close()
		}
		f.buf = nil
		if f.err == nil {
			f.err = newError(condSequence, f.op, "%w", os.ErrClosed)
		}
		f.b.mu.Lock()
		if f.b.open == f {
			f.b.open = nil
		}
		f.b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), closeTimeout)
		defer cancel()
		_, err := f.b.c.backup.CloseFile(ctx, &certsrvv1.CloseFileRequest{SessionId: f.b.id, Consumed: consumed})
		f.closeErr = fromRPC(ctx, "close "+f.name, err)
	})
	return f.closeErr
}

package certadm

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/status"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The bytes of a backup file travel, when the server offers it, as one
// HTTP/1.1 response on the admin port (the same TLS 1.3 handshake, client
// certificate and role check as every RPC; ALPN "http/1.1" instead of
// "h2"), not as a stream of gRPC messages: no HTTP/2 framing, no protobuf,
// a third less CPU for a full backup. A server that does not offer it (an
// older one, or one suspended for restore) refuses the protocol in the
// handshake, and the client then uses Backup/ReadFile for the rest of its
// life. The path and the status encoding are the server's
// (internal/server/rawread.go).
const (
	rawReadPath   = "/certsrv.v1.Backup/ReadFile.raw"
	rawReadStatus = "Certsrv-Status-Bin"
	rawReadOffset = "Certsrv-Offset"
	rawReadBuffer = 1 << 20
)

// rawTransport is a Client's HTTP/1.1 side.
type rawTransport struct {
	addr   string
	client *http.Client
	off    atomic.Bool // the server refused http/1.1: use gRPC
}

func newRawTransport(addr string, cfg *tls.Config) *rawTransport {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	tr := &http.Transport{
		DialContext:         dialReadAhead,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   false,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		ReadBufferSize:      256 << 10,
		DisableCompression:  true,
		Proxy:               nil, // the admin port is never reached through a proxy
	}
	return &rawTransport{addr: addr, client: &http.Client{Transport: tr}}
}

// socketReadAhead is the read-ahead buffer under TLS on the HTTP/1.1 side.
const socketReadAhead = 256 << 10

// dialReadAhead dials the admin port for the HTTP/1.1 side and reads the
// socket through a large buffer: TLS asks the connection for one record at
// a time, 16 KiB, and a file stream of 1 GiB would otherwise be 65,000
// socket reads, each with its TCP acknowledgement and often a wait for
// the next record; from a buffer of 256 KiB it is one read of whatever has
// arrived, up to 256 KiB (1 MiB measured the same).
func dialReadAhead(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &readAheadConn{Conn: c, r: bufio.NewReaderSize(c, socketReadAhead)}, nil
}

// readAheadConn is a net.Conn whose reads come through r.
type readAheadConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readAheadConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (t *rawTransport) close() {
	if t != nil {
		t.client.CloseIdleConnections()
	}
}

// errRawRefused means the server does not speak the HTTP/1.1 side.
var errRawRefused = errors.New("the server does not serve backup files over HTTP/1.1")

// open starts the raw stream of the session's open file, expecting it to
// continue at offset next. It returns errRawRefused when the server does
// not offer the protocol (the caller falls back to gRPC), a *Error for a
// refusal the server explained, or another error for a broken transfer.
func (t *rawTransport) open(ctx context.Context, op, session string, next int64) (*http.Response, error) {
	// The chunk size only sets how much the server reads and writes at a
	// time here (no message has to fit it): the largest is cheapest.
	q := url.Values{"session": {session}, "chunk": {strconv.Itoa(MaxChunkSize)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+t.addr+rawReadPath+"?"+q.Encode(), nil)
	if err != nil {
		return nil, newError(condInvalidArg, op, "%v", err)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fromRPC(ctx, op, ctx.Err())
		}
		// No answer at all: the server refused the protocol in the
		// handshake (refusedALPN), or ignored ALPN and closed the
		// connection on an HTTP/1.1 request it does not speak. gRPC is
		// then the way, and reports any real network failure itself; a
		// server that did start streaming is caught there by the chunk
		// offsets.
		t.off.Store(true)
		return nil, errRawRefused
	}
	if st := resp.Header.Get(rawReadStatus); st != "" {
		// The call failed before its first byte (or the file was empty).
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err := rawStatusError(ctx, op, st); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			t.off.Store(true)
			return nil, errRawRefused
		}
		return nil, newError(condUnexpected, op, "server answered %s", resp.Status)
	}
	if got := resp.Header.Get(rawReadOffset); got != strconv.FormatInt(next, 10) {
		resp.Body.Close()
		return nil, newError(condInvalidData, op, "stream starts at offset %s, expected offset %d", got, next)
	}
	return resp, nil
}

// rawStatusError decodes a RawReadStatus value: nil for OK, else the error
// as a gRPC call would have returned it.
func rawStatusError(ctx context.Context, op, v string) error {
	code, enc, ok := strings.Cut(v, ":")
	if !ok {
		return newError(condInvalidData, op, "unreadable status from the server: %q", v)
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return newError(condInvalidData, op, "unreadable status from the server: %v", err)
	}
	var st status.Status
	if err := proto.Unmarshal(b, &st); err != nil {
		return newError(condInvalidData, op, "unreadable status from the server: %v", err)
	}
	if strconv.Itoa(int(st.GetCode())) != code {
		return newError(condInvalidData, op, "unreadable status from the server: code %s, status %d", code, st.GetCode())
	}
	if st.GetCode() == 0 {
		return nil
	}
	return fromRPC(ctx, op, grpcstatus.ErrorProto(&st))
}

// rawFill is BackupFile.fill for the HTTP/1.1 stream: it makes buf
// non-empty, or returns io.EOF at a verified end, or an error
// (errRawRefused: use gRPC).
func (f *BackupFile) rawFill() error {
	for len(f.buf) == 0 {
		if f.rawBuf == nil {
			f.rawBuf = make([]byte, min(int64(rawReadBuffer), max(f.size-f.next, 1)))
		}
		n, err := f.rawRead(f.rawBuf)
		if err != nil {
			return err
		}
		f.buf = f.rawBuf[:n]
	}
	return nil
}

// rawRead reads the next bytes of the HTTP/1.1 stream into p (opening the
// stream first if needed): n > 0 and nil, or io.EOF at the verified end,
// or an error (errRawRefused: the server does not offer the stream). Bytes
// read together with an error are not delivered.
func (f *BackupFile) rawRead(p []byte) (int, error) {
	for {
		if f.rawDone {
			f.done = true
			return 0, io.EOF
		}
		if f.resp == nil {
			resp, err := f.b.c.raw.open(f.ctx, f.op, f.b.id, f.next)
			switch {
			case err != nil:
				return 0, err
			case resp == nil: // an empty file, ended with OK
				if f.next != f.size {
					return 0, newError(condTruncated, f.op, "stream ended after %d of %d bytes", f.next, f.size)
				}
				f.done = true
				return 0, io.EOF
			}
			f.resp = resp
		}
		n, err := f.resp.Body.Read(p)
		if int64(n) > f.size-f.next {
			return 0, newError(condInvalidData, f.op, "the stream runs past the announced size %d", f.size)
		}
		f.next += int64(n)
		switch {
		case err == io.EOF:
			f.resp.Body.Close()
			st := f.resp.Trailer.Get(rawReadStatus)
			if st == "" {
				return 0, connectionLost(newError(condTruncated, f.op, "stream ended after %d of %d bytes without a status", f.next, f.size))
			}
			if serr := rawStatusError(f.ctx, f.op, st); serr != nil {
				return 0, serr
			}
			if f.next != f.size {
				return 0, newError(condTruncated, f.op, "stream ended after %d of %d bytes", f.next, f.size)
			}
			f.rawDone = true
		case err != nil:
			if ctxErr := f.ctx.Err(); ctxErr != nil {
				return 0, fromRPC(f.ctx, f.op, ctxErr)
			}
			return 0, connectionLost(newError(condTruncated, f.op, "stream broke after %d of %d bytes: %v", f.next, f.size, err))
		}
		if n > 0 {
			return n, nil
		}
	}
}

// connectionLost marks a truncated stream whose connection broke (the
// server stopped or died, or the network failed) as also matching
// ErrUnavailable, so a program can tell it from a short but orderly end.
func connectionLost(e *Error) *Error {
	e.kinds = []error{ErrTruncatedFile, ErrUnavailable}
	return e
}

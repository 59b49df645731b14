package server

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// RawReadPath is the HTTP/1.1 path on the admin port that streams the
// content of the file a backup session has open: GET with the query
// parameters session (the session id) and chunk (the read size in bytes,
// as ReadFile's chunk_size). It is Backup/ReadFile without gRPC: the same
// TLS handshake and client certificate, the same role check (the caller is
// authorized exactly as for Backup/ReadFile), the same session rules, and
// the body is the file's bytes from the session's current offset to the
// end. The outcome comes in the RawReadStatus trailer (or header, when the
// call fails before the first byte): the gRPC status code in decimal, a
// colon, and the google.rpc.Status in protobuf, base64 — the same status
// Backup/ReadFile would return; absent or unreadable means the transfer
// broke off.
const (
	RawReadPath   = "/certsrv.v1.Backup/ReadFile.raw"
	RawReadStatus = "Certsrv-Status-Bin"
	RawReadOffset = "Certsrv-Offset" // the offset of the body's first byte
)

// rawWriteStall is how long one chunk's write may wait for a client that
// does not read, the default backup lease.
const rawWriteStall = 2 * time.Minute

// rawReader is implemented by a backup service that can stream a file's
// bytes to any sink (backup.Service).
type rawReader interface {
	ReadRaw(ctx context.Context, sessionID string, chunk int, send func(off int64, p []byte) error) error
}

// rawReadHandler serves RawReadPath on the HTTP/1.1 side of the admin port.
type rawReadHandler struct{ s *Server }

func (h rawReadHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	start := time.Now()
	const logName = certsrvv1.Backup_ReadFile_FullMethodName + " (http/1.1)"
	if r.URL.Path != RawReadPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	if r.TLS != nil {
		addr, _ := net.ResolveTCPAddr("tcp", r.RemoteAddr)
		ctx = peer.NewContext(ctx, &peer.Peer{Addr: addr, AuthInfo: credentials.TLSInfo{
			State:          *r.TLS,
			CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		}})
	}
	// refuse answers a call that fails before its first byte.
	refuse := func(ctx context.Context, err error) {
		s.logCall(ctx, logName, start, err)
		writeRawStatus(w, err, false)
	}
	actx, err := s.authorize(ctx, certsrvv1.Backup_ReadFile_FullMethodName)
	if err != nil {
		refuse(ctx, err)
		return
	}
	rr, ok := s.backup.(rawReader)
	if !ok {
		refuse(actx, apierr.New(apierr.NotImplemented, "this server streams backup files over gRPC only"))
		return
	}
	q := r.URL.Query()
	chunk, err := strconv.Atoi(q.Get("chunk"))
	if err != nil || chunk < 0 {
		refuse(actx, apierr.New(apierr.InvalidArg, "chunk %q is not a size in bytes", q.Get("chunk")))
		return
	}
	w.Header().Set("Trailer", RawReadStatus)
	w.Header().Set("Content-Type", "application/octet-stream")
	started := false
	rc := http.NewResponseController(w)
	err = rr.ReadRaw(actx, q.Get("session"), chunk, func(off int64, p []byte) error {
		// A client that stops reading must not hold the session's read
		// (and this goroutine) forever: each chunk gets rawWriteStall.
		_ = rc.SetWriteDeadline(time.Now().Add(rawWriteStall))
		if !started {
			// The client checks that the stream continues where it
			// stopped receiving.
			w.Header().Set(RawReadOffset, strconv.FormatInt(off, 10))
			w.WriteHeader(http.StatusOK)
			started = true
		}
		cc, _ := ctx.Value(corkKey{}).(*corkConn)
		if cc == nil {
			_, err := w.Write(p)
			return err
		}
		// One system call for the chunk's TLS records, not one each.
		cc.cork()
		_, err := w.Write(p)
		if ferr := rc.Flush(); err == nil {
			err = ferr
		}
		if uerr := cc.uncork(); err == nil {
			err = uerr
		}
		return err
	})
	s.logCall(actx, logName, start, err)
	writeRawStatus(w, err, started)
}

// writeRawStatus sends the outcome: as a header with an error status code
// before any body, or as the trailer after it.
func writeRawStatus(w http.ResponseWriter, err error, started bool) {
	st := status.Convert(apierr.Status(err))
	b, merr := proto.Marshal(st.Proto())
	if merr != nil {
		b = nil
	}
	// "<code>:<status>": never empty, even for OK, whose protobuf is.
	w.Header().Set(RawReadStatus, strconv.Itoa(int(st.Code()))+":"+base64.StdEncoding.EncodeToString(b))
	if !started {
		w.Header().Del("Trailer")
		code := http.StatusOK
		if err != nil {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
	}
}

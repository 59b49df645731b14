package certadm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/certsrv/certsrv/internal/apierr"
)

// rawStatus encodes err as the server's RawReadStatus value.
func rawStatus(err error) string {
	st := status.Convert(apierr.Status(err))
	b, _ := proto.Marshal(st.Proto())
	return strconv.Itoa(int(st.Code())) + ":" + base64.StdEncoding.EncodeToString(b)
}

// rawFile returns a BackupFile of size bytes whose content comes from
// handler over HTTP/1.1 and TLS, as from a server's admin port.
func rawFile(t *testing.T, size int64, handler http.HandlerFunc) *BackupFile {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	srv.EnableHTTP2 = false
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} // the test's own server
	c := &Client{raw: newRawTransport(strings.TrimPrefix(srv.URL, "https://"), cfg)}
	t.Cleanup(c.raw.close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b := &BackupContext{c: c, id: "session-1"}
	return &BackupFile{b: b, name: "f", size: size, op: "read f", ctx: ctx, cancel: cancel, chunk: 65536}
}

func TestRawStream(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // 4.8 MB
	size := int64(len(data))
	ok := rawStatus(nil)
	body := func(offset string, b []byte, trailer string, cut bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != rawReadPath || r.URL.Query().Get("session") != "session-1" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Trailer", rawReadStatus)
			w.Header().Set(rawReadOffset, offset)
			w.WriteHeader(http.StatusOK)
			w.Write(b)
			if cut {
				panic(http.ErrAbortHandler)
			}
			if trailer != "" {
				w.Header().Set(rawReadStatus, trailer)
			}
		}
	}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    error // nil: the whole file
		lost    bool  // the connection broke: the error matches ErrUnavailable too
	}{
		{"whole file", body("0", data, ok, false), nil, false},
		{"cut off mid-stream", body("0", data[:size/2], "", true), ErrTruncatedFile, true},
		{"ends early with OK", body("0", data[:size-1], ok, false), ErrTruncatedFile, false},
		{"ends without a status", body("0", data, "", false), ErrTruncatedFile, true},
		{"longer than announced", body("0", append(append([]byte{}, data...), 'x'), ok, false), ErrInvalidData, false},
		{"starts at another offset", body("512", data, ok, false), ErrInvalidData, false},
		{"server error after data", body("0", data[:1000], rawStatus(apierr.New(apierr.LogFileCorrupt, "log generation 7 is damaged")), false), ErrLogFileCorrupt, false},
		{"garbled status", body("0", data, "0:not base64!", false), ErrInvalidData, false},
		{"refused before the first byte", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(rawReadStatus, rawStatus(apierr.New(apierr.AccessDenied, "principal may not read")))
			w.WriteHeader(http.StatusBadRequest)
		}, ErrAccessDenied, false},
	}
	for _, c := range cases {
		for _, via := range []string{"WriteTo", "Read"} {
			t.Run(c.name+"/"+via, func(t *testing.T) {
				f := rawFile(t, size, c.handler)
				var out bytes.Buffer
				var src io.Reader = f
				if via == "Read" {
					src = struct{ io.Reader }{f} // hide WriteTo: Read straight into the caller's buffer
				}
				_, err := io.Copy(&out, src)
				switch {
				case c.want == nil && err != nil:
					t.Fatalf("copy: %v", err)
				case c.want == nil && !bytes.Equal(out.Bytes(), data):
					t.Fatalf("got %d bytes, not the file", out.Len())
				case c.want != nil && !errors.Is(err, c.want):
					t.Fatalf("copy: %v, want %v", err, c.want)
				case c.want != nil && errors.Is(err, ErrUnavailable) != c.lost:
					t.Fatalf("copy: %v; matches ErrUnavailable: %v, want %v", err, errors.Is(err, ErrUnavailable), c.lost)
				}
				if c.want != nil {
					// Errors are sticky.
					if _, err2 := f.Read(make([]byte, 10)); !errors.Is(err2, c.want) {
						t.Fatalf("second read: %v, want %v again", err2, c.want)
					}
				}
				if f.b.c.raw.off.Load() {
					t.Fatal("the client gave up HTTP/1.1 for a server that speaks it")
				}
			})
		}
	}
}

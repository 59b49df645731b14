package server_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/backuptest"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/testserver"
)

// rawAnswer is one answer of the HTTP/1.1 side of the admin port.
type rawAnswer struct {
	status int
	code   apierr.Code // from the status header or trailer; zero for OK
	ok     bool        // a status header or trailer said OK
	offset string
	body   []byte
}

// fileGet calls method path?query on s's admin port over HTTP/1.1 with the
// credential in creds and decodes the outcome.
func fileGet(t *testing.T, s *testserver.Server, creds, method, path string, q url.Values) rawAnswer {
	t.Helper()
	cfg, err := testserver.ClientTLS(creds)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: false}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctxT(t), method, "https://"+s.Addr+path+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	a := rawAnswer{status: resp.StatusCode, offset: resp.Header.Get(server.RawReadOffset)}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("read the body: %v", err)
	}
	v := resp.Header.Get(server.RawReadStatus)
	if v == "" {
		v = resp.Trailer.Get(server.RawReadStatus)
	}
	if v != "" {
		c, enc, _ := strings.Cut(v, ":")
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			t.Fatalf("status %q: %v", v, err)
		}
		var st spb.Status
		if err := proto.Unmarshal(b, &st); err != nil {
			t.Fatalf("status %q: %v", v, err)
		}
		if c != strconv.Itoa(int(st.GetCode())) {
			t.Fatalf("status %q: code prefix and status disagree", v)
		}
		if st.GetCode() == 0 {
			a.ok = true
		} else {
			a.code = apierr.FromStatus(status.ErrorProto(&st)).Code
		}
	}
	return a
}

func TestRawReadServesOnlyTheOpenFileToItsOperator(t *testing.T) {
	s := testserver.Start(t, backuptest.Service(t))
	ctx := ctxT(t)
	admin := dial(t, s, s.CredsDir)
	reader := grantRPC(t, ctx, s, admin.admin, "raw-reader", "Reader")
	other := grantRPC(t, ctx, s, admin.admin, "raw-operator", "Operator")
	stranger, err := s.Unregistered("raw-stranger")
	if err != nil {
		t.Fatal(err)
	}

	// No session yet.
	q := url.Values{"session": {"no-such-session"}, "chunk": {"65536"}}
	if a := fileGet(t, s, s.CredsDir, http.MethodGet, server.RawReadPath, q); a.ok || a.code == (apierr.Code{}) || len(a.body) != 0 {
		t.Fatalf("unknown session: %+v, want a refusal and no bytes", a)
	}

	prep, err := admin.backup.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	if err != nil {
		t.Fatal(err)
	}
	id := prep.GetSessionId()
	q = url.Values{"session": {id}, "chunk": {"65536"}}
	// A session with no open file.
	if a := fileGet(t, s, s.CredsDir, http.MethodGet, server.RawReadPath, q); a.code != apierr.BackupSequence || len(a.body) != 0 {
		t.Fatalf("no open file: %+v, want %v", a, apierr.BackupSequence)
	}
	names, err := admin.backup.GetDatabaseNames(ctx, &certsrvv1.SessionRequest{SessionId: id})
	if err != nil || len(names.GetFiles()) != 1 {
		t.Fatalf("database names: %v, %v", names, err)
	}
	open, err := admin.backup.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: id, Name: names.GetFiles()[0].GetName()})
	if err != nil {
		t.Fatal(err)
	}

	// Neither a caller without the Operator role, nor an unregistered
	// credential, nor another operator gets a byte of it.
	for _, c := range []struct {
		who, creds string
		want       apierr.Code
	}{
		{"Reader", reader, apierr.AccessDenied},
		{"unregistered", stranger, apierr.AccessDenied},
		{"another operator", other, apierr.AccessDenied},
	} {
		a := fileGet(t, s, c.creds, http.MethodGet, server.RawReadPath, q)
		if a.code != c.want || a.status == http.StatusOK || len(a.body) != 0 {
			t.Errorf("%s: %+v, want %v and no bytes", c.who, a, c.want)
		}
	}
	// Only GET on the one path.
	if a := fileGet(t, s, s.CredsDir, http.MethodPost, server.RawReadPath, q); a.status != http.StatusMethodNotAllowed || len(a.body) > 100 {
		t.Errorf("POST: %+v, want 405", a)
	}
	if a := fileGet(t, s, s.CredsDir, http.MethodGet, "/certsrv.v1.Admin/Ping", q); a.status != http.StatusNotFound {
		t.Errorf("another path: %+v, want 404", a)
	}
	if a := fileGet(t, s, s.CredsDir, http.MethodGet, server.RawReadPath, url.Values{"session": {id}, "chunk": {"-1"}}); a.code != apierr.InvalidArg {
		t.Errorf("negative chunk: %+v, want %v", a, apierr.InvalidArg)
	}

	// The session's operator gets the whole file, from offset 0, with an
	// OK status after the last byte.
	a := fileGet(t, s, s.CredsDir, http.MethodGet, server.RawReadPath, q)
	if a.status != http.StatusOK || !a.ok || a.offset != "0" {
		t.Fatalf("the operator's read: status %d ok %v offset %q code %v", a.status, a.ok, a.offset, a.code)
	}
	if int64(len(a.body)) != open.GetSize() || !bytes.HasPrefix(a.body, []byte("SQLite format 3\x00")) {
		t.Fatalf("read %d bytes (prefix %q), want the %d-byte database", len(a.body), a.body[:min(16, len(a.body))], open.GetSize())
	}
	// The file is read: a second read streams nothing more.
	if a := fileGet(t, s, s.CredsDir, http.MethodGet, server.RawReadPath, q); !a.ok || len(a.body) != 0 {
		t.Fatalf("read after the end: %+v, want OK and no bytes", a)
	}
	if _, err := admin.backup.End(ctx, &certsrvv1.EndRequest{SessionId: id, Abort: true}); err != nil {
		t.Fatal(err)
	}
}

// A client that offers only HTTP/2 (every gRPC client) still reaches gRPC
// on the same port, and one that offers no ALPN at all does too.
func TestAdminPortWithoutALPN(t *testing.T) {
	s := testserver.Start(t)
	cfg, err := testserver.ClientTLS(s.CredsDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = nil
	c, err := tls.Dial("tcp", s.Addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "" {
		t.Fatalf("negotiated %q with a client that offered nothing", p)
	}
	admin := dial(t, s, s.CredsDir)
	if _, err := admin.admin.Ping(ctxT(t), &certsrvv1.PingRequest{}); err != nil {
		t.Fatalf("gRPC over the shared port: %v", err)
	}
}

// The HTTP/1.1 side needs the same client certificate as gRPC, and a
// client that speaks no TLS at all gets nothing and does not disturb the
// port.
func TestAdminPortRefusesWithoutCertificate(t *testing.T) {
	s := testserver.Start(t)
	cfg, err := testserver.ClientTLS(s.CredsDir)
	if err != nil {
		t.Fatal(err)
	}
	noCert := cfg.Clone()
	noCert.Certificates = nil
	noCert.GetClientCertificate = nil
	noCert.NextProtos = []string{"http/1.1"}
	c, err := tls.Dial("tcp", s.Addr, noCert)
	if err == nil {
		// TLS 1.3 reports the server's refusal at the first read.
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Write([]byte("GET " + server.RawReadPath + " HTTP/1.1\r\nHost: x\r\n\r\n"))
		if err == nil {
			_, err = c.Read(make([]byte, 1))
		}
		c.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate got an answer on the HTTP/1.1 side")
	}

	raw, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	raw.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	got := make([]byte, 512)
	n, _ := raw.Read(got)
	if strings.HasPrefix(string(got[:n]), "HTTP/1.1 2") {
		t.Fatalf("plain HTTP got an answer: %q", got[:n])
	}
	raw.Close()
	admin := dial(t, s, s.CredsDir)
	if _, err := admin.admin.Ping(ctxT(t), &certsrvv1.PingRequest{}); err != nil {
		t.Fatalf("the port stopped serving after a plain-text client: %v", err)
	}
}

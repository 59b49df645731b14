package wiretest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/certsrv/certsrv/internal/apierr"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// Server is a running stand-in endpoint.
type Server struct {
	// Addr is the listening address, "127.0.0.1:port".
	Addr   string
	PKI    *PKI
	Admin  *Admin
	Backup *Backup
}

// Start listens on 127.0.0.1:0 with TLS 1.3, requires client certificates
// signed by p's anchor, and serves fresh Admin and Backup doubles until the
// test ends.
func Start(t testing.TB, p *PKI) *Server {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.Anchor)
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{p.ServerCert.Raw}, PrivateKey: p.ServerKey, Leaf: p.ServerCert}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Addr:   lis.Addr().String(),
		PKI:    p,
		Admin:  &Admin{State: certsrvv1.ServerState_SERVER_STATE_ONLINE, recorder: recorder{errs: map[string]error{}}},
		Backup: &Backup{Files: map[string]*FileScript{}, recorder: recorder{errs: map[string]error{}}},
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	certsrvv1.RegisterAdminServer(g, s.Admin)
	certsrvv1.RegisterBackupServer(g, s.Backup)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return s
}

// Fail is an apierr status for code with message msg, ready to be returned
// by a handler.
func Fail(code apierr.Code, msg string) error {
	return apierr.Status(apierr.New(code, "%s", msg))
}

// Call is one request a double received.
type Call struct {
	Method string
	Req    proto.Message
}

// recorder keeps the calls and the scripted failures.
type recorder struct {
	mu    sync.Mutex
	calls []Call
	errs  map[string]error
}

// FailNext makes the next call of method return err.
func (r *recorder) FailNext(method string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[method] = err
}

// record notes a call and returns the scripted failure, if any.
func (r *recorder) record(method string, req proto.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, Call{method, proto.Clone(req)})
	err := r.errs[method]
	delete(r.errs, method)
	return err
}

// Last returns the last request method received, or nil.
func (r *recorder) Last(method string) proto.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.calls) - 1; i >= 0; i-- {
		if r.calls[i].Method == method {
			return r.calls[i].Req
		}
	}
	return nil
}

// Methods returns the methods called, in order.
func (r *recorder) Methods() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.calls))
	for i, c := range r.calls {
		out[i] = c.Method
	}
	return out
}

// Admin is the Admin double: it answers Ping only (every client call
// starts with one); the other operations are tested against the real
// server.
type Admin struct {
	certsrvv1.UnimplementedAdminServer
	recorder

	// State is what Ping reports.
	State certsrvv1.ServerState
}

func principal(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return ""
	}
	return ti.State.PeerCertificates[0].Subject.CommonName
}

// Ping answers with State and the caller's common name.
func (a *Admin) Ping(ctx context.Context, r *certsrvv1.PingRequest) (*certsrvv1.PingResponse, error) {
	if err := a.record("Ping", r); err != nil {
		return nil, err
	}
	return &certsrvv1.PingResponse{State: a.State, CaName: "Wire CA", Principal: principal(ctx), Roles: []string{"Administrator", "Operator"}, Version: "wiretest"}, nil
}

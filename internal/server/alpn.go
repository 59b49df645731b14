package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// The admin port speaks two protocols over the same TLS 1.3 handshake with
// the same client certificate: gRPC over HTTP/2 (ALPN "h2", every RPC) and
// plain HTTP/1.1 (ALPN "http/1.1") for one thing only, the bytes of the
// backup file a session has open (rawread.go). A file's content is the one
// bulk transfer of the API; over HTTP/1.1 it is a single response body,
// without HTTP/2 framing, flow control and the protobuf and gRPC copies,
// which cost about a third of a full backup's CPU.
//
// tlsMux owns the listener: it completes each handshake itself (in a
// goroutine per connection, bounded by handshakeTimeout) and hands the
// connection to the gRPC server or the HTTP/1.1 server by the protocol the
// client chose. A client that offers no ALPN goes to gRPC, as before.
const (
	alpnH2   = "h2"
	alpnHTTP = "http/1.1"

	handshakeTimeout = 10 * time.Second
)

type tlsMux struct {
	raw  net.Listener
	cfg  *tls.Config
	grpc *muxListener
	http *muxListener

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// newTLSMux wraps raw. cfg must require client certificates; its
// NextProtos are replaced by h2 and http/1.1.
func newTLSMux(raw net.Listener, cfg *tls.Config) *tlsMux {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{alpnH2, alpnHTTP}
	m := &tlsMux{raw: raw, cfg: cfg, done: make(chan struct{})}
	m.grpc = &muxListener{m: m, conns: make(chan net.Conn), closed: make(chan struct{})}
	m.http = &muxListener{m: m, conns: make(chan net.Conn), closed: make(chan struct{})}
	return m
}

// serve accepts connections until the raw listener fails or is closed, and
// returns that error.
func (m *tlsMux) serve() error {
	var delay time.Duration
	for {
		c, err := m.raw.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// A transient accept failure (EMFILE and the like):
				// back off as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			m.close()
			return err
		}
		delay = 0
		go m.handshake(c)
	}
}

func (m *tlsMux) handshake(c net.Conn) {
	tc := tls.Server(&corkConn{Conn: c}, m.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		tc.Close()
		return
	}
	to := m.grpc
	if tc.ConnectionState().NegotiatedProtocol == alpnHTTP {
		to = m.http
	}
	select {
	case to.conns <- tc:
	case <-to.closed:
		tc.Close()
	}
}

// close closes the raw listener, which ends serve; both child listeners
// then report net.ErrClosed.
func (m *tlsMux) close() error {
	m.closeOnce.Do(func() {
		m.closeErr = m.raw.Close()
		close(m.done)
	})
	return m.closeErr
}

// muxListener is the net.Listener each server accepts from.
type muxListener struct {
	m         *tlsMux
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.m.done:
		return nil, net.ErrClosed
	}
}

// Close stops this listener's accepts; closing the gRPC side (as the gRPC
// server does when it stops) also closes the port.
func (l *muxListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	if l == l.m.grpc {
		return l.m.close()
	}
	return nil
}

func (l *muxListener) Addr() net.Addr { return l.m.raw.Addr() }

// handshakenCreds are the gRPC server's transport credentials for
// connections tlsMux has already authenticated: the handshake is done, so
// ServerHandshake only reports its outcome, as gRPC's own TLS credentials
// would (credentials.TLSInfo with the verified chains), in an
// adminAuthInfo that also tells when the connection closes (connwatch.go).
type handshakenCreds struct{}

var errNotTLS = errors.New("connection did not come through the TLS listener")

func (handshakenCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil, errNotTLS
	}
	wc := &watchedConn{Conn: tc, closed: make(chan struct{})}
	return wc, adminAuthInfo{
		TLSInfo: credentials.TLSInfo{
			State:          tc.ConnectionState(),
			CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		},
		closed: wc.closed,
	}, nil
}

func (handshakenCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("server-side credentials")
}

func (handshakenCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.3"}
}

func (h handshakenCreds) Clone() credentials.TransportCredentials { return h }

func (handshakenCreds) OverrideServerName(string) error { return nil }

// corkBuffer bounds what a corked connection holds before it writes.
const corkBuffer = 1 << 20

// corkConn is the TCP connection under a TLS connection of the admin port.
// crypto/tls writes every record of at most 16 KiB with its own system
// call; a corked connection gathers the records of one large write and
// sends them with one call when uncorked (or when corkBuffer fills), which
// halves the CPU a server spends streaming a backup file. Only the
// HTTP/1.1 file stream corks, around each chunk it writes; everything else
// writes straight through.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	if len(c.buf)+len(p) > cap(c.buf) {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > cap(c.buf) {
			return c.Conn.Write(p)
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// cork starts gathering writes.
func (c *corkConn) cork() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		c.buf = make([]byte, 0, corkBuffer)
	}
	c.corked = true
}

// uncork sends what was gathered and writes straight through again.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

func (c *corkConn) flushLocked() error {
	for len(c.buf) > 0 {
		n, err := c.Conn.Write(c.buf)
		c.buf = c.buf[:copy(c.buf, c.buf[n:])]
		if err != nil {
			c.buf = c.buf[:0]
			return err
		}
	}
	return nil
}

// corkKey is the context key under which the HTTP/1.1 server puts a
// request's *corkConn (connCork).
type corkKey struct{}

// connCork is the HTTP/1.1 server's ConnContext: it makes the connection's
// *corkConn reachable from the handler.
func connCork(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		if cc, ok := tc.NetConn().(*corkConn); ok {
			return context.WithValue(ctx, corkKey{}, cc)
		}
	}
	return ctx
}

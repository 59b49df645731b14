package certadm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// maxRecvMessage is the largest message the client accepts: a 4 MiB file
// chunk plus framing, with room for large View answers.
const maxRecvMessage = 64 << 20

// flowWindow is the HTTP/2 flow-control window the client grants the
// server, per stream and per connection. A backup file streams at several
// hundred MB/s on loopback; with gRPC's default (64 KiB, grown by its
// bandwidth estimator) the server waits for window updates, with 16 MiB it
// stays a few chunks ahead of the client. It bounds what one connection
// buffers on the client, not what it uses.
const flowWindow = 16 << 20

// ServerState is what Ping reports about the CA.
type ServerState int

// The server states.
const (
	// StateUnknown is a state this package does not know.
	StateUnknown ServerState = 0
	// StateOnline: the CA serves every operation.
	StateOnline ServerState = 1
	// StateSuspended: the CA is suspended for restore or recovery and
	// refuses operations other than Ping.
	StateSuspended ServerState = 2
)

// String returns "online", "suspended" or "unknown".
func (s ServerState) String() string {
	switch s {
	case StateOnline:
		return "online"
	case StateSuspended:
		return "suspended"
	}
	return "unknown"
}

// ServerInfo is the answer to Ping.
type ServerInfo struct {
	// State is the CA's state.
	State ServerState
	// CAName is the CA's name.
	CAName string
	// Principal is who the server authenticated the caller as.
	Principal string
	// Roles are the caller's roles, as the server names them
	// ("Administrator", "Officer", ...).
	Roles []string
	// Version is the server's version string.
	Version string
	// WritesRefused is non-empty while the CA refuses changes because its
	// disk is full (they fail with ErrDiskFull): the server's explanation.
	// Reads keep working, and changes are accepted again by themselves
	// once there is space. (A CA whose database failed answers every call,
	// Ping included, with an error that says so.)
	WritesRefused string
}

// Client is a connection to a certsrv server with a credential. It is safe
// for concurrent use by multiple goroutines. Close it when done.
type Client struct {
	conn   *grpc.ClientConn
	admin  certsrvv1.AdminClient
	backup certsrvv1.BackupClient
	raw    *rawTransport // backup file content over HTTP/1.1 (rawread.go)
	target target
	first  ServerInfo

	closeOnce sync.Once
}

// Dial connects to server with the credentials the options and the
// environment select, and proves the connection with a Ping. An empty
// server means: the CERTADM_SERVER environment variable, then the server
// file in the credentials directory, then DefaultServer. Credentials come
// from WithTLSConfig, else WithCredentials, else CERTADM_CREDS, else
// ./certsrv-data/admin when it exists; otherwise Dial fails with
// ErrNoCredentials and says what it tried.
//
// Dial fails with ErrUnavailable when the server cannot be reached or the
// TLS handshake fails within the dial timeout, and with ErrAccessDenied
// when the server refuses the credential. A server that refuses the client
// certificate inside the TLS handshake gives ErrAccessDenied when its alert
// reached the client, and ErrUnavailable when the connection broke first;
// both mean the call did not happen. A suspended CA is not an error:
// the Client works and Ping reports StateSuspended. The caller must Close
// the returned Client.
func Dial(ctx context.Context, server string, opts ...Option) (*Client, error) {
	o := collect(opts)
	t, err := resolve(server, o)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("passthrough:///"+t.addr,
		grpc.WithTransportCredentials(credentials.NewTLS(t.tls)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMessage)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: o.dialTimeout}),
		grpc.WithInitialWindowSize(flowWindow),
		grpc.WithInitialConnWindowSize(flowWindow),
	)
	if err != nil {
		return nil, newError(condInvalidArg, "dial", "server %s: %w", t.addr, err)
	}
	c := &Client{conn: conn, admin: certsrvv1.NewAdminClient(conn), backup: certsrvv1.NewBackupClient(conn), target: t,
		raw: newRawTransport(t.addr, t.tls)}
	dctx, cancel := context.WithTimeout(ctx, o.dialTimeout)
	defer cancel()
	info, err := c.Ping(dctx)
	if err != nil {
		_ = conn.Close()
		var e *Error
		if !errors.As(err, &e) {
			return nil, err
		}
		switch {
		case e.Reason == condTimeout.code.Reason && ctx.Err() == nil:
			// The dial timeout, not the caller's deadline: the server did
			// not answer in time.
			return nil, newError(condUnavailable, "dial", "server %s did not answer within %s", t, o.dialTimeout)
		case errors.Is(err, ErrUnavailable) && handshakeRefused(e.Message):
			return nil, newError(condAccess, "dial", "server %s refused the client certificate: %s", t, e.Message)
		case errors.Is(err, ErrUnavailable):
			return nil, newError(condUnavailable, "dial", "server %s: %s", t, e.Message)
		}
		return nil, err
	}
	c.first = info
	return c, nil
}

// refusalAlerts are the TLS alerts a server sends when it does not accept a
// client certificate. crypto/tls reports a received alert as
// "remote error: tls: <alert>".
var refusalAlerts = []string{
	"remote error: tls: bad certificate",
	"remote error: tls: unknown certificate authority",
	"remote error: tls: certificate required",
	"remote error: tls: revoked certificate",
	"remote error: tls: expired certificate",
	"remote error: tls: unsupported certificate",
	"remote error: tls: access denied",
}

// handshakeRefused reports whether a transport message says the server
// refused the client certificate during the TLS handshake. The transport
// gives only text here, so this is the one place the package reads an
// error message.
func handshakeRefused(msg string) bool {
	for _, a := range refusalAlerts {
		if strings.Contains(msg, a) {
			return true
		}
	}
	return false
}

// Server returns the address the Client connected to ("host:port"), after
// the discovery rules Dial describes.
func (c *Client) Server() string { return c.target.addr }

// CredentialsDir returns the credentials directory the Client loaded, or ""
// when WithTLSConfig supplied the configuration.
func (c *Client) CredentialsDir() string { return c.target.credsDir }

// Close closes the connection. Calls in flight fail; a backup session
// prepared through the Client and not ended is left to the server, which
// aborts it when its lease expires. Close returns nil when called again.
func (c *Client) Close() error {
	if c == nil || c.conn == nil {
		return nil
	}
	var err error
	c.closeOnce.Do(func() {
		c.raw.close()
		err = c.conn.Close()
	})
	if err != nil {
		return fromRPC(context.Background(), "close", err)
	}
	return nil
}

// Ping asks the server for its state and the caller's identity
// (GetServerState). Any authenticated caller may ask. A CA suspended for
// restore answers with StateSuspended and a nil error.
func (c *Client) Ping(ctx context.Context) (ServerInfo, error) {
	const op = "ping"
	r, err := c.admin.Ping(ctx, &certsrvv1.PingRequest{})
	if err != nil {
		err = fromRPC(ctx, op, err)
		if errors.Is(err, ErrServerSuspended) {
			return ServerInfo{State: StateSuspended}, nil
		}
		return ServerInfo{}, err
	}
	info := ServerInfo{
		CAName:        r.GetCaName(),
		Principal:     r.GetPrincipal(),
		Roles:         r.GetRoles(),
		Version:       r.GetVersion(),
		WritesRefused: r.GetWritesRefused(),
	}
	switch r.GetState() {
	case certsrvv1.ServerState_SERVER_STATE_ONLINE:
		info.State = StateOnline
	case certsrvv1.ServerState_SERVER_STATE_SUSPENDED:
		info.State = StateSuspended
	}
	return info, nil
}

// IsServerOnline reports whether the CA at server is online
// (CertSrvIsServerOnline). It returns true when the CA is online and false
// with a nil error when it is suspended for restore or recovery; it returns
// an error when the server cannot be reached (ErrUnavailable) or refuses
// the credential (ErrAccessDenied). server and opts are as for Dial.
func IsServerOnline(ctx context.Context, server string, opts ...Option) (bool, error) {
	c, err := Dial(ctx, server, opts...)
	if err != nil {
		return false, err
	}
	defer c.Close()
	switch c.first.State {
	case StateOnline:
		return true, nil
	case StateSuspended:
		return false, nil
	}
	return false, newError(condUnexpected, "is server online", "server %s reported an unknown state", c.target.addr)
}

// Control is a CertSrvServerControl request.
type Control uint32

// The controls this package can send.
const (
	// ControlShutdown is CSCONTROL_SHUTDOWN: stop the CA service.
	ControlShutdown Control = 1
)

// ServerControl sends control to the server at server
// (CertSrvServerControl); the caller needs the Operator or Administrator
// role. ControlShutdown makes the server stop after answering; the call
// returns once the server has accepted the request, not when the process
// has exited. server and opts are as for Dial.
func ServerControl(ctx context.Context, server string, control Control, opts ...Option) error {
	c, err := Dial(ctx, server, opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.ServerControl(ctx, control)
}

// ServerControl is the package-level ServerControl over an existing
// connection.
func (c *Client) ServerControl(ctx context.Context, control Control) error {
	if control != ControlShutdown {
		return newError(condInvalidArg, "server control", "unknown control %d", control)
	}
	_, err := c.backup.ServerControl(ctx, &certsrvv1.ServerControlRequest{Control: uint32(control)})
	return fromRPC(ctx, "server control", err)
}

// timeOf converts a wire timestamp; an absent or invalid one is the zero
// time.
func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil || !ts.IsValid() {
		return time.Time{}
	}
	return ts.AsTime()
}

// opf formats an operation name.
func opf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

package server

import (
	"context"
	"crypto/tls"
	"sync"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// adminAuthInfo is the AuthInfo of an admin API connection: the TLS
// outcome, as gRPC's own TLS credentials report it, and a channel that is
// closed when the connection closes, which RPCs on it find with
// ConnClosed. The backup service uses it to end a session soon after its
// client vanished instead of after the whole lease. Carrying it in the
// AuthInfo costs nothing per RPC (gRPC puts the peer into every RPC's
// context anyway), unlike a stats handler, which gRPC calls for every
// message.
type adminAuthInfo struct {
	credentials.TLSInfo
	closed <-chan struct{}
}

// watchedConn is an admin connection that closes its channel when gRPC
// closes it: the client went away, or the server stops.
type watchedConn struct {
	*tls.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *watchedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// tlsInfo returns the TLS outcome of a connection's AuthInfo: an admin
// connection's, or gRPC's own TLSInfo (the placeholder server during
// recovery, the HTTP/1.1 backup-file stream).
func tlsInfo(ai credentials.AuthInfo) (credentials.TLSInfo, bool) {
	switch a := ai.(type) {
	case adminAuthInfo:
		return a.TLSInfo, true
	case credentials.TLSInfo:
		return a, true
	}
	return credentials.TLSInfo{}, false
}

// ConnClosed returns a channel that is closed when the admin API
// connection the RPC whose context ctx is came on closes, or nil for a
// context that is not an admin RPC's (the HTTP/1.1 backup-file stream's,
// say). It has the shape the backup service's ConnClosed hook wants.
func ConnClosed(ctx context.Context) <-chan struct{} {
	if p, ok := peer.FromContext(ctx); ok {
		if a, ok := p.AuthInfo.(adminAuthInfo); ok {
			return a.closed
		}
	}
	return nil
}

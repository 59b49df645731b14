package server

import (
	"context"
	"sync"

	"google.golang.org/grpc/stats"
)

// connWatch is the admin gRPC server's stats handler: it gives every
// connection a channel that is closed when the connection ends, which RPCs
// on it find with ConnClosed. The backup service uses it to end a session
// soon after its client vanished instead of after the whole lease.
type connWatch struct{}

type connKey struct{}

type connState struct {
	once sync.Once
	done chan struct{}
}

// TagConn implements stats.Handler.
func (connWatch) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{done: make(chan struct{})})
}

// HandleConn implements stats.Handler: ConnEnd closes the channel.
func (connWatch) HandleConn(ctx context.Context, s stats.ConnStats) {
	if _, end := s.(*stats.ConnEnd); !end {
		return
	}
	if c, ok := ctx.Value(connKey{}).(*connState); ok {
		c.once.Do(func() { close(c.done) })
	}
}

// TagRPC implements stats.Handler.
func (connWatch) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC implements stats.Handler.
func (connWatch) HandleRPC(context.Context, stats.RPCStats) {}

// ConnClosed returns a channel that is closed when the admin API
// connection the RPC whose context ctx is came on closes, or nil for a
// context that is not an admin RPC's (the HTTP/1.1 backup-file stream's,
// say). It has the shape the backup service's ConnClosed hook wants.
func ConnClosed(ctx context.Context) <-chan struct{} {
	if c, ok := ctx.Value(connKey{}).(*connState); ok {
		return c.done
	}
	return nil
}

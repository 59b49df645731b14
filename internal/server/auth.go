package server

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/service"
)

// Caller is the authenticated caller of an RPC: who the client certificate
// names and what roles the CA holds for it.
type Caller struct {
	// Principal is the client certificate's subject common name.
	Principal string
	// Fingerprint is the lower-case hex SHA-256 of the client certificate's
	// DER encoding (service.Fingerprint), as the role table stores it.
	Fingerprint string
	// Roles are the principal's roles. They are empty while the server is
	// suspended, when the CA's database is not consulted.
	Roles service.Roles
}

// callerKey is the context key under which the interceptors store the
// *Caller. Authentication information is the one thing handlers look up
// through a context.
type callerKey struct{}

// CallerFrom returns the caller the interceptors authenticated for the RPC
// whose context ctx is, or false outside such an RPC.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	return c, ok
}

// peerIdentity returns the principal and fingerprint of the verified client
// certificate of the connection ctx belongs to.
func peerIdentity(ctx context.Context) (principal, fingerprint string, err error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", "", apierr.New(apierr.Unauthenticated, "no peer information")
	}
	info, ok := tlsInfo(p.AuthInfo)
	if !ok {
		return "", "", apierr.New(apierr.Unauthenticated, "connection is not TLS")
	}
	var leaf *x509.Certificate
	if chains := info.State.VerifiedChains; len(chains) > 0 && len(chains[0]) > 0 {
		leaf = chains[0][0]
	}
	if leaf == nil {
		return "", "", apierr.New(apierr.Unauthenticated, "no verified client certificate")
	}
	if leaf.Subject.CommonName == "" {
		return "", "", apierr.New(apierr.Unauthenticated, "client certificate has no common name")
	}
	return leaf.Subject.CommonName, service.Fingerprint(leaf.Raw), nil
}

// authorize authenticates the caller of method and checks its roles. On
// success it returns ctx carrying the *Caller.
//
// The order is: the method must be in requiredRoles (else AccessDenied);
// the caller must present a verified client certificate (else
// Unauthenticated); while the server is suspended, Ping is let through
// without consulting the CA and every other method gets ServerSuspended;
// otherwise the CA must know the certificate's fingerprint for the
// principal (else AccessDenied) and the principal must hold a role the
// method admits (else AccessDenied).
func (s *Server) authorize(ctx context.Context, method string) (context.Context, error) {
	r, known := requiredRoles[method]
	if !known {
		return nil, apierr.New(apierr.AccessDenied, "method %s is not permitted to anyone", method)
	}
	principal, fp, err := peerIdentity(ctx)
	if err != nil {
		return nil, err
	}
	if s.Suspended() {
		if method == certsrvv1.Admin_Ping_FullMethodName {
			return context.WithValue(ctx, callerKey{}, &Caller{Principal: principal, Fingerprint: fp}), nil
		}
		return nil, apierr.New(apierr.ServerSuspended, "the CA is suspended")
	}
	roles, err := s.roles(ctx, principal, fp)
	if err != nil {
		return nil, err
	}
	if !r.allows(roles) {
		return nil, apierr.New(apierr.AccessDenied, "principal %q may not call %s: %s", principal, method, r.describe(roles))
	}
	// The CA's log line of every change the call makes names the caller.
	ctx = service.WithActor(ctx, principal)
	return context.WithValue(ctx, callerKey{}, &Caller{Principal: principal, Fingerprint: fp, Roles: roles}), nil
}

// roles returns the roles of principal for the credential fingerprint fp,
// from the cache or from the CA.
func (s *Server) roles(ctx context.Context, principal, fp string) (service.Roles, error) {
	key := cacheKey{principal, fp}
	if roles, ok := s.cache.get(key, time.Now()); ok {
		return roles, nil
	}
	gen := s.cache.generation()
	roles, err := s.ca.Authorize(ctx, principal, fp)
	if err != nil {
		if apierr.Of(err) == apierr.Unexpected {
			return roles, err
		}
		return roles, apierr.New(apierr.AccessDenied, "principal %q is not authorized: %w", principal, err)
	}
	s.cache.put(key, roles, gen, time.Now())
	return roles, nil
}

// unaryInterceptor authorizes every unary RPC and logs its outcome.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	actx, err := s.authorize(ctx, info.FullMethod)
	if err != nil {
		s.logCall(ctx, info.FullMethod, start, err)
		return nil, apierr.Status(err)
	}
	resp, err := handler(actx, req)
	err = notImplemented(err)
	s.logCall(actx, info.FullMethod, start, err)
	return resp, apierr.Status(err)
}

// streamInterceptor authorizes every streaming RPC and logs its outcome.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	actx, err := s.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		s.logCall(ss.Context(), info.FullMethod, start, err)
		return apierr.Status(err)
	}
	err = notImplemented(handler(srv, &callerStream{ServerStream: ss, ctx: actx}))
	s.logCall(actx, info.FullMethod, start, err)
	return apierr.Status(err)
}

// notImplemented turns the bare Unimplemented status of a generated stub
// into apierr.NotImplemented, so that clients get E_NOTIMPL like every
// other condition; any other error is returned as is.
func notImplemented(err error) error {
	if err == nil {
		return nil
	}
	var e *apierr.Error
	if errors.As(err, &e) {
		return err
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unimplemented {
		return apierr.New(apierr.NotImplemented, "%s", st.Message())
	}
	return err
}

// callerStream is a ServerStream whose context carries the *Caller.
type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context with the *Caller.
func (c *callerStream) Context() context.Context { return c.ctx }

// logCall logs one RPC: refusals at Info (they matter for audit), other
// failures at Warn, successes at Debug. A success costs nothing when Debug
// is not enabled.
func (s *Server) logCall(ctx context.Context, method string, start time.Time, err error) {
	if err == nil && !s.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []any{"method", method, "duration", time.Since(start)}
	if c, ok := CallerFrom(ctx); ok {
		attrs = append(attrs, "principal", c.Principal)
	} else if p, _, perr := peerIdentity(ctx); perr == nil {
		attrs = append(attrs, "principal", p)
	}
	if err == nil {
		s.logger.Debug("rpc", attrs...)
		return
	}
	code := apierr.Of(err)
	if _, isStatus := status.FromError(err); code == apierr.Unexpected && isStatus {
		// A handler that made its own status (the Backup service does).
		code = apierr.FromStatus(err).Code
	}
	attrs = append(attrs, "reason", code.Reason, "err", err)
	switch code {
	case apierr.AccessDenied, apierr.Unauthenticated, apierr.ServerSuspended:
		s.logger.Info("rpc refused", attrs...)
	case apierr.Unexpected:
		s.logger.Warn("rpc failed", attrs...)
	default:
		s.logger.Debug("rpc failed", attrs...)
	}
}

// cacheKey identifies one credential of one principal.
type cacheKey struct{ principal, fingerprint string }

// cacheEntry is a cached positive authorization.
type cacheEntry struct {
	roles   service.Roles
	expires time.Time
}

// maxCacheEntries bounds the role cache; when it is full it is emptied.
const maxCacheEntries = 4096

// roleCache remembers successful authorizations for a short time so that
// every RPC does not read the database. Only successes are cached. The
// server empties it whenever roles change through the API (GrantRole,
// RevokeRole), so a principal revoked through the API is refused on its
// very next call; a change made to the CA directly, bypassing the server,
// is seen within the cache's lifetime. A lifetime of zero or less disables
// the cache.
type roleCache struct {
	ttl time.Duration
	mu  sync.Mutex
	gen uint64 // incremented by invalidate
	m   map[cacheKey]cacheEntry
}

func newRoleCache(ttl time.Duration) *roleCache {
	return &roleCache{ttl: ttl, m: make(map[cacheKey]cacheEntry)}
}

func (c *roleCache) get(k cacheKey, now time.Time) (service.Roles, bool) {
	var none service.Roles
	if c.ttl <= 0 {
		return none, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !now.Before(e.expires) {
		return none, false
	}
	return e.roles, true
}

// generation returns the invalidation count; a lookup started at
// generation g may only be cached if no invalidation happened since.
func (c *roleCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *roleCache) put(k cacheKey, roles service.Roles, gen uint64, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= maxCacheEntries {
		clear(c.m)
	}
	c.m[k] = cacheEntry{roles: roles, expires: now.Add(c.ttl)}
}

// invalidate forgets every cached authorization, including any lookup in
// flight.
func (c *roleCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
}

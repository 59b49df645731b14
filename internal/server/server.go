package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/service"
)

// Defaults for Options fields left zero.
const (
	DefaultShutdownTimeout = 10 * time.Second
	DefaultAuthCacheTTL    = time.Second
	DefaultStreamWorkers   = 64
)

// Options configure a Server. The zero value of every field has a meaning,
// given with the field.
type Options struct {
	// Listen is the gRPC admin API address; empty means the CA
	// configuration's listen address. "127.0.0.1:0" picks a free port
	// (see Addr).
	Listen string
	// HTTPListen is the publication endpoint's address; empty means the CA
	// configuration's http_listen address.
	HTTPListen string
	// Listener and HTTPListener, when not nil, are already bound listeners
	// used instead of Listen and HTTPListen. The Server takes ownership of
	// them and closes them when it stops.
	Listener, HTTPListener net.Listener
	// Logger receives the server's events; nil means slog.Default().
	Logger *slog.Logger
	// BackupService, when not nil, serves the Backup service's RPCs. The
	// server answers ServerControl itself (CSCONTROL_SHUTDOWN calls
	// Shutdown), so BackupService's ServerControl is never called. When
	// nil, every Backup RPC but ServerControl answers Unimplemented after
	// the role check. If BackupService implements io.Closer, Serve closes
	// it after the last RPC has finished and before it closes the CA.
	BackupService certsrvv1.BackupServer
	// Version is reported by Ping.
	Version string
	// ShutdownTimeout bounds how long a stop waits for RPCs in progress
	// before it cuts them off; zero means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// AuthCacheTTL is how long a successful authorization is remembered
	// (see Server for what that means for revocation); zero means
	// DefaultAuthCacheTTL and a negative value disables the cache.
	AuthCacheTTL time.Duration
	// StreamWorkers is the number of long-lived goroutines that run RPC
	// handlers (grpc.NumStreamWorkers). An RPC handed to one of them runs
	// on a stack that earlier RPCs already grew, instead of on a new
	// goroutine whose stack grows again through the signing and database
	// code; an RPC arriving while every worker is busy gets a goroutine of
	// its own as usual. Zero means DefaultStreamWorkers (as many as
	// `certadm bench issue -c 64` keeps busy); a negative value disables
	// the workers.
	StreamWorkers int
}

// Server is the CA's network face: the gRPC admin API (services Admin and
// Backup over TLS 1.3 with required client certificates, every RPC
// authenticated and checked against requiredRoles) and the plain-HTTP
// publication endpoint serving publish/ under /CertEnroll/.
//
// A Server owns the CA given to New: Serve closes it when it stops. Roles
// are looked up through the CA and cached for Options.AuthCacheTTL; a
// GrantRole or RevokeRole through the API empties the cache, so a
// principal revoked through the API is refused on its next call, and a
// change made on the CA object directly is seen within the TTL.
type Server struct {
	ca      *service.CA
	opts    Options
	logger  *slog.Logger
	grpc    *grpc.Server
	http    *http.Server
	raw     *http.Server // HTTP/1.1 side of the admin port (rawread.go)
	mux     *tlsMux      // the admin port's TLS listener (alpn.go)
	lis     net.Listener
	httpLis net.Listener
	backup  certsrvv1.BackupServer // nil when none was given
	cache   *roleCache

	suspended atomic.Bool
	served    atomic.Bool
	stopOnce  sync.Once
	stop      chan struct{} // closed by Shutdown
}

// New builds a Server for ca: it loads the TLS material from the CA's data
// directory (tls/server.crt, tls/server.key, tls/trust.crt) and binds both
// listeners, so Addr and HTTPAddr are known when it returns. Nothing is
// served until Serve. If New fails it closes the listeners it opened (and
// those given in opts) and leaves ca open for the caller; on success the
// Server owns ca and the caller must call Serve, which releases everything
// when it returns.
func New(ca *service.CA, opts Options) (_ *Server, err error) {
	defer func() {
		if err != nil {
			closeListener(opts.Listener)
			closeListener(opts.HTTPListener)
		}
	}()
	if ca == nil {
		return nil, errors.New("new server: nil CA")
	}
	dir := ca.Dir()
	if dir.Root == "" {
		return nil, ErrNoDataDir
	}
	cfg := ca.Config()
	if opts.Listen == "" {
		opts.Listen = cfg.Listen
	}
	if opts.HTTPListen == "" {
		opts.HTTPListen = cfg.HTTPListen
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.AuthCacheTTL == 0 {
		opts.AuthCacheTTL = DefaultAuthCacheTTL
	}
	if opts.StreamWorkers == 0 {
		opts.StreamWorkers = DefaultStreamWorkers
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	tlsCfg, err := serverTLSConfig(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{
		ca:     ca,
		opts:   opts,
		logger: logger,
		backup: opts.BackupService,
		cache:  newRoleCache(opts.AuthCacheTTL),
		stop:   make(chan struct{}),
	}
	if s.lis = opts.Listener; s.lis == nil {
		if s.lis, err = net.Listen("tcp", opts.Listen); err != nil {
			return nil, &ListenError{What: "admin", Addr: opts.Listen, Err: err}
		}
	}
	if s.httpLis = opts.HTTPListener; s.httpLis == nil {
		if s.httpLis, err = net.Listen("tcp", opts.HTTPListen); err != nil {
			if opts.Listener == nil {
				s.lis.Close()
			}
			return nil, &ListenError{What: "http", Addr: opts.HTTPListen, Err: err}
		}
	}
	s.mux = newTLSMux(s.lis, tlsCfg)
	grpcOpts := []grpc.ServerOption{
		grpc.Creds(handshakenCreds{}),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}
	if opts.StreamWorkers > 0 {
		grpcOpts = append(grpcOpts, grpc.NumStreamWorkers(uint32(opts.StreamWorkers)))
	}
	s.grpc = grpc.NewServer(grpcOpts...)
	certsrvv1.RegisterAdminServer(s.grpc, &adminService{s: s})
	certsrvv1.RegisterBackupServer(s.grpc, newBackupService(s, opts.BackupService))
	s.raw = &http.Server{
		Handler:           rawReadHandler{s},
		ConnContext:       connCork,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	s.http = &http.Server{
		Handler:           &publishHandler{dir: dir.PublishDir(), logger: logger},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

func closeListener(l net.Listener) {
	if l != nil {
		l.Close()
	}
}

// Addr returns the address the admin API listens on, with the actual port
// when the configured one was 0.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// HTTPAddr returns the address the publication endpoint listens on.
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// Shutdown asks Serve to stop gracefully and returns at once; Serve's
// return says when the stop is complete. It is what ServerControl
// (CSCONTROL_SHUTDOWN) calls, and is safe to call more than once, from any
// goroutine, before or during Serve.
func (s *Server) Shutdown() {
	s.stopOnce.Do(func() { close(s.stop) })
}

// SetSuspended suspends or resumes the server. While suspended, every RPC
// except Ping answers ServerSuspended without consulting the CA, and Ping
// reports SERVER_STATE_SUSPENDED (with the caller's principal but no
// roles). The publication endpoint keeps serving.
func (s *Server) SetSuspended(v bool) {
	s.suspended.Store(v)
	if v {
		s.logger.Info("server suspended")
	} else {
		s.logger.Info("server resumed")
	}
}

// Suspended reports whether the server is suspended.
func (s *Server) Suspended() bool { return s.suspended.Load() }

// Serve serves the admin API and the publication endpoint and runs the
// CA's CRL publisher, until ctx is cancelled, Shutdown is called, or a
// listener fails. It then stops gracefully: no new connections or RPCs are
// accepted, RPCs in progress get Options.ShutdownTimeout to finish before
// they are cut off, the publisher is stopped, the backup service is closed
// (if it is an io.Closer), and the CA is closed, which checkpoints its
// database so that the next open replays nothing. Serve returns nil after
// a stop asked for through ctx or Shutdown that closed everything cleanly;
// otherwise the listener failure and any close error, joined. Serve may be
// called once; a second call returns ErrAlreadyServed.
func (s *Server) Serve(ctx context.Context) error {
	if !s.served.CompareAndSwap(false, true) {
		return ErrAlreadyServed
	}
	s.logger.Info("serving", "admin", s.Addr(), "http", s.HTTPAddr(), "ca", s.ca.Name())

	pubCtx, stopPublisher := context.WithCancel(context.WithoutCancel(ctx))
	var publisher sync.WaitGroup
	publisher.Go(func() { s.ca.RunPublisher(pubCtx) })

	errc := make(chan error, 3)
	go func() {
		// The port's accept loop ends when the gRPC server closes its
		// side at the stop; a failure before that stops everything.
		if err := s.mux.serve(); err != nil && !errors.Is(err, net.ErrClosed) {
			errc <- fmt.Errorf("serve admin port: %w", err)
			return
		}
		errc <- nil
	}()
	go func() {
		if err := s.raw.Serve(s.mux.http); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.logger.Warn("backup file endpoint stopped", "err", err)
		}
	}()
	go func() {
		if err := s.grpc.Serve(s.mux.grpc); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("serve admin API: %w", err)
			return
		}
		errc <- nil
	}()
	go func() {
		if err := s.http.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve publication endpoint: %w", err)
			return
		}
		errc <- nil
	}()

	var errs []error
	pending := 3
	select {
	case <-ctx.Done():
		s.logger.Info("stopping", "why", "context done")
	case <-s.stop:
		s.logger.Info("stopping", "why", "shutdown requested")
	case err := <-errc:
		pending--
		if err != nil {
			errs = append(errs, err)
			s.logger.Error("stopping", "why", "listener failed", "err", err)
		}
	}
	s.stopListeners()
	for ; pending > 0; pending-- {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	stopPublisher()
	publisher.Wait()
	if c, ok := s.backup.(io.Closer); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close backup service: %w", err))
		}
	}
	if err := s.ca.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close CA: %w", err))
	}
	s.logger.Info("stopped")
	return errors.Join(errs...)
}

// stopListeners stops both servers: gracefully first, then, after
// ShutdownTimeout, by closing every connection.
func (s *Server) stopListeners() {
	deadline, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.http.Shutdown(deadline); err != nil {
			s.http.Close()
		}
	})
	wg.Go(func() {
		if err := s.raw.Shutdown(deadline); err != nil {
			s.raw.Close()
		}
	})
	wg.Go(func() {
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-deadline.Done():
			s.logger.Warn("RPCs still running at the shutdown deadline; cutting them off")
			s.grpc.Stop()
			<-done
		}
	})
	wg.Wait()
}

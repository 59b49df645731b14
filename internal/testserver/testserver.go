// Package testserver starts a real certsrv server in-process for tests: a
// fresh data directory under t.TempDir(), a new root CA (ECDSA P-256), the
// admin API and the publication endpoint on 127.0.0.1 with ports picked by
// the kernel, and the admin credential that certsrv init writes. Nothing is
// mocked: the server speaks TLS 1.3 with client certificates, the database
// is a real SQLite file with a real log, and files are fsynced.
//
// The configuration's listen addresses and base URL name the actual
// ports, so issued certificates carry AIA and CDP URLs that work and
// admin/server holds the admin API address (as certsrv serve writes it).
package testserver

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/service"
)

// CAName is the name of the CA Start creates.
const CAName = "certsrv Test CA"

// Option adjusts Start.
type Option func(*options)

type options struct {
	backup  func(*service.CA) certsrvv1.BackupServer
	config  []func(*datadir.Config)
	server  []func(*server.Options)
	logger  *slog.Logger
	keyType ca.KeyType
}

// WithBackup registers the Backup service that make returns for the opened
// CA. make is called once, after the CA is opened and before the server is
// built; server.PrincipalFrom gives the authenticated principal of an RPC
// and (*Server).Server.Shutdown stops the server.
func WithBackup(make func(*service.CA) certsrvv1.BackupServer) Option {
	return func(o *options) { o.backup = make }
}

// WithConfig edits the configuration the CA is created with, after Start
// has set the listen addresses and base URL. Options apply in order.
func WithConfig(edit func(*datadir.Config)) Option {
	return func(o *options) { o.config = append(o.config, edit) }
}

// WithServerOptions edits the server's options before New. Listener,
// HTTPListener and BackupService are set by Start.
func WithServerOptions(edit func(*server.Options)) Option {
	return func(o *options) { o.server = append(o.server, edit) }
}

// WithLogger sends the CA's and the server's log to logger. Without it the
// log is discarded.
func WithLogger(logger *slog.Logger) Option {
	return func(o *options) { o.logger = logger }
}

// WithKeyType makes the CA with key type k instead of ECDSA P-256.
func WithKeyType(k ca.KeyType) Option {
	return func(o *options) { o.keyType = k }
}

// Server is a running test server.
type Server struct {
	// Addr is the admin API address (127.0.0.1:port).
	Addr string
	// HTTPAddr is the publication endpoint address.
	HTTPAddr string
	// DataDir is the data directory's root.
	DataDir string
	// CredsDir is the admin credential directory (DataDir/admin), usable
	// as a certadm credentials directory.
	CredsDir string
	// Dir is the data directory.
	Dir datadir.Dir
	// CA is the open CA; it is closed when the server stops.
	CA *service.CA
	// Server is the server; Serve runs in a goroutine Start started.
	Server *server.Server

	t        testing.TB
	cancel   context.CancelFunc
	done     chan struct{}
	serveErr error
	lock     *datadir.Lock
	stopOnce sync.Once
}

// Start creates and starts a server and registers t.Cleanup to stop it.
// Any failure ends the test with t.Fatal.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir, err := datadir.New(filepath.Join(t.TempDir(), datadir.DefaultDir))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		lis.Close()
		t.Fatal(err)
	}
	listeners := []net.Listener{lis, httpLis}
	fail := func(format string, args ...any) {
		t.Helper()
		for _, l := range listeners {
			l.Close()
		}
		t.Fatalf(format, args...)
	}

	cfg := datadir.DefaultConfig(CAName)
	cfg.Listen = lis.Addr().String()
	cfg.HTTPListen = httpLis.Addr().String()
	cfg.BaseURL = "http://" + httpLis.Addr().String()
	for _, edit := range o.config {
		edit(&cfg)
	}
	lock, err := dir.Acquire()
	if err != nil {
		fail("lock data directory: %v", err)
	}
	ctx := context.Background()
	if _, err := service.Init(ctx, dir, service.InitOptions{KeyType: o.keyType, Config: &cfg, Logger: logger}); err != nil {
		lock.Release()
		fail("init CA: %v", err)
	}
	c, err := service.Open(ctx, dir, service.OpenOptions{Logger: logger})
	if err != nil {
		lock.Release()
		fail("open CA: %v", err)
	}
	sopts := server.Options{Logger: logger, Version: "test"}
	for _, edit := range o.server {
		edit(&sopts)
	}
	sopts.Listener, sopts.HTTPListener = lis, httpLis
	if o.backup != nil {
		sopts.BackupService = o.backup(c)
	}
	srv, err := server.New(c, sopts)
	if err != nil {
		c.Close()
		lock.Release()
		t.Fatalf("new server: %v", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir.AdminDir(), "server"), []byte(srv.Addr()+"\n"), 0o644); err != nil {
		t.Errorf("write admin/server: %v", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &Server{
		Addr:     srv.Addr(),
		HTTPAddr: srv.HTTPAddr(),
		DataDir:  dir.Root,
		CredsDir: dir.AdminDir(),
		Dir:      dir,
		CA:       c,
		Server:   srv,
		t:        t,
		cancel:   cancel,
		done:     make(chan struct{}),
		lock:     lock,
	}
	go func() {
		defer close(s.done)
		s.serveErr = srv.Serve(sctx)
	}()
	t.Cleanup(s.Stop)
	return s
}

// BaseURL is the publication endpoint's base URL ("http://127.0.0.1:port").
func (s *Server) BaseURL() string { return "http://" + s.HTTPAddr }

// Stop stops the server gracefully, waits for Serve to return, closes the
// CA and releases the data directory's lock. A Serve error fails the test.
// Stop is safe to call more than once; Start registers it with t.Cleanup.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.cancel()
		<-s.done
		s.lock.Release()
		if s.serveErr != nil {
			s.t.Errorf("server stopped with an error: %v", s.serveErr)
		}
	})
}

// Wait waits up to d for Serve to return (after a ServerControl shutdown,
// say) and returns its error, or an error if it is still running.
func (s *Server) Wait(d time.Duration) error {
	select {
	case <-s.done:
		return s.serveErr
	case <-time.After(d):
		return errors.New("server still running")
	}
}

// Done is closed when Serve has returned.
func (s *Server) Done() <-chan struct{} { return s.done }

// ServeError returns Serve's result once Done is closed, nil before.
func (s *Server) ServeError() error {
	select {
	case <-s.done:
		return s.serveErr
	default:
		return nil
	}
}

// credentialDir writes a credential into a new directory under the test's
// temporary directory and returns it.
func (s *Server) credentialDir(cred *ca.Credential) (string, error) {
	dir := filepath.Join(s.t.TempDir(), "creds")
	if err := ca.WriteCredentialDir(dir, cred); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "server"), []byte(s.Addr+"\n"), 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// Grant makes a new ECDSA P-256 key, grants principal the roles through
// the CA (as the GrantRole RPC does) and writes the credential into a new
// directory (client.crt, client.key, trust.crt, server), which it returns.
// With no roles, the principal is registered with an empty role set
// directly in the database (the API refuses a grant of nothing): such a
// principal is authenticated but may call only Ping.
func (s *Server) Grant(principal string, roles ...string) (string, error) {
	ctx := context.Background()
	key, err := ca.GenerateKey(ca.KeyECDSAP256)
	if err != nil {
		return "", err
	}
	var cert, trust *x509.Certificate
	if len(roles) == 0 {
		anchor, anchorKey, err := s.trustAnchor()
		if err != nil {
			return "", err
		}
		der, err := ca.IssueClientCert(anchor, anchorKey, principal, key.Public(), time.Hour*24, time.Now())
		if err != nil {
			return "", err
		}
		if err := s.CA.Store().GrantRoles(ctx, principal, nil, service.Fingerprint(der)); err != nil {
			return "", fmt.Errorf("register %s without roles: %w", principal, err)
		}
		if cert, err = x509.ParseCertificate(der); err != nil {
			return "", err
		}
		trust = anchor
	} else {
		certDER, trustDER, err := s.CA.GrantRole(ctx, principal, roles, key.Public())
		if err != nil {
			return "", fmt.Errorf("grant %s %v: %w", principal, roles, err)
		}
		if cert, err = x509.ParseCertificate(certDER); err != nil {
			return "", err
		}
		if trust, err = x509.ParseCertificate(trustDER); err != nil {
			return "", err
		}
	}
	return s.credentialDir(&ca.Credential{Cert: cert, Key: key, Trust: trust})
}

// Unregistered writes a credential signed by the server's trust anchor for
// a principal the CA does not know: it passes the TLS handshake but no
// RPC, not even Ping.
func (s *Server) Unregistered(principal string) (string, error) {
	anchor, anchorKey, err := s.trustAnchor()
	if err != nil {
		return "", err
	}
	cred, err := ca.NewClientCredential(anchor, anchorKey, principal, 24*time.Hour, time.Now())
	if err != nil {
		return "", err
	}
	return s.credentialDir(cred)
}

// trustAnchor reads the admin trust anchor and its key from tls/.
func (s *Server) trustAnchor() (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(filepath.Join(s.Dir.TLSDir(), "trust.crt"))
	if err != nil {
		return nil, nil, err
	}
	certs, err := ca.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(s.Dir.TLSDir(), "trust.key"))
	if err != nil {
		return nil, nil, err
	}
	key, err := ca.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		return nil, nil, err
	}
	return certs[0], key, nil
}

// Dial opens a gRPC connection to the admin API with the credential in
// credsDir (client.crt, client.key, trust.crt), TLS 1.3 only, verifying
// the server against trust.crt. The caller closes it.
func (s *Server) Dial(credsDir string) (*grpc.ClientConn, error) {
	return Dial(s.Addr, credsDir)
}

// Dial opens a gRPC connection to the admin API at addr with the
// credential in credsDir; see (*Server).Dial.
func Dial(addr, credsDir string) (*grpc.ClientConn, error) {
	cfg, err := ClientTLS(credsDir)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
}

// ClientTLS returns the client TLS configuration for the credential in
// credsDir: its certificate and key, trust.crt as the only root, TLS 1.3,
// and ServerName 127.0.0.1 (a SAN of every server certificate).
func ClientTLS(credsDir string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(credsDir, ca.CredentialCertFile), filepath.Join(credsDir, ca.CredentialKeyFile))
	if err != nil {
		return nil, err
	}
	trustPEM, err := os.ReadFile(filepath.Join(credsDir, ca.CredentialTrustFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(trustPEM) {
		return nil, fmt.Errorf("%s: no certificate in %s", credsDir, ca.CredentialTrustFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ServerName:   "127.0.0.1",
	}, nil
}

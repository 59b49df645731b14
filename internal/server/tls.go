package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/certsrv/certsrv/internal/datadir"
)

// File names of the server's TLS material inside the data directory's tls/
// directory.
const (
	serverCertFile = "server.crt"
	serverKeyFile  = "server.key"
	trustCertFile  = "trust.crt"
)

// serverTLSConfig loads the admin API's TLS material from dir's tls/
// directory: the server certificate and key (server.crt, server.key, PEM)
// and the admin trust anchor (trust.crt, PEM). The returned configuration
// speaks TLS 1.3 only and requires every client to present a certificate
// that chains to the trust anchor and carries the clientAuth extended key
// usage; a client without one, or with one from another issuer, fails the
// handshake before any RPC runs.
func serverTLSConfig(dir datadir.Dir) (*tls.Config, error) {
	tlsDir := dir.TLSDir()
	certPath := filepath.Join(tlsDir, serverCertFile)
	keyPath := filepath.Join(tlsDir, serverKeyFile)
	trustPath := filepath.Join(tlsDir, trustCertFile)

	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, &TLSError{Path: certPath, Err: err}
	}
	trustPEM, err := os.ReadFile(trustPath)
	if err != nil {
		return nil, &TLSError{Path: trustPath, Err: err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(trustPEM) {
		return nil, &TLSError{Path: trustPath, Err: fmt.Errorf("no PEM certificate")}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// gRPC negotiates HTTP/2 through ALPN.
		NextProtos: []string{"h2"},
	}, nil
}

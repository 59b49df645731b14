package certadm

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Environment variables and defaults consulted when a caller leaves the
// server address or the credentials unspecified.
const (
	// EnvServer names the environment variable holding the server address
	// ("host:port") used when the server argument is empty.
	EnvServer = "CERTADM_SERVER"
	// EnvCreds names the environment variable holding the credentials
	// directory used when no WithCredentials or WithTLSConfig option is given.
	EnvCreds = "CERTADM_CREDS"
	// DefaultCredsDir is the credentials directory tried last, relative to
	// the working directory: the admin credential `certsrv init` writes into
	// a data directory at its default location.
	DefaultCredsDir = "certsrv-data/admin"
	// DefaultServer is the address used when neither the server argument,
	// EnvServer nor a server file names one.
	DefaultServer = "127.0.0.1:8443"
	// DefaultDialTimeout bounds connecting and the first exchange with the
	// server when no WithDialTimeout option is given.
	DefaultDialTimeout = 10 * time.Second
)

// Names of the files in a credentials directory. This is the layout
// `certsrv init` writes into <data>/admin/ and `certadm role grant --out`
// writes for a new principal.
const (
	// CredsCertFile is the client certificate, PEM.
	CredsCertFile = "client.crt"
	// CredsKeyFile is the client private key, PEM (PKCS#8, SEC 1 or PKCS#1),
	// unencrypted, mode 0600.
	CredsKeyFile = "client.key"
	// CredsTrustFile holds the admin trust anchor(s) the server certificate
	// must chain to, PEM.
	CredsTrustFile = "trust.crt"
	// CredsServerFile optionally holds the server address ("host:port") on
	// its first line.
	CredsServerFile = "server"
)

// Option changes how a function of this package connects. Options are
// applied in order; a later option overrides an earlier one of the same
// kind.
type Option func(*options)

type options struct {
	credsDir    string
	tlsConfig   *tls.Config
	dialTimeout time.Duration
}

// WithCredentials names the credentials directory (client.crt, client.key,
// trust.crt and optionally server). An empty dir is the same as not giving
// the option.
func WithCredentials(dir string) Option {
	return func(o *options) { o.credsDir = dir }
}

// WithTLSConfig makes the client use cfg instead of loading a credentials
// directory. The caller provides the client certificate and the roots; this
// package clones cfg, raises MinVersion to TLS 1.3 and fills ServerName from
// the server address when cfg leaves it empty. cfg must not be modified
// after the call. A nil cfg is the same as not giving the option.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) { o.tlsConfig = cfg }
}

// WithDialTimeout bounds connecting to the server and the first exchange
// (a Ping that proves the credential is accepted). Zero or a negative d
// means DefaultDialTimeout. The caller's context can end a dial earlier.
func WithDialTimeout(d time.Duration) Option {
	return func(o *options) { o.dialTimeout = d }
}

func collect(opts []Option) options {
	var o options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if o.dialTimeout <= 0 {
		o.dialTimeout = DefaultDialTimeout
	}
	return o
}

// resolveCredsDir finds the credentials directory: the explicit option,
// then EnvCreds, then DefaultCredsDir if it exists. It returns "" and an
// error listing what was tried when none applies.
func resolveCredsDir(o options) (string, error) {
	if o.credsDir != "" {
		return o.credsDir, nil
	}
	if d := os.Getenv(EnvCreds); d != "" {
		return d, nil
	}
	if fi, err := os.Stat(DefaultCredsDir); err == nil && fi.IsDir() {
		return DefaultCredsDir, nil
	}
	wd, _ := os.Getwd()
	return "", newError(condNoCredentials, "find credentials",
		"no credentials directory: none was given (WithCredentials, certadm --creds), %s is not set, and ./%s does not exist in %s",
		EnvCreds, DefaultCredsDir, wd)
}

// resolveServer finds the server address: the argument, then EnvServer,
// then the first line of the server file in credsDir (when credsDir is not
// empty and the file exists), then DefaultServer.
func resolveServer(server, credsDir string) (string, error) {
	if server != "" {
		return server, nil
	}
	if s := os.Getenv(EnvServer); s != "" {
		return s, nil
	}
	if credsDir != "" {
		b, err := os.ReadFile(filepath.Join(credsDir, CredsServerFile))
		switch {
		case err == nil:
			line, _, _ := strings.Cut(string(b), "\n")
			if s := strings.TrimSpace(line); s != "" {
				return s, nil
			}
		case !errors.Is(err, os.ErrNotExist):
			return "", newError(condNoCredentials, "find server", "read %s: %w", filepath.Join(credsDir, CredsServerFile), err)
		}
	}
	return DefaultServer, nil
}

// target is a resolved connection: the address to dial and the TLS
// configuration to use.
type target struct {
	addr     string
	credsDir string // "" when WithTLSConfig supplied the configuration
	tls      *tls.Config
}

// resolve applies the discovery rules to server and o.
func resolve(server string, o options) (target, error) {
	var t target
	if o.tlsConfig == nil {
		dir, err := resolveCredsDir(o)
		if err != nil {
			return t, err
		}
		t.credsDir = dir
	} else if o.credsDir != "" {
		t.credsDir = o.credsDir
	} else {
		t.credsDir = os.Getenv(EnvCreds)
	}
	addr, err := resolveServer(server, t.credsDir)
	if err != nil {
		return t, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return t, newError(condInvalidArg, "find server", "server address %q: want host:port: %w", addr, err)
	}
	t.addr = addr
	if o.tlsConfig != nil {
		t.tls = o.tlsConfig.Clone()
	} else {
		cfg, err := loadCredentials(t.credsDir)
		if err != nil {
			return t, err
		}
		t.tls = cfg
	}
	if t.tls.MinVersion < tls.VersionTLS13 {
		t.tls.MinVersion = tls.VersionTLS13
	}
	if t.tls.ServerName == "" {
		t.tls.ServerName = host
	}
	return t, nil
}

// loadCredentials reads a credentials directory into a TLS client
// configuration: the client certificate and key, and the trust anchors as
// the only roots.
func loadCredentials(dir string) (*tls.Config, error) {
	const op = "load credentials"
	certPath := filepath.Join(dir, CredsCertFile)
	keyPath := filepath.Join(dir, CredsKeyFile)
	trustPath := filepath.Join(dir, CredsTrustFile)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, newError(condNoCredentials, op, "credentials directory %s: %s and %s: %w", dir, CredsCertFile, CredsKeyFile, err)
	}
	trust, err := os.ReadFile(trustPath)
	if err != nil {
		return nil, newError(condNoCredentials, op, "credentials directory %s: %w", dir, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(trust) {
		return nil, newError(condNoCredentials, op, "credentials directory %s: %s holds no PEM certificate", dir, CredsTrustFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
	}, nil
}

// String describes a target for messages.
func (t target) String() string {
	if t.credsDir == "" {
		return t.addr
	}
	return fmt.Sprintf("%s (credentials %s)", t.addr, t.credsDir)
}

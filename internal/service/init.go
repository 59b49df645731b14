package service

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/store"
)

// Defaults of InitOptions.
const (
	DefaultCAName       = "certsrv CA"
	DefaultRootValidity = 10 * 365 * 24 * time.Hour
)

// trustAnchorName is the common name of the admin trust anchor.
const trustAnchorName = "certsrv admin trust anchor"

// InitOptions configure Init. The zero value makes a root CA named
// DefaultCAName with an ECDSA P-256 key and the default configuration.
type InitOptions struct {
	// Name is the CA common name and the base of the published file names
	// (publish/<Name>.crt); "" means Config.CAName when set, else
	// DefaultCAName. It must pass ca.CheckName.
	Name string
	// KeyType is the CA key type; "" means Config.KeyType when set, else
	// ca.DefaultKeyType.
	KeyType ca.KeyType
	// Passphrase, when not empty, encrypts keys/ca.key (Open then needs it).
	Passphrase []byte
	// Subordinate writes keys/ca.csr for a parent CA instead of a
	// self-signed certificate; InstallCert completes the CA.
	Subordinate bool
	// Validity is the root certificate's lifetime; 0 means
	// DefaultRootValidity. Ignored for a subordinate.
	Validity time.Duration
	// Config overrides the default configuration (listen addresses, base
	// URL, CRL periods, profiles); nil means datadir.DefaultConfig. Name
	// and KeyType above take precedence over its CAName and KeyType.
	Config *datadir.Config
	// Logger receives the database's messages; nil discards them.
	Logger *slog.Logger
}

// InitResult says what Init made.
type InitResult struct {
	AdminDir    string // the admin client credential (client.crt, client.key, trust.crt, server)
	CACertPath  string // keys/ca.crt; "" for a subordinate
	CSRPath     string // keys/ca.csr for a subordinate; "" for a root
	Subordinate bool
}

// Init creates a CA in dir, which must not be initialized
// (ErrAlreadyInitialized if it holds a configuration file, a CA key or a
// database). Unusable options give ErrBadOptions before anything is
// written. It creates the layout; the CA key (keys/ca.key, PKCS#8, mode
// 0600, encrypted when a passphrase is given) and either a self-signed
// root certificate (keys/ca.crt) or, for a subordinate, a request
// (keys/ca.csr); the admin trust anchor and the server TLS certificate
// (SANs 127.0.0.1, localhost and the configured listen host) in tls/; the
// admin client credential in admin/; the database, with principal "admin"
// holding every role under the admin credential's fingerprint; and the
// configuration file, written last. A root CA then publishes its
// certificate and a first full CRL (and delta CRL when enabled).
//
// The configuration file is the commit point: a crash before it leaves a
// directory Init refuses (it holds a key or a database) and that must be
// removed by hand; a crash after it leaves a CA whose first CRLs
// RunPublisher publishes on its first start. The caller holds the data
// directory's lock or otherwise knows no other process uses dir.
func Init(ctx context.Context, dir datadir.Dir, opts InitOptions) (*InitResult, error) {
	cfg := datadir.DefaultConfig(DefaultCAName)
	if opts.Config != nil {
		cfg = *opts.Config
		if cfg.Version == 0 {
			cfg.Version = datadir.ConfigVersion
		}
	}
	switch {
	case opts.Name != "":
		cfg.CAName = opts.Name
	case cfg.CAName == "":
		cfg.CAName = DefaultCAName
	}
	kt := opts.KeyType
	if kt == "" && cfg.KeyType != "" {
		k, err := ca.ParseKeyType(cfg.KeyType)
		if err != nil {
			return nil, fmt.Errorf("init: %w: %w", ErrBadOptions, err)
		}
		kt = k
	}
	if kt == "" {
		kt = ca.DefaultKeyType
	}
	if !kt.Valid() {
		return nil, fmt.Errorf("init: key type %q: %w: %w", string(kt), ErrBadOptions, ca.ErrBadKeyType)
	}
	cfg.KeyType = string(kt)
	if err := ca.CheckName(cfg.CAName); err != nil {
		return nil, fmt.Errorf("init: %w: %w", ErrBadOptions, err)
	}
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultRootValidity
	}
	if validity < time.Hour {
		return nil, fmt.Errorf("init: root validity %v shorter than one hour: %w", validity, ErrBadOptions)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("init: %w: %w", ErrBadOptions, err)
	}
	if _, err := crlSettingsOf(&cfg); err != nil {
		return nil, fmt.Errorf("init: %w: %w", ErrBadOptions, err)
	}
	if _, err := parseProfiles(&cfg); err != nil {
		return nil, fmt.Errorf("init: %w: %w", ErrBadOptions, err)
	}
	if err := checkUninitialized(dir, &cfg); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	key, err := ca.GenerateKey(kt)
	if err != nil {
		return nil, fmt.Errorf("init: generate CA key: %w", err)
	}
	// The root certificate is made before anything is written, and checked
	// as an Authority with the configured base URL, so that a bad setting
	// fails here rather than at the first Open. A subordinate is checked
	// the same way with a throwaway self-signed certificate.
	rootValidity := validity
	if opts.Subordinate {
		rootValidity = time.Hour
	}
	root, err := ca.NewRoot(cfg.CAName, key, rootValidity, time.Now())
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if _, err := ca.NewAuthority(cfg.CAName, root, key, nil, cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("init: %w: %w", ErrBadOptions, err)
	}
	if err := dir.MkdirAll(); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if err := ca.WriteKeyFile(dir.CAKeyPath(), key, opts.Passphrase); err != nil {
		return nil, &FileError{Op: "write CA key", Path: dir.CAKeyPath(), Err: err}
	}
	res := &InitResult{AdminDir: dir.AdminDir(), Subordinate: opts.Subordinate}
	if opts.Subordinate {
		csr, err := ca.NewSubordinateCSR(cfg.CAName, key)
		if err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		if err := fsutil.WriteFileAtomic(dir.CSRPath(), csr, 0o644); err != nil {
			return nil, &FileError{Op: "write CA request", Path: dir.CSRPath(), Err: err}
		}
		res.CSRPath = dir.CSRPath()
	} else {
		if err := ca.WriteCertFile(dir.CACertPath(), root); err != nil {
			return nil, &FileError{Op: "write CA certificate", Path: dir.CACertPath(), Err: err}
		}
		res.CACertPath = dir.CACertPath()
	}
	db, err := store.Create(ctx, StoreOptions(dir, &cfg, logger))
	if err != nil {
		return nil, fmt.Errorf("init: create database: %w", err)
	}
	if err := makeAdminCredential(ctx, dir, &cfg, db); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("init: close database: %w", err)
	}
	if err := dir.SaveConfig(&cfg); err != nil {
		return nil, &FileError{Op: "write configuration", Path: dir.ConfigPath(), Err: err}
	}
	if opts.Subordinate {
		return res, nil
	}
	c, err := Open(ctx, dir, OpenOptions{Passphrase: opts.Passphrase, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("init: open the new CA: %w", err)
	}
	if _, err := c.PublishCRL(ctx, false); err != nil {
		c.Close()
		return nil, fmt.Errorf("init: publish the first CRL: %w", err)
	}
	if c.DeltaCRLsEnabled() {
		if _, err := c.PublishCRL(ctx, true); err != nil {
			c.Close()
			return nil, fmt.Errorf("init: publish the first delta CRL: %w", err)
		}
	}
	if err := c.Close(); err != nil {
		return nil, fmt.Errorf("init: close the new CA: %w", err)
	}
	return res, nil
}

// checkUninitialized refuses a directory holding a configuration file, a
// CA key, a database or a checkpoint.
func checkUninitialized(dir datadir.Dir, cfg *datadir.Config) error {
	st := StoreOptions(dir, cfg, nil)
	for _, p := range []string{dir.ConfigPath(), dir.CAKeyPath(), dir.CACertPath(), st.DBPath, st.CheckpointPath()} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s: %s exists: %w", dir.Root, p, ErrAlreadyInitialized)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", dir.Root, err)
		}
	}
	return nil
}

// MakeAdminCredential makes a fresh admin trust anchor and server TLS
// certificate in tls/ and a fresh admin client credential in admin/, and
// registers the new credential's fingerprint for principal "admin" with
// every role. Credentials signed by an earlier trust anchor stop working
// at the next server start, because the server trusts only tls/trust.crt.
// A restore on a new host calls it, since TLS material is never copied from
// a backup. It is an offline operation: the CA is not running, the caller
// holds the data directory's lock, and db is the directory's open database.
// When "admin" was revoked (an operator retired the first credential), the
// credential is made for the first of "admin-2", "admin-3", ... that was
// not, so a restore onto a new host always yields a working credential.
func MakeAdminCredential(ctx context.Context, dir datadir.Dir, db *store.DB) error {
	cfg, err := dir.LoadConfig()
	if err != nil {
		return err
	}
	return makeAdminCredential(ctx, dir, cfg, db)
}

// makeAdminCredential does MakeAdminCredential's work with a given
// configuration. Files are written trust anchor first, admin credential
// last; a crash part way leaves a credential that does not verify or is not
// registered, and running it again repairs that.
func makeAdminCredential(ctx context.Context, dir datadir.Dir, cfg *datadir.Config, db *store.DB) error {
	now := time.Now()
	principal, err := adminName(ctx, db)
	if err != nil {
		return err
	}
	anchor, anchorKey, err := ca.NewTrustAnchor(trustAnchorName, now)
	if err != nil {
		return fmt.Errorf("make trust anchor: %w", err)
	}
	server, serverKey, err := ca.IssueServerCert(anchor, anchorKey, serverHosts(cfg.Listen), now)
	if err != nil {
		return fmt.Errorf("make server certificate: %w", err)
	}
	cred, err := ca.NewClientCredential(anchor, anchorKey, principal, CredentialValidity, now)
	if err != nil {
		return fmt.Errorf("make admin credential: %w", err)
	}
	tlsDir := dir.TLSDir()
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return &FileError{Op: "create TLS directory", Path: tlsDir, Err: err}
	}
	writes := []struct {
		path string
		fn   func(string) error
	}{
		{filepath.Join(tlsDir, trustKeyFile), func(p string) error { return ca.WriteKeyFile(p, anchorKey, nil) }},
		{filepath.Join(tlsDir, trustCertFile), func(p string) error { return ca.WriteCertFile(p, anchor) }},
		{filepath.Join(tlsDir, serverKeyFile), func(p string) error { return ca.WriteKeyFile(p, serverKey, nil) }},
		{filepath.Join(tlsDir, serverCertFile), func(p string) error { return ca.WriteCertFile(p, server) }},
	}
	for _, w := range writes {
		if err := w.fn(w.path); err != nil {
			return &FileError{Op: "write TLS credential", Path: w.path, Err: err}
		}
	}
	if err := ca.WriteCredentialDir(dir.AdminDir(), cred); err != nil {
		return &FileError{Op: "write admin credential", Path: dir.AdminDir(), Err: err}
	}
	addrPath := filepath.Join(dir.AdminDir(), serverAddrFile)
	if err := fsutil.WriteFileAtomic(addrPath, []byte(clientAddress(cfg.Listen)+"\n"), 0o644); err != nil {
		return &FileError{Op: "write admin server address", Path: addrPath, Err: err}
	}
	if err := db.GrantRoles(ctx, principal, AllRoles().Strings(), Fingerprint(cred.Cert.Raw)); err != nil {
		return fmt.Errorf("register admin credential: %w", err)
	}
	return nil
}

// adminName returns the principal a new all-roles credential is made for:
// AdminPrincipal, or the first of AdminPrincipal-2, -3, ... that was not
// revoked (a revoked name cannot be granted roles again).
func adminName(ctx context.Context, db *store.DB) (string, error) {
	for i := 1; i < 1000; i++ {
		name := AdminPrincipal
		if i > 1 {
			name = fmt.Sprintf("%s-%d", AdminPrincipal, i)
		}
		p, err := db.Principal(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return name, nil
		case err != nil:
			return "", fmt.Errorf("look up principal %s: %w", name, err)
		case !p.Revoked:
			return name, nil
		}
	}
	return "", fmt.Errorf("no principal name for a new admin credential: %s through %s-999 were all revoked", AdminPrincipal, AdminPrincipal)
}

// serverHosts returns the names the server certificate carries: 127.0.0.1,
// localhost, and the host of the listen address when it is another
// specific address or name.
func serverHosts(listen string) []string {
	hosts := []string{"127.0.0.1", "localhost"}
	h, _, err := net.SplitHostPort(listen)
	if err != nil || h == "" || h == "127.0.0.1" || h == "localhost" {
		return hosts
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		return hosts
	}
	return append(hosts, h)
}

// clientAddress returns the address a client on this host dials for a
// listen address: an unspecified or empty host becomes 127.0.0.1.
func clientAddress(listen string) string {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", p)
	}
	return listen
}

// publicSigner is a crypto.Signer that only knows its public key. It lets
// InstallCert check a certificate against the key in keys/ca.csr without
// decrypting the CA key; Sign always fails.
type publicSigner struct{ pub crypto.PublicKey }

func (p publicSigner) Public() crypto.PublicKey { return p.pub }

func (p publicSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("public key only: cannot sign")
}

// InstallCert completes a subordinate CA with the certificate its parent
// CA issued for keys/ca.csr. certPEM holds the certificate (PEM or DER),
// optionally followed by the chain above it; chainPEM holds the chain (PEM,
// nearest issuer first, ending with the root) when certPEM does not. The
// certificate must be for the request's key (ErrKeyMismatch) and be a CA
// certificate with keyCertSign, cRLSign and a subject key identifier, and
// the chain must link it to a self-signed root (ca.ErrNotCA); a certificate
// that is not valid now (expired, or not yet valid) gives
// ErrCertNotValidNow. The check
// uses the public key of keys/ca.csr, so an encrypted CA key needs no
// passphrase here. keys/chain.pem is written first and keys/ca.crt, the
// commit point, last; the next Open publishes the certificate and
// RunPublisher the first CRLs. A CA that already has its certificate gives
// ErrAlreadyInstalled. The caller holds the data directory's lock.
func InstallCert(ctx context.Context, dir datadir.Dir, certPEM []byte, chainPEM []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg, err := dir.LoadConfig()
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir.CACertPath()); err == nil {
		return fmt.Errorf("install certificate: %s exists: %w", dir.CACertPath(), ErrAlreadyInstalled)
	}
	csrPEM, err := os.ReadFile(dir.CSRPath())
	if err != nil {
		return &FileError{Op: "read CA request", Path: dir.CSRPath(), Err: err}
	}
	csr, err := parseCSRFile(csrPEM)
	if err != nil {
		return &FileError{Op: "parse CA request", Path: dir.CSRPath(), Err: err}
	}
	certs, err := parseCertInput(certPEM)
	if err != nil {
		return fmt.Errorf("install certificate: %w", err)
	}
	// A CA certificate outside its validity would be installed, published
	// and used to sign CRLs, while every issuance fails.
	if now := time.Now(); now.Before(certs[0].NotBefore) || now.After(certs[0].NotAfter) {
		return fmt.Errorf("install certificate: it is valid from %s to %s, not now (%s): %w",
			certs[0].NotBefore.UTC().Format(time.RFC3339), certs[0].NotAfter.UTC().Format(time.RFC3339),
			now.UTC().Format(time.RFC3339), ErrCertNotValidNow)
	}
	chain := certs[1:]
	if len(bytes.TrimSpace(chainPEM)) > 0 {
		more, err := ca.ParseCertsPEM(chainPEM)
		if err != nil {
			return fmt.Errorf("install certificate: chain: %w", err)
		}
		chain = append(chain, more...)
	}
	if _, err := ca.NewAuthority(cfg.CAName, certs[0], publicSigner{csr.PublicKey}, chain, cfg.BaseURL); err != nil {
		if errors.Is(err, ca.ErrKeyMismatch) {
			return fmt.Errorf("install certificate: not issued for the key of %s: %w: %w", dir.CSRPath(), ErrKeyMismatch, err)
		}
		return fmt.Errorf("install certificate: %w", err)
	}
	if len(chain) > 0 {
		if err := ca.WriteCertFile(dir.CAChainPath(), chain...); err != nil {
			return &FileError{Op: "write CA chain", Path: dir.CAChainPath(), Err: err}
		}
	}
	if err := ca.WriteCertFile(dir.CACertPath(), certs[0]); err != nil {
		return &FileError{Op: "write CA certificate", Path: dir.CACertPath(), Err: err}
	}
	return nil
}

// parseCSRFile parses a PEM or DER request and checks its self-signature,
// without policy checks.
func parseCSRFile(data []byte) (*x509.CertificateRequest, error) {
	der := data
	if t := bytes.TrimSpace(data); bytes.HasPrefix(t, []byte("-----BEGIN")) {
		block, _ := pem.Decode(t)
		if block == nil || block.Type != "CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("no CERTIFICATE REQUEST PEM block: %w", ca.ErrMalformedCSR)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ca.ErrMalformedCSR)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ca.ErrBadSignature)
	}
	return csr, nil
}

// parseCertInput reads one or more certificates, PEM or a single DER.
func parseCertInput(data []byte) ([]*x509.Certificate, error) {
	if t := bytes.TrimSpace(data); bytes.HasPrefix(t, []byte("-----BEGIN")) {
		return ca.ParseCertsPEM(t)
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ca.ErrMalformedCert)
	}
	return []*x509.Certificate{c}, nil
}

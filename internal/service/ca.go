package service

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/store"
)

// CredentialValidity is the lifetime of the admin credential Init makes and
// of the client credentials GrantRole signs.
const CredentialValidity = 2 * 365 * 24 * time.Hour

// Defaults applied by Open to zero CRL settings in the configuration.
const (
	DefaultCRLValidity = 7 * 24 * time.Hour
)

// OpenOptions configure Open.
type OpenOptions struct {
	// Passphrase decrypts keys/ca.key when it is encrypted.
	Passphrase []byte
	// Logger receives the CA's events, one line per change with the LSN
	// of its record (issuance, pending and denied requests, revocation,
	// CRL publication, role changes), and the store's recovery report;
	// nil discards them.
	Logger *slog.Logger
}

// CA is a running certificate authority: its configuration, key and
// certificate, enrollment profiles and database. Its methods are safe for
// concurrent use. Methods reached through the admin API return
// *apierr.Error values for every failure a caller can cause.
type CA struct {
	dir      datadir.Dir
	cfg      *datadir.Config
	db       *store.DB
	auth     *ca.Authority
	crlTimes crlSettings
	logger   *slog.Logger

	profiles       []ca.Profile
	profileByName  map[string]ca.Profile
	defaultProfile string

	// anchor and anchorKey sign client credentials (GrantRole); nil when
	// tls/ holds no usable trust anchor.
	anchor    *x509.Certificate
	anchorKey crypto.Signer

	// now is the clock; tests replace it.
	now func() time.Time

	// revMu orders revocation changes against CRL publication: Revoke and
	// Unrevoke hold it shared, PublishCRL exclusively, so that every change
	// recorded before a CRL's record is in that CRL and every later one
	// follows its LSN (the delta CRL rule in doc.go depends on it).
	revMu sync.RWMutex
	// roleMu serializes RevokeRole, so that two concurrent revocations
	// cannot both remove "the other" last Administrator.
	roleMu sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

// crlSettings are the CRL timings from the configuration, defaults applied.
type crlSettings struct {
	validity, overlap, interval  time.Duration
	deltaValidity, deltaInterval time.Duration // deltaValidity 0: no delta CRLs
}

func crlSettingsOf(cfg *datadir.Config) (crlSettings, error) {
	s := crlSettings{
		validity:      cfg.CRLValidity.D(),
		overlap:       cfg.CRLOverlap.D(),
		interval:      cfg.CRLInterval.D(),
		deltaValidity: cfg.DeltaCRLValidity.D(),
		deltaInterval: cfg.DeltaCRLInterval.D(),
	}
	if s.validity < 0 || s.overlap < 0 || s.interval < 0 || s.deltaValidity < 0 || s.deltaInterval < 0 {
		return s, fmt.Errorf("configuration: negative CRL period: %w", datadir.ErrBadConfig)
	}
	if s.validity == 0 {
		s.validity = DefaultCRLValidity
	}
	if s.interval == 0 {
		s.interval = s.validity
	}
	if s.deltaInterval == 0 {
		s.deltaInterval = s.deltaValidity
	}
	if s.validity < time.Minute || (s.deltaValidity != 0 && s.deltaValidity < time.Minute) {
		return s, fmt.Errorf("configuration: CRL validity below one minute: %w", datadir.ErrBadConfig)
	}
	return s, nil
}

// deltaOverlap is the overlap added to a delta CRL's nextUpdate: the full
// CRL's overlap, but at most half the delta validity.
func (s crlSettings) deltaOverlap() time.Duration { return min(s.overlap, s.deltaValidity/2) }

// StoreOptions returns the store options for a data directory and its
// configuration.
func StoreOptions(dir datadir.Dir, cfg *datadir.Config, logger *slog.Logger) store.Options {
	return store.Options{
		Layout: store.Layout{
			DBPath:  dir.DBPath(cfg.CAName),
			LogDir:  dir.LogDir(),
			SysDir:  dir.SysDir(),
			LogBase: cfg.LogBase,
		},
		SegmentSize:        cfg.LogSegmentSize,
		CheckpointInterval: cfg.CheckpointInterval.D(),
		CircularLogging:    cfg.CircularLogging,
		MinFreeSpace:       cfg.MinFreeSpace,
		Logger:             logger,
	}
}

// parseProfiles decodes Config.Profiles; empty means ca.DefaultProfiles.
func parseProfiles(cfg *datadir.Config) ([]ca.Profile, error) {
	if len(bytes.TrimSpace(cfg.Profiles)) == 0 || bytes.Equal(bytes.TrimSpace(cfg.Profiles), []byte("null")) {
		return ca.DefaultProfiles(), nil
	}
	ps, err := ca.ParseProfiles(cfg.Profiles)
	if err != nil {
		return nil, fmt.Errorf("configuration profiles: %w", err)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("configuration profiles: empty list: %w", ca.ErrBadProfile)
	}
	return ps, nil
}

// loadAuthority reads keys/ca.key, keys/ca.crt and keys/chain.pem and
// checks that they make a working CA.
func loadAuthority(dir datadir.Dir, cfg *datadir.Config, passphrase []byte) (*ca.Authority, error) {
	certPEM, err := os.ReadFile(dir.CACertPath())
	if errors.Is(err, fs.ErrNotExist) {
		if _, cerr := os.Stat(dir.CSRPath()); cerr == nil {
			return nil, &FileError{Op: "read CA certificate", Path: dir.CACertPath(),
				Err: fmt.Errorf("subordinate CA waiting for its certificate (send %s to the parent CA, then install the certificate): %w", dir.CSRPath(), ErrNotInstalled)}
		}
		return nil, &FileError{Op: "read CA certificate", Path: dir.CACertPath(), Err: err}
	}
	if err != nil {
		return nil, &FileError{Op: "read CA certificate", Path: dir.CACertPath(), Err: err}
	}
	certs, err := ca.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, &FileError{Op: "parse CA certificate", Path: dir.CACertPath(), Err: err}
	}
	key, err := readCAKey(dir, passphrase)
	if err != nil {
		return nil, err
	}
	chain, err := readChain(dir)
	if err != nil {
		return nil, err
	}
	a, err := ca.NewAuthority(cfg.CAName, certs[0], key, chain, cfg.BaseURL)
	if err != nil {
		if errors.Is(err, ca.ErrKeyMismatch) {
			return nil, fmt.Errorf("CA key %s does not belong to %s: %w: %w", dir.CAKeyPath(), dir.CACertPath(), ErrKeyMismatch, err)
		}
		return nil, fmt.Errorf("load CA: %w", err)
	}
	return a, nil
}

// readCAKey reads and decrypts keys/ca.key.
func readCAKey(dir datadir.Dir, passphrase []byte) (crypto.Signer, error) {
	keyPEM, err := os.ReadFile(dir.CAKeyPath())
	if err != nil {
		return nil, &FileError{Op: "read CA key", Path: dir.CAKeyPath(), Err: err}
	}
	key, err := ca.ParsePrivateKey(keyPEM, passphrase)
	if err != nil {
		return nil, &FileError{Op: "decode CA key", Path: dir.CAKeyPath(), Err: err}
	}
	return key, nil
}

// readChain reads keys/chain.pem; a missing or empty file is an empty
// chain (a root CA).
func readChain(dir datadir.Dir) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(dir.CAChainPath())
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(bytes.TrimSpace(b)) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, &FileError{Op: "read CA chain", Path: dir.CAChainPath(), Err: err}
	}
	chain, err := ca.ParseCertsPEM(b)
	if err != nil {
		return nil, &FileError{Op: "parse CA chain", Path: dir.CAChainPath(), Err: err}
	}
	return chain, nil
}

// Trust anchor file names in tls/.
const (
	trustCertFile  = "trust.crt"
	trustKeyFile   = "trust.key"
	serverCertFile = "server.crt"
	serverKeyFile  = "server.key"
	serverAddrFile = "server"
)

// loadTrustAnchor reads tls/trust.crt and tls/trust.key.
func loadTrustAnchor(dir datadir.Dir) (*x509.Certificate, crypto.Signer, error) {
	certPath := filepath.Join(dir.TLSDir(), trustCertFile)
	keyPath := filepath.Join(dir.TLSDir(), trustKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, &FileError{Op: "read trust anchor", Path: certPath, Err: fmt.Errorf("%w: %w", ErrNoTrustAnchor, err)}
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, &FileError{Op: "read trust anchor key", Path: keyPath, Err: fmt.Errorf("%w: %w", ErrNoTrustAnchor, err)}
	}
	certs, err := ca.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, nil, &FileError{Op: "parse trust anchor", Path: certPath, Err: fmt.Errorf("%w: %w", ErrNoTrustAnchor, err)}
	}
	key, err := ca.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		return nil, nil, &FileError{Op: "parse trust anchor key", Path: keyPath, Err: fmt.Errorf("%w: %w", ErrNoTrustAnchor, err)}
	}
	if err := ca.CheckTrustAnchor(certs[0], key); err != nil {
		return nil, nil, &FileError{Op: "check trust anchor", Path: certPath, Err: fmt.Errorf("%w: %w", ErrNoTrustAnchor, err)}
	}
	return certs[0], key, nil
}

// Open loads a data directory's configuration, profiles, CA key and
// certificate, and admin trust anchor, opens the database (soft recovery),
// and makes sure the CA certificate is published under publish/. The
// caller holds the data directory's lock for as long as the CA is open.
//
// An encrypted CA key without (or with a wrong) Passphrase fails with an
// error matching ca.ErrPassphraseRequired (or ca.ErrPassphrase); a
// subordinate CA whose certificate is not installed fails with
// ErrNotInstalled. A missing trust anchor in tls/ is not an error (GrantRole
// then fails with ErrNoTrustAnchor as its cause); a damaged one is.
func Open(ctx context.Context, dir datadir.Dir, opts OpenOptions) (*CA, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := dir.LoadConfig()
	if err != nil {
		return nil, err
	}
	if err := ca.CheckName(cfg.CAName); err != nil {
		return nil, fmt.Errorf("configuration ca_name: %w: %w", datadir.ErrBadConfig, err)
	}
	crlTimes, err := crlSettingsOf(cfg)
	if err != nil {
		return nil, err
	}
	profiles, err := parseProfiles(cfg)
	if err != nil {
		return nil, err
	}
	auth, err := loadAuthority(dir, cfg, opts.Passphrase)
	if err != nil {
		return nil, err
	}
	auth.NoDeltaCRLs = cfg.DeltaCRLValidity.D() == 0
	c := &CA{
		dir:           dir,
		cfg:           cfg,
		auth:          auth,
		crlTimes:      crlTimes,
		logger:        logger,
		profiles:      profiles,
		profileByName: make(map[string]ca.Profile, len(profiles)),
		now:           time.Now,
	}
	for _, p := range profiles {
		c.profileByName[p.Name] = p
	}
	c.defaultProfile = profiles[0].Name
	if _, ok := c.profileByName[ca.ProfileTLSServer]; ok {
		c.defaultProfile = ca.ProfileTLSServer
	}
	c.anchor, c.anchorKey, err = loadTrustAnchor(dir)
	if err != nil {
		var fe *FileError
		if !errors.As(err, &fe) || !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		logger.Warn("no admin trust anchor in tls/; client credentials cannot be signed", "err", err)
		c.anchor, c.anchorKey = nil, nil
	}
	if err := c.publishCACert(); err != nil {
		return nil, err
	}
	c.db, err = store.Open(ctx, StoreOptions(dir, cfg, logger))
	if err != nil {
		if strings.HasPrefix(err.Error(), "open database") {
			return nil, err // the store says so itself
		}
		return nil, fmt.Errorf("open database: %w", err)
	}
	return c, nil
}

// publishCACert writes publish/<Name>.crt (DER) unless it already holds
// the CA certificate.
func (c *CA) publishCACert() error {
	path := filepath.Join(c.dir.PublishDir(), c.auth.Name+".crt")
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, c.auth.Cert.Raw) {
		return nil
	}
	if err := os.MkdirAll(c.dir.PublishDir(), 0o755); err != nil {
		return &FileError{Op: "create publication directory", Path: c.dir.PublishDir(), Err: err}
	}
	if err := fsutil.WriteFileAtomic(path, c.auth.Cert.Raw, 0o644); err != nil {
		return &FileError{Op: "publish CA certificate", Path: path, Err: err}
	}
	return nil
}

// Close closes the database (a final checkpoint, so a clean stop leaves
// nothing to replay). Later calls return the first call's result. Calls
// that reach the database after Close fail.
func (c *CA) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.db.Close() })
	return c.closeErr
}

// Name returns the CA name (the CA certificate's common name and the base
// of the published file names).
func (c *CA) Name() string { return c.auth.Name }

// CheckPages reads and checks every page of the CA database
// (store.DB.CheckPages); on damage the database fails and the error says
// how to restore it.
func (c *CA) CheckPages(ctx context.Context) (time.Duration, error) { return c.db.CheckPages(ctx) }

// WritesRefused returns why the CA refuses changes while it still answers
// reads, or nil: its disk is full (store.ErrStalled; changes are accepted
// again by themselves once there is space). A failed database refuses
// every call instead, each error saying so.
func (c *CA) WritesRefused() error { return c.db.Stalled() }

// Config returns the configuration the CA was opened with. The caller must
// not modify it.
func (c *CA) Config() *datadir.Config { return c.cfg }

// Dir returns the CA's data directory.
func (c *CA) Dir() datadir.Dir { return c.dir }

// Store returns the CA's database.
func (c *CA) Store() *store.DB { return c.db }

// Certificate returns the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.auth.Cert }

// Chain returns the certificates above the CA certificate, nearest first;
// empty for a root CA.
func (c *CA) Chain() []*x509.Certificate { return c.auth.Chain }

// Profiles returns the enrollment profiles, in configuration order.
func (c *CA) Profiles() []ca.Profile { return c.profiles }

// DefaultProfile returns the profile name Submit uses when none is given:
// "tls-server" when configured, else the first profile.
func (c *CA) DefaultProfile() string { return c.defaultProfile }

// TrustAnchor returns the admin trust anchor loaded from tls/, or nil.
func (c *CA) TrustAnchor() *x509.Certificate { return c.anchor }

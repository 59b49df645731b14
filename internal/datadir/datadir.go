// Package datadir knows the layout of a certsrv data directory, its
// configuration file and its process lock. It owns no data itself.
//
// Layout (SPEC §2):
//
//	certsrv.json            configuration (Config)
//	certsrv.lock            process lock (flock), held while a process owns the directory
//	db/<CAName>.db          SQLite database
//	log/<base>XXXXXXXX.log  transaction log generations
//	sys/<base>.chk          checkpoint
//	keys/ca.key ca.crt chain.pem   CA key (PKCS#8 PEM, 0600), certificate, chain above it
//	publish/                dynamic files: <CA>.crt, <CA>.crl, <CA>+.crl
//	tls/                    trust.crt trust.key (admin trust anchor), server.crt server.key
//	admin/                  the admin client credential: client.crt client.key trust.crt server
//	restore/restore.json    the restore-pending record
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DefaultDir is the data directory used when none is given.
const DefaultDir = "certsrv-data"

// Sentinel errors.
var (
	// ErrLocked means another process holds the data directory's lock.
	ErrLocked = errors.New("data directory is in use by another process")
	// ErrNotInitialized means the directory holds no configuration file.
	ErrNotInitialized = errors.New("data directory is not initialized")
)

// Dir is a data directory. The zero value is not usable; use New.
type Dir struct {
	Root string // absolute path
}

// New returns the data directory at path, made absolute. It does not touch
// the disk.
func New(path string) (Dir, error) {
	if path == "" {
		path = DefaultDir
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Dir{}, fmt.Errorf("data directory %q: %w", path, err)
	}
	return Dir{Root: abs}, nil
}

// ConfigPath is the configuration file.
func (d Dir) ConfigPath() string { return filepath.Join(d.Root, "certsrv.json") }

// LockPath is the process lock file.
func (d Dir) LockPath() string { return filepath.Join(d.Root, "certsrv.lock") }

// DBDir is the directory of the SQLite database.
func (d Dir) DBDir() string { return filepath.Join(d.Root, "db") }

// DBPath is the SQLite database file of the CA named caName.
func (d Dir) DBPath(caName string) string { return filepath.Join(d.DBDir(), caName+".db") }

// LogDir is the transaction-log directory.
func (d Dir) LogDir() string { return filepath.Join(d.Root, "log") }

// SysDir is the checkpoint directory.
func (d Dir) SysDir() string { return filepath.Join(d.Root, "sys") }

// KeysDir holds the CA key, certificate and chain.
func (d Dir) KeysDir() string { return filepath.Join(d.Root, "keys") }

// CAKeyPath is the CA private key (PKCS#8 PEM).
func (d Dir) CAKeyPath() string { return filepath.Join(d.KeysDir(), "ca.key") }

// CACertPath is the CA certificate (PEM).
func (d Dir) CACertPath() string { return filepath.Join(d.KeysDir(), "ca.crt") }

// CAChainPath holds the certificates above the CA certificate (PEM), empty
// for a root CA.
func (d Dir) CAChainPath() string { return filepath.Join(d.KeysDir(), "chain.pem") }

// CSRPath is where a subordinate CA's certificate request is written.
func (d Dir) CSRPath() string { return filepath.Join(d.KeysDir(), "ca.csr") }

// PublishDir holds the dynamic files.
func (d Dir) PublishDir() string { return filepath.Join(d.Root, "publish") }

// TLSDir holds the admin trust anchor and the server TLS credential.
func (d Dir) TLSDir() string { return filepath.Join(d.Root, "tls") }

// AdminDir holds the admin client credential made at init.
func (d Dir) AdminDir() string { return filepath.Join(d.Root, "admin") }

// RestoreDir holds the restore-pending record.
func (d Dir) RestoreDir() string { return filepath.Join(d.Root, "restore") }

// MkdirAll creates every directory of the layout (mode 0700).
func (d Dir) MkdirAll() error {
	for _, p := range []string{d.Root, d.DBDir(), d.LogDir(), d.SysDir(), d.KeysDir(), d.PublishDir(), d.TLSDir(), d.AdminDir(), d.RestoreDir()} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}

// Initialized reports whether the directory holds a configuration file.
func (d Dir) Initialized() bool {
	_, err := os.Stat(d.ConfigPath())
	return err == nil
}

// Lock is a held process lock on a data directory.
type Lock struct {
	f *os.File
}

// Acquire takes the data directory's process lock without waiting. It
// returns ErrLocked if another process holds it. The lock is released by
// Release or when the process exits, however it exits.
func (d Dir) Acquire() (*Lock, error) {
	if err := os.MkdirAll(d.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", d.Root, err)
	}
	f, err := os.OpenFile(d.LockPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", d.Root, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", d.LockPath(), err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return &Lock{f: f}, nil
}

// Release drops the lock. It is safe to call on a nil Lock and twice.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Running reports whether some process holds the directory's lock now.
func (d Dir) Running() bool {
	l, err := d.Acquire()
	if err != nil {
		return errors.Is(err, ErrLocked)
	}
	l.Release()
	return false
}

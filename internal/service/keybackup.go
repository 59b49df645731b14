package service

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
)

// MinKeyBackupPassword is the shortest password BackupKey accepts, in
// characters.
const MinKeyBackupPassword = 8

// BackupKey returns the CA key, certificate and chain as a PKCS#12 file
// encrypted with password (PBES2/AES-256, see ca.ExportPKCS12) and its
// conventional file name, "<Name>.p12". A password shorter than
// MinKeyBackupPassword characters is InvalidArg. The key never enters the
// database or its backups; this is the only way it leaves the CA.
func (c *CA) BackupKey(ctx context.Context, password string) (p12 []byte, fileName string, err error) {
	if utf8.RuneCountInString(password) < MinKeyBackupPassword {
		return nil, "", apierr.New(apierr.InvalidArg, "key backup password: at least %d characters required", MinKeyBackupPassword)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	data, err := ca.ExportPKCS12(c.auth.Key, c.auth.Cert, c.auth.Chain, password)
	if err != nil {
		return nil, "", internal("export CA key", err)
	}
	c.change(ctx, "CA key exported", "file", c.auth.Name+".p12")
	return data, c.auth.Name + ".p12", nil
}

// KeyRestoreOptions adjust KeyRestoreWithOptions.
type KeyRestoreOptions struct {
	// Passphrase encrypts the restored keys/ca.key; empty writes it
	// unencrypted (as Init does without a passphrase).
	Passphrase []byte
	// LockHeld says the caller already holds the data directory's lock
	// (a restore in progress); KeyRestoreWithOptions then does not take it.
	LockHeld bool
}

// KeyRestore installs the CA key from a PKCS#12 key backup (BackupKey's
// output) into a stopped CA's data directory, unencrypted. It is
// KeyRestoreWithOptions with zero options.
func KeyRestore(ctx context.Context, dir datadir.Dir, p12 []byte, password string) error {
	return KeyRestoreWithOptions(ctx, dir, p12, password, KeyRestoreOptions{})
}

// KeyRestoreWithOptions installs the CA key from a PKCS#12 key backup. It
// runs only while the CA is stopped: it takes the data directory's lock
// (datadir.ErrLocked while a server holds it) unless opts.LockHeld.
//
// When keys/ca.crt exists the key must belong to it (ErrKeyMismatch,
// nothing written). When it does not (a restore on a new host), the
// certificate and chain from the file are written as keys/ca.crt and
// keys/chain.pem; the certificate must then be a CA certificate for the
// key (ca.ErrNotCA). The key is written to keys/ca.key (PKCS#8, mode 0600,
// encrypted with opts.Passphrase if given) atomically. An existing
// keys/ca.key is first copied to keys/ca.key.bak (mode 0600, replacing an
// older copy), so a restore never destroys the only copy of a key; a crash
// at any step leaves either the old or the new ca.key in place, never a
// partial one. A wrong password matches ca.ErrPassphrase.
func KeyRestoreWithOptions(ctx context.Context, dir datadir.Dir, p12 []byte, password string, opts KeyRestoreOptions) error {
	release, err := beginKeyRestore(ctx, dir, &opts)
	if err != nil {
		return err
	}
	defer release()
	key, cert, chain, err := ca.ImportPKCS12(p12, password)
	if err != nil {
		return fmt.Errorf("key restore: %w", err)
	}
	return InstallKey(ctx, dir, key, cert, chain, opts)
}

// beginKeyRestore checks ctx and takes the data directory's lock unless
// opts says the caller holds it, and then marks it held in opts for the
// calls it makes; release gives it back.
func beginKeyRestore(ctx context.Context, dir datadir.Dir, opts *KeyRestoreOptions) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.LockHeld {
		return func() {}, nil
	}
	lock, err := dir.Acquire()
	if err != nil {
		return nil, fmt.Errorf("key restore: the CA must be stopped: %w", err)
	}
	opts.LockHeld = true
	return func() { lock.Release() }, nil
}

// InstallKey is KeyRestoreWithOptions for a key backup already decoded
// (ca.ImportPKCS12): the CA key, its certificate and the chain above it.
func InstallKey(ctx context.Context, dir datadir.Dir, key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate, opts KeyRestoreOptions) error {
	release, err := beginKeyRestore(ctx, dir, &opts)
	if err != nil {
		return err
	}
	defer release()
	certPEM, err := os.ReadFile(dir.CACertPath())
	switch {
	case err == nil:
		certs, err := ca.ParseCertsPEM(certPEM)
		if err != nil {
			return &FileError{Op: "parse CA certificate", Path: dir.CACertPath(), Err: err}
		}
		if err := ca.KeyMatchesCert(key, certs[0]); err != nil {
			return fmt.Errorf("key restore: the key in the file does not belong to %s: %w: %w", dir.CACertPath(), ErrKeyMismatch, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := ca.CheckSubordinateCert(cert, key); err != nil {
			return fmt.Errorf("key restore: certificate in the file: %w", err)
		}
		if err := os.MkdirAll(dir.KeysDir(), 0o700); err != nil {
			return &FileError{Op: "create keys directory", Path: dir.KeysDir(), Err: err}
		}
		if len(chain) > 0 {
			if err := ca.WriteCertFile(dir.CAChainPath(), chain...); err != nil {
				return &FileError{Op: "write CA chain", Path: dir.CAChainPath(), Err: err}
			}
		}
		// The certificate is written before the key: a crash in between
		// leaves a certificate without its key, which Open reports and a
		// second KeyRestore completes.
		if err := ca.WriteCertFile(dir.CACertPath(), cert); err != nil {
			return &FileError{Op: "write CA certificate", Path: dir.CACertPath(), Err: err}
		}
	default:
		return &FileError{Op: "read CA certificate", Path: dir.CACertPath(), Err: err}
	}
	if old, err := os.ReadFile(dir.CAKeyPath()); err == nil {
		bak := dir.CAKeyPath() + ".bak"
		if err := fsutil.WriteFileAtomic(bak, old, 0o600); err != nil {
			return &FileError{Op: "keep previous CA key", Path: bak, Err: err}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return &FileError{Op: "read previous CA key", Path: dir.CAKeyPath(), Err: err}
	}
	if err := ca.WriteKeyFile(dir.CAKeyPath(), key, opts.Passphrase); err != nil {
		return &FileError{Op: "write CA key", Path: dir.CAKeyPath(), Err: err}
	}
	return fsutil.SyncDir(filepath.Dir(dir.CAKeyPath()))
}

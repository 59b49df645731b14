package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

// Sentinel errors of the local operations (Init, Open, InstallCert,
// KeyRestore, MakeAdminCredential). Operations reached through the admin
// API return *apierr.Error values instead; see the package documentation.
var (
	// ErrAlreadyInitialized: Init found a configuration file, a CA key or a
	// database in the data directory.
	ErrAlreadyInitialized = errors.New("data directory is already initialized")
	// ErrNotInstalled: the CA is a subordinate whose certificate has not
	// been installed yet (keys/ca.csr exists, keys/ca.crt does not).
	ErrNotInstalled = errors.New("CA certificate not installed")
	// ErrAlreadyInstalled: InstallCert found a CA certificate in place.
	ErrAlreadyInstalled = errors.New("CA certificate already installed")
	// ErrCertNotValidNow: InstallCert was given a CA certificate that is
	// expired or not yet valid.
	ErrCertNotValidNow = errors.New("CA certificate not valid now")
	// ErrKeyMismatch: a private key does not belong to the CA certificate
	// (InstallCert, KeyRestore). Errors matching it also match
	// ca.ErrKeyMismatch.
	ErrKeyMismatch = errors.New("key does not belong to the CA certificate")
	// ErrNoTrustAnchor: tls/trust.crt or tls/trust.key is missing or
	// unusable, so no client credential can be signed.
	ErrNoTrustAnchor = errors.New("admin trust anchor unavailable")
	// ErrBadOptions: an option or configuration value given to Init is
	// unusable (a CA name, key type, root validity, base URL, CRL period or
	// profile list); nothing was written.
	ErrBadOptions = errors.New("invalid options")
)

// FileError reports a file of the data directory that could not be read,
// parsed or written: the operation, the path and the cause.
type FileError struct {
	Op   string // what was being done: "read CA key", "write CA certificate", ...
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err) }

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// internal wraps an unexpected failure (disk, database) as an apierr
// Unexpected error that keeps err as its cause; a database stalled on a
// full disk (store.ErrStalled) is DiskFull, and a failed one
// (store.ErrFailed) says that a restart recovers it. Context cancellation and
// deadline errors are returned unchanged, so a transport can report them
// with their own meaning.
func internal(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	switch {
	case errors.Is(err, store.ErrStalled):
		// Nothing was written; writes resume by themselves once the
		// database's disk has space.
		return apierr.New(apierr.DiskFull, "%s: %w", what, err)
	case errors.Is(err, store.ErrFailed) && !errors.Is(err, store.ErrIntegrity):
		// Every call fails, Ping included (the caller's principal cannot
		// be read): say what ends it. A damaged file says so itself.
		return apierr.New(apierr.Unexpected, "%s: %w; restart the CA: certsrv serve recovers the database from its log", what, err)
	}
	return apierr.New(apierr.Unexpected, "%s: %w", what, err)
}

// csrError maps an error from ca.CheckCSR or ca.Authority.Issue to the API
// error a caller sees. The ca error stays the cause, so errors.Is against
// the ca sentinels keeps working.
func csrError(err error) error {
	switch {
	case errors.Is(err, ca.ErrTooLarge):
		return apierr.New(apierr.TooLarge, "%w", err)
	case errors.Is(err, ca.ErrMalformedCSR), errors.Is(err, ca.ErrBadSignature):
		return apierr.New(apierr.BadRequest, "%w", err)
	case errors.Is(err, ca.ErrKeyNotAllowed), errors.Is(err, ca.ErrSANNotAllowed),
		errors.Is(err, ca.ErrSubjectNotAllowed), errors.Is(err, ca.ErrUnknownProfile):
		return apierr.New(apierr.PolicyDenied, "%w", err)
	case errors.Is(err, ca.ErrBadSerial), errors.Is(err, ca.ErrBadReason):
		return apierr.New(apierr.InvalidArg, "%w", err)
	}
	return internal("issue certificate", err)
}

// storeError maps a store error for an operation on request id or serial
// to an API error.
func storeError(what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotPending):
		return apierr.New(apierr.BadRequestStatus, "%s: %w", what, err)
	case errors.Is(err, store.ErrAlreadyRevoked):
		return apierr.New(apierr.BadRequestStatus, "%s: %w", what, err)
	case errors.Is(err, store.ErrNotOnHold):
		return apierr.New(apierr.BadRequestStatus, "%s: %w", what, err)
	case errors.Is(err, store.ErrDuplicateSerial):
		return apierr.New(apierr.AlreadyExists, "%s: %w", what, err)
	case errors.Is(err, store.ErrPrincipalRevoked):
		return apierr.New(apierr.BadRequestStatus, "%s: %w", what, err)
	case errors.Is(err, store.ErrInvalidArgument):
		return apierr.New(apierr.InvalidArg, "%s: %w", what, err)
	}
	return internal(what, err)
}

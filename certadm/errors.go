package certadm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/certsrv/certsrv/internal/apierr"
)

// Sentinel errors. Every error a function or method of this package returns
// is an *Error, and an *Error matches exactly the sentinels of its condition
// with errors.Is (ErrUnauthenticated also matches ErrAccessDenied). The
// comment on each sentinel names the certbcli.h or winerror.h condition and
// the HRESULT that HRESULT reports for it.
var (
	// ErrAccessDenied: the caller's credential is not accepted, or its
	// principal lacks the role the operation needs. E_ACCESSDENIED 0x80070005.
	ErrAccessDenied = errors.New("access denied")
	// ErrUnauthenticated: the server did not accept the client certificate
	// (not issued by the server's trust anchor, or expired, or for a
	// principal the server does not know). It also matches
	// ErrAccessDenied. A credential whose principal was revoked (certadm
	// role revoke) passes the handshake and gets ErrAccessDenied alone.
	// E_ACCESSDENIED 0x80070005.
	ErrUnauthenticated = errors.New("not authenticated")
	// ErrInvalidArg: an argument is malformed or out of range.
	// E_INVALIDARG 0x80070057.
	ErrInvalidArg = errors.New("invalid argument")
	// ErrNotFound: the named object (file, certificate, principal) does not
	// exist. ERROR_FILE_NOT_FOUND 0x80070002.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the object to create exists already.
	// ERROR_ALREADY_EXISTS 0x800700B7.
	ErrAlreadyExists = errors.New("already exists")
	// ErrUnexpected: a condition this package does not know, including a
	// server-side failure. E_UNEXPECTED 0x8000FFFF, or the HRESULT the server
	// sent for a condition newer than this package.
	ErrUnexpected = errors.New("unexpected failure")
	// ErrNotImplemented: the server does not offer the operation.
	// E_NOTIMPL 0x80004001.
	ErrNotImplemented = errors.New("not implemented")
	// ErrServerSuspended: the CA is suspended for restore or recovery.
	// CERTSRV_E_SERVER_SUSPENDED 0x80094006.
	ErrServerSuspended = errors.New("server suspended")
	// ErrNoRequest: no request has the given id. CERTSRV_E_NO_REQUEST 0x80094002.
	ErrNoRequest = errors.New("no such request")
	// ErrBadRequestStatus: the request is not in a state that allows the
	// operation (for example approving an issued request).
	// CERTSRV_E_BAD_REQUESTSTATUS 0x80094003.
	ErrBadRequestStatus = errors.New("bad request status")
	// ErrBadRequest: a certificate request or certificate is malformed or
	// fails its checks. NTE_BAD_DATA 0x80090005.
	ErrBadRequest = errors.New("bad request data")
	// ErrPolicyDenied: the CA's policy refuses the request.
	// CERTSRV_E_TEMPLATE_DENIED 0x80094012.
	ErrPolicyDenied = errors.New("denied by policy")
	// ErrTooLarge: a request exceeds the server's size limit.
	// CERTSRV_E_ENCODING_LENGTH 0x80094007.
	ErrTooLarge = errors.New("request too large")
	// ErrInvalidBackupSequence: a backup call came out of order, or after
	// the session ended. hrInvalidBackupSequence 0xC8000209.
	ErrInvalidBackupSequence = errors.New("invalid backup sequence")
	// ErrBackupInProgress: another backup session is running.
	// hrBackupInProgress 0xC80001F9.
	ErrBackupInProgress = errors.New("backup in progress")
	// ErrNoBackup: no backup session is in progress. hrNoBackup 0xC8000208.
	ErrNoBackup = errors.New("no backup in progress")
	// ErrFullBackupNotTaken: a logs-only backup needs a recorded full backup
	// first. hrFullBackupNotTaken 0xC7FF000E.
	ErrFullBackupNotTaken = errors.New("full backup not taken")
	// ErrCircularLogging: logs-only backups are refused while circular
	// logging is on. hrCircularLogging 0xC7FF000B.
	ErrCircularLogging = errors.New("circular logging is enabled")
	// ErrLogFileNotFound: a log generation the backup needs was deleted.
	// hrLogFileNotFound 0xC7FF000A.
	ErrLogFileNotFound = errors.New("log file not found")
	// ErrLogFileCorrupt: a log generation failed verification while it was
	// served. hrLogFileCorrupt 0xC80001F5.
	ErrLogFileCorrupt = errors.New("log file corrupt")
	// ErrAlreadyOpen: a backup file is open already. hrAlreadyOpen 0xC7FF0005.
	ErrAlreadyOpen = errors.New("file already open")
	// ErrRestoreInProgress: a restore is registered or running.
	// hrRestoreInProgress 0xC7FF0004.
	ErrRestoreInProgress = errors.New("restore in progress")
	// ErrIncrementalBackupDisabled: incremental backups are disabled.
	// hrIncrementalBackupDisabled 0xC7FF0009.
	ErrIncrementalBackupDisabled = errors.New("incremental backup disabled")
	// ErrDiskFull: a file system is full: the CA's database disk (the
	// server refuses writes until it has space again, and then accepts them
	// without a restart) or, for a local operation, the disk written to
	// (ENOSPC, EDQUOT). ERROR_DISK_FULL 0x80070070.
	ErrDiskFull = errors.New("disk full")
	// ErrUnavailable: the server could not be reached (connection refused,
	// TLS handshake failed, no answer within the dial timeout).
	// hrCouldNotConnect 0xC7FF0007.
	ErrUnavailable = errors.New("server unavailable")
	// ErrNoCredentials: no credentials directory was given or found, or its
	// files cannot be loaded. ERROR_FILE_NOT_FOUND 0x80070002.
	ErrNoCredentials = errors.New("no usable credentials")
	// ErrTruncatedFile: a backup file stream ended before the size announced
	// at open. When the connection broke (the server stopped or died, the
	// network failed), the error matches ErrUnavailable too.
	// ERROR_HANDLE_EOF 0x80070026.
	ErrTruncatedFile = errors.New("backup file truncated")
	// ErrInvalidData: a backup file stream sent a chunk at an unexpected
	// offset, or more bytes than announced, or the server sent a value this
	// package cannot represent. ERROR_INVALID_DATA 0x8007000D.
	ErrInvalidData = errors.New("invalid data from server")
)

// HRESULT values this package reports beyond the apierr table.
const (
	hrCouldNotConnect = 0xC7FF0007
	hrFileNotFound    = 0x80070002
	hrAlreadyExists   = 0x800700B7
	hrAccessDenied    = 0x80070005
	hrDiskFull        = 0x80070070
	hrWriteProtect    = 0x80070013
	hrHandleEOF       = 0x80070026
	hrInvalidData     = 0x8007000D
	hrTimeout         = 0x800705B4
	hrCancelled       = 0x800704C7
	hrUnexpected      = 0x8000FFFF
)

// condition is one row of the table that ties a wire Code to the sentinels
// an *Error of that Code matches.
type condition struct {
	code  apierr.Code
	kinds []error
}

// conditions lists every apierr Code this package knows, each with its
// sentinels.
var conditions = []condition{
	{apierr.AccessDenied, []error{ErrAccessDenied}},
	{apierr.Unauthenticated, []error{ErrUnauthenticated, ErrAccessDenied}},
	{apierr.InvalidArg, []error{ErrInvalidArg}},
	{apierr.NotFound, []error{ErrNotFound}},
	{apierr.AlreadyExists, []error{ErrAlreadyExists}},
	{apierr.Unexpected, []error{ErrUnexpected}},
	{apierr.NotImplemented, []error{ErrNotImplemented}},
	{apierr.ServerSuspended, []error{ErrServerSuspended}},
	{apierr.NoRequest, []error{ErrNoRequest}},
	{apierr.BadRequestStatus, []error{ErrBadRequestStatus}},
	{apierr.BadRequest, []error{ErrBadRequest}},
	{apierr.PolicyDenied, []error{ErrPolicyDenied}},
	{apierr.TooLarge, []error{ErrTooLarge}},
	{apierr.BackupSequence, []error{ErrInvalidBackupSequence}},
	{apierr.BackupInProgress, []error{ErrBackupInProgress}},
	{apierr.NoBackup, []error{ErrNoBackup}},
	{apierr.FullBackupNotTaken, []error{ErrFullBackupNotTaken}},
	{apierr.CircularLogging, []error{ErrCircularLogging}},
	{apierr.LogFileNotFound, []error{ErrLogFileNotFound}},
	{apierr.LogFileCorrupt, []error{ErrLogFileCorrupt}},
	{apierr.AlreadyOpen, []error{ErrAlreadyOpen}},
	{apierr.RestoreInProgress, []error{ErrRestoreInProgress}},
	{apierr.IncrementalDisabled, []error{ErrIncrementalBackupDisabled}},
	{apierr.DiskFull, []error{ErrDiskFull}},
}

// clientConditions are the conditions detected on the client side. Their
// reasons are the certbcli.h or winerror.h names.
var (
	condUnavailable   = condition{apierr.Code{Reason: "hrCouldNotConnect", HRESULT: hrCouldNotConnect}, []error{ErrUnavailable}}
	condNoCredentials = condition{apierr.Code{Reason: "ERROR_FILE_NOT_FOUND", HRESULT: hrFileNotFound}, []error{ErrNoCredentials}}
	condTruncated     = condition{apierr.Code{Reason: "ERROR_HANDLE_EOF", HRESULT: hrHandleEOF}, []error{ErrTruncatedFile}}
	condInvalidData   = condition{apierr.Code{Reason: "ERROR_INVALID_DATA", HRESULT: hrInvalidData}, []error{ErrInvalidData}}
	condTimeout       = condition{apierr.Code{Reason: "ERROR_TIMEOUT", HRESULT: hrTimeout}, nil}
	condCancelled     = condition{apierr.Code{Reason: "ERROR_CANCELLED", HRESULT: hrCancelled}, nil}
	// The local checks below report the same conditions the server would.
	condSequence    = condition{apierr.BackupSequence, []error{ErrInvalidBackupSequence}}
	condInvalidArg  = condition{apierr.InvalidArg, []error{ErrInvalidArg}}
	condUnexpected  = condition{apierr.Unexpected, []error{ErrUnexpected}}
	condAccess      = condition{apierr.AccessDenied, []error{ErrAccessDenied}}
	condUnauthentic = condition{apierr.Unauthenticated, []error{ErrUnauthenticated, ErrAccessDenied}}
	condNotImpl     = condition{apierr.NotImplemented, []error{ErrNotImplemented}}
	condAlreadyOpen = condition{apierr.AlreadyOpen, []error{ErrAlreadyOpen}}
)

// Error is the error every function and method of this package returns. It
// names the operation, the condition (Reason and HRESULT, as certbcli.h
// callers know them) and the message the server or the transport gave.
//
// Match an Error with errors.Is against the sentinels above; read its
// HRESULT with the HRESULT function or the field. Err holds a cause found on
// the client side (a file-system error, context.Canceled); causes on the
// server never cross the wire, so Err is nil for conditions the server
// reported.
type Error struct {
	// Op is what was being done, in lower case: "ping", "backup prepare",
	// "read ca00000003.log".
	Op string
	// Reason is the stable name of the condition, for example
	// "hrInvalidBackupSequence" or "E_ACCESSDENIED".
	Reason string
	// HRESULT is the certbcli.h value for the condition.
	HRESULT uint32
	// Message is the human-readable text from the server or the transport.
	Message string
	// Err is the client-side cause, or nil.
	Err error

	kinds []error
}

// Error returns "op: message".
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && len(e.kinds) > 0 {
		msg = e.kinds[0].Error()
	}
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Op == "" {
		return msg
	}
	return e.Op + ": " + msg
}

// Is reports whether target is one of the sentinels of e's condition.
func (e *Error) Is(target error) bool {
	for _, k := range e.kinds {
		if k == target {
			return true
		}
	}
	return false
}

// Unwrap returns the client-side cause, or nil.
func (e *Error) Unwrap() error { return e.Err }

// newError builds an *Error for a condition. A %w verb in format also
// records its argument as the cause.
func newError(c condition, op, format string, args ...any) *Error {
	w := fmt.Errorf(format, args...)
	return &Error{Op: op, Reason: c.code.Reason, HRESULT: c.code.HRESULT, Message: w.Error(), Err: errors.Unwrap(w), kinds: c.kinds}
}

// HRESULT returns the certbcli.h HRESULT for err: 0 (S_OK) for nil; the
// HRESULT of the first *Error in err's chain; the value of the sentinel err
// matches, when err is or wraps a sentinel of this package; ERROR_TIMEOUT
// 0x800705B4 and ERROR_CANCELLED 0x800704C7 for context deadline and
// cancellation; ERROR_FILE_NOT_FOUND 0x80070002, E_ACCESSDENIED 0x80070005
// and ERROR_ALREADY_EXISTS 0x800700B7 for the matching io/fs errors;
// ERROR_DISK_FULL 0x80070070 for a full file system or exhausted quota
// (ENOSPC, EDQUOT) and ERROR_WRITE_PROTECT 0x80070013 for a read-only one
// (EROFS); and E_UNEXPECTED 0x8000FFFF for anything else.
func HRESULT(err error) uint32 {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.HRESULT
	}
	for _, c := range append(conditions, condUnavailable, condNoCredentials, condTruncated, condInvalidData) {
		for _, k := range c.kinds {
			if errors.Is(err, k) {
				return c.code.HRESULT
			}
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return hrTimeout
	case errors.Is(err, context.Canceled):
		return hrCancelled
	case errors.Is(err, fs.ErrNotExist):
		return hrFileNotFound
	case errors.Is(err, fs.ErrPermission):
		return hrAccessDenied
	case errors.Is(err, fs.ErrExist):
		return hrAlreadyExists
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return hrDiskFull
	case errors.Is(err, syscall.EROFS):
		return hrWriteProtect
	}
	return hrUnexpected
}

// fromRPC converts an error returned by a gRPC call made with ctx into an
// *Error for operation op. A status carrying a certsrv ErrorInfo keeps the
// server's condition; a status without one is classified by its gRPC code:
// Unavailable becomes ErrUnavailable, Unauthenticated ErrUnauthenticated,
// PermissionDenied ErrAccessDenied, Unimplemented ErrNotImplemented,
// DeadlineExceeded and Canceled keep ctx's error as the cause, and anything
// else is ErrUnexpected.
func fromRPC(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return &Error{Op: op, Reason: condTimeout.code.Reason, HRESULT: hrTimeout, Message: err.Error(), Err: err}
		}
		if errors.Is(err, context.Canceled) {
			return &Error{Op: op, Reason: condCancelled.code.Reason, HRESULT: hrCancelled, Message: err.Error(), Err: err}
		}
		return &Error{Op: op, Reason: apierr.Unexpected.Reason, HRESULT: hrUnexpected, Message: err.Error(), Err: err, kinds: condUnexpected.kinds}
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == apierr.Domain {
			return fromWire(op, info.Reason, apierr.FromStatus(err))
		}
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		return &Error{Op: op, Reason: condUnavailable.code.Reason, HRESULT: hrCouldNotConnect, Message: msg, kinds: condUnavailable.kinds}
	case codes.Unauthenticated:
		return &Error{Op: op, Reason: condUnauthentic.code.Reason, HRESULT: condUnauthentic.code.HRESULT, Message: msg, kinds: condUnauthentic.kinds}
	case codes.PermissionDenied:
		return &Error{Op: op, Reason: condAccess.code.Reason, HRESULT: condAccess.code.HRESULT, Message: msg, kinds: condAccess.kinds}
	case codes.Unimplemented:
		return &Error{Op: op, Reason: condNotImpl.code.Reason, HRESULT: condNotImpl.code.HRESULT, Message: msg, kinds: condNotImpl.kinds}
	case codes.DeadlineExceeded, codes.Canceled:
		cause := ctx.Err()
		c := condTimeout
		if st.Code() == codes.Canceled {
			c = condCancelled
		}
		if cause == nil {
			cause = context.DeadlineExceeded
			if st.Code() == codes.Canceled {
				cause = context.Canceled
			}
		}
		return &Error{Op: op, Reason: c.code.Reason, HRESULT: c.code.HRESULT, Message: msg, Err: cause}
	}
	return &Error{Op: op, Reason: apierr.Unexpected.Reason, HRESULT: hrUnexpected, Message: msg, kinds: condUnexpected.kinds}
}

// fromWire turns an apierr.Error decoded from a status whose ErrorInfo
// reason is wireReason into an *Error. A condition this package does not
// know keeps the reason and HRESULT the server sent and matches
// ErrUnexpected.
func fromWire(op, wireReason string, ae *apierr.Error) *Error {
	for _, c := range conditions {
		if c.code == ae.Code && c.code.Reason == wireReason {
			return &Error{Op: op, Reason: c.code.Reason, HRESULT: c.code.HRESULT, Message: ae.Msg, kinds: c.kinds}
		}
	}
	return &Error{Op: op, Reason: wireReason, HRESULT: ae.Code.HRESULT, Message: ae.Msg, kinds: condUnexpected.kinds}
}

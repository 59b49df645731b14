// Package apierr is the one table of error conditions the certsrv API can
// report, shared by the server (which turns errors into gRPC statuses) and the
// client library (which turns statuses back into typed errors).
//
// On the wire an error is a gRPC status whose details hold a
// google.rpc.ErrorInfo with Domain "certsrv", Reason the Code's Reason, and
// metadata "hresult" = the certbcli.h HRESULT as "0x%08X".
package apierr

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the ErrorInfo domain of every certsrv error.
const Domain = "certsrv"

// Code is one error condition: a stable reason string, the HRESULT a
// certbcli.h caller knows, and the gRPC code used on the wire.
type Code struct {
	Reason  string
	HRESULT uint32
	GRPC    codes.Code
}

// The conditions. HRESULT values are those of winerror.h, certsrv.h and
// ntdsbmsg.h (the backup "hr" codes certbcli.h returns).
var (
	AccessDenied        = Code{"E_ACCESSDENIED", 0x80070005, codes.PermissionDenied}
	Unauthenticated     = Code{"E_ACCESSDENIED", 0x80070005, codes.Unauthenticated}
	InvalidArg          = Code{"E_INVALIDARG", 0x80070057, codes.InvalidArgument}
	NotFound            = Code{"ERROR_FILE_NOT_FOUND", 0x80070002, codes.NotFound}
	AlreadyExists       = Code{"ERROR_ALREADY_EXISTS", 0x800700B7, codes.AlreadyExists}
	Unexpected          = Code{"E_UNEXPECTED", 0x8000FFFF, codes.Internal}
	NotImplemented      = Code{"E_NOTIMPL", 0x80004001, codes.Unimplemented}
	ServerSuspended     = Code{"CERTSRV_E_SERVER_SUSPENDED", 0x80094006, codes.Unavailable}
	NoRequest           = Code{"CERTSRV_E_NO_REQUEST", 0x80094002, codes.NotFound}
	BadRequestStatus    = Code{"CERTSRV_E_BAD_REQUESTSTATUS", 0x80094003, codes.FailedPrecondition}
	BadRequest          = Code{"NTE_BAD_DATA", 0x80090005, codes.InvalidArgument}
	PolicyDenied        = Code{"CERTSRV_E_TEMPLATE_DENIED", 0x80094012, codes.PermissionDenied}
	TooLarge            = Code{"CERTSRV_E_ENCODING_LENGTH", 0x80094007, codes.InvalidArgument}
	BackupSequence      = Code{"hrInvalidBackupSequence", 0xC8000209, codes.FailedPrecondition}
	BackupInProgress    = Code{"hrBackupInProgress", 0xC80001F9, codes.FailedPrecondition}
	NoBackup            = Code{"hrNoBackup", 0xC8000208, codes.FailedPrecondition}
	FullBackupNotTaken  = Code{"hrFullBackupNotTaken", 0xC7FF000E, codes.FailedPrecondition}
	CircularLogging     = Code{"hrCircularLogging", 0xC7FF000B, codes.FailedPrecondition}
	LogFileNotFound     = Code{"hrLogFileNotFound", 0xC7FF000A, codes.FailedPrecondition}
	LogFileCorrupt      = Code{"hrLogFileCorrupt", 0xC80001F5, codes.DataLoss}
	AlreadyOpen         = Code{"hrAlreadyOpen", 0xC7FF0005, codes.FailedPrecondition}
	RestoreInProgress   = Code{"hrRestoreInProgress", 0xC7FF0004, codes.FailedPrecondition}
	IncrementalDisabled = Code{"hrIncrementalBackupDisabled", 0xC7FF0009, codes.FailedPrecondition}
	DiskFull            = Code{"ERROR_DISK_FULL", 0x80070070, codes.ResourceExhausted}
)

// codes lists every Code, so a reason read off the wire finds its Code.
var all = []Code{
	AccessDenied, Unauthenticated, InvalidArg, NotFound, AlreadyExists, Unexpected,
	NotImplemented, ServerSuspended, NoRequest, BadRequestStatus, BadRequest,
	PolicyDenied, TooLarge, BackupSequence, BackupInProgress, NoBackup,
	FullBackupNotTaken, CircularLogging, LogFileNotFound, LogFileCorrupt,
	AlreadyOpen, RestoreInProgress, IncrementalDisabled, DiskFull,
}

// Lookup returns the Code with the given reason and gRPC code, or Unexpected.
func Lookup(reason string, c codes.Code) Code {
	for _, k := range all {
		if k.Reason == reason && k.GRPC == c {
			return k
		}
	}
	for _, k := range all {
		if k.Reason == reason {
			return k
		}
	}
	return Unexpected
}

// Error is an API error: a Code, a message for people, and an optional
// cause (which never crosses the wire).
type Error struct {
	Code Code
	Msg  string
	Err  error
}

// New returns an *Error with a formatted message. A %w verb in format wraps
// its argument as the cause.
func New(c Code, format string, args ...any) *Error {
	e := fmt.Errorf(format, args...)
	return &Error{Code: c, Msg: e.Error(), Err: errors.Unwrap(e)}
}

// Error implements error.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code, so
// errors.Is(err, &apierr.Error{Code: apierr.BackupSequence}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Msg == ""
}

// Of returns the Code of err: the Code of the first *Error in its chain, or
// Unexpected.
func Of(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Unexpected
}

// Status converts err to a gRPC status error carrying the ErrorInfo detail.
// A nil err gives nil. An error that is not an *Error becomes Unexpected
// with its text, except that context cancellation keeps its gRPC meaning.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		var e *Error
		if !errors.As(err, &e) {
			return err
		}
	}
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: Unexpected, Msg: err.Error()}
	}
	st := status.New(e.Code.GRPC, e.Msg)
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   e.Code.Reason,
		Domain:   Domain,
		Metadata: map[string]string{"hresult": fmt.Sprintf("0x%08X", e.Code.HRESULT)},
	}); derr == nil {
		st = d
	}
	return st.Err()
}

// FromStatus converts a gRPC error back to an *Error. Errors without a
// certsrv ErrorInfo are mapped by gRPC code: Unauthenticated and
// PermissionDenied to AccessDenied, Unavailable to a connection failure
// (Unexpected with the transport's message), and anything else to Unexpected.
func FromStatus(err error) *Error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return &Error{Code: Unexpected, Msg: err.Error(), Err: err}
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == Domain {
			c := Lookup(info.Reason, st.Code())
			if h, err := strconv.ParseUint(info.Metadata["hresult"], 0, 32); err == nil && c == Unexpected {
				c.HRESULT = uint32(h)
			}
			return &Error{Code: c, Msg: st.Message()}
		}
	}
	switch st.Code() {
	case codes.Unauthenticated:
		return &Error{Code: Unauthenticated, Msg: st.Message(), Err: err}
	case codes.PermissionDenied:
		return &Error{Code: AccessDenied, Msg: st.Message(), Err: err}
	}
	return &Error{Code: Unexpected, Msg: st.Message(), Err: err}
}

package certadm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/certsrv/certsrv/internal/apierr"
)

// wireCases lists every apierr Code with the sentinel it must match.
var wireCases = []struct {
	code     apierr.Code
	sentinel error
}{
	{apierr.AccessDenied, ErrAccessDenied},
	{apierr.Unauthenticated, ErrUnauthenticated},
	{apierr.InvalidArg, ErrInvalidArg},
	{apierr.NotFound, ErrNotFound},
	{apierr.AlreadyExists, ErrAlreadyExists},
	{apierr.Unexpected, ErrUnexpected},
	{apierr.NotImplemented, ErrNotImplemented},
	{apierr.ServerSuspended, ErrServerSuspended},
	{apierr.NoRequest, ErrNoRequest},
	{apierr.BadRequestStatus, ErrBadRequestStatus},
	{apierr.BadRequest, ErrBadRequest},
	{apierr.PolicyDenied, ErrPolicyDenied},
	{apierr.TooLarge, ErrTooLarge},
	{apierr.BackupSequence, ErrInvalidBackupSequence},
	{apierr.BackupInProgress, ErrBackupInProgress},
	{apierr.NoBackup, ErrNoBackup},
	{apierr.FullBackupNotTaken, ErrFullBackupNotTaken},
	{apierr.CircularLogging, ErrCircularLogging},
	{apierr.LogFileNotFound, ErrLogFileNotFound},
	{apierr.LogFileCorrupt, ErrLogFileCorrupt},
	{apierr.AlreadyOpen, ErrAlreadyOpen},
	{apierr.RestoreInProgress, ErrRestoreInProgress},
	{apierr.IncrementalDisabled, ErrIncrementalBackupDisabled},
	{apierr.DiskFull, ErrDiskFull},
}

func TestEveryWireConditionMapsToItsSentinelAndHRESULT(t *testing.T) {
	if len(wireCases) != len(conditions) {
		t.Fatalf("%d test cases for %d conditions", len(wireCases), len(conditions))
	}
	for _, c := range wireCases {
		t.Run(c.code.Reason+"/"+c.code.GRPC.String(), func(t *testing.T) {
			wire := apierr.Status(apierr.New(c.code, "session %s: broken", "s1"))
			err := fromRPC(context.Background(), "backup end", wire)
			if !errors.Is(err, c.sentinel) {
				t.Fatalf("errors.Is(%v, %v) = false", err, c.sentinel)
			}
			if got := HRESULT(err); got != c.code.HRESULT {
				t.Errorf("HRESULT = 0x%08X, want 0x%08X", got, c.code.HRESULT)
			}
			if got := HRESULT(fmt.Errorf("outer: %w", err)); got != c.code.HRESULT {
				t.Errorf("HRESULT of wrapped = 0x%08X, want 0x%08X", got, c.code.HRESULT)
			}
			if got := HRESULT(c.sentinel); got != c.code.HRESULT {
				t.Errorf("HRESULT(sentinel) = 0x%08X, want 0x%08X", got, c.code.HRESULT)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not *Error", err)
			}
			if e.Reason != c.code.Reason || e.Op != "backup end" || e.Message != "session s1: broken" {
				t.Errorf("got %+v", e)
			}
			if e.Error() != "backup end: session s1: broken" {
				t.Errorf("Error() = %q", e.Error())
			}
			for _, other := range wireCases {
				if other.sentinel != c.sentinel && errors.Is(err, other.sentinel) &&
					!(c.sentinel == ErrUnauthenticated && other.sentinel == ErrAccessDenied) {
					t.Errorf("also matches %v", other.sentinel)
				}
			}
		})
	}
}

func TestUnauthenticatedAlsoMatchesAccessDenied(t *testing.T) {
	err := fromRPC(context.Background(), "ping", apierr.Status(apierr.New(apierr.Unauthenticated, "unknown certificate")))
	if !errors.Is(err, ErrAccessDenied) || !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("%v: want both ErrAccessDenied and ErrUnauthenticated", err)
	}
}

func TestHRESULTNilIsSOK(t *testing.T) {
	if got := HRESULT(nil); got != 0 {
		t.Fatalf("HRESULT(nil) = 0x%08X", got)
	}
}

func TestHRESULTOfPlainErrors(t *testing.T) {
	cases := []struct {
		err  error
		want uint32
	}{
		{errors.New("something"), 0x8000FFFF},
		{fmt.Errorf("open: %w", fs.ErrNotExist), 0x80070002},
		{fmt.Errorf("open: %w", fs.ErrPermission), 0x80070005},
		{fmt.Errorf("create: %w", fs.ErrExist), 0x800700B7},
		{&fs.PathError{Op: "write", Path: "set/x.part", Err: syscall.ENOSPC}, 0x80070070},
		{fmt.Errorf("write: %w", syscall.EDQUOT), 0x80070070},
		{&fs.PathError{Op: "open", Path: "set/x.part", Err: syscall.EROFS}, 0x80070013},
		{context.DeadlineExceeded, 0x800705B4},
		{fmt.Errorf("x: %w", context.Canceled), 0x800704C7},
		{fmt.Errorf("x: %w", ErrUnavailable), 0xC7FF0007},
		{ErrTruncatedFile, 0x80070026},
		{ErrInvalidData, 0x8007000D},
		{ErrNoCredentials, 0x80070002},
	}
	for _, c := range cases {
		if got := HRESULT(c.err); got != c.want {
			t.Errorf("HRESULT(%v) = 0x%08X, want 0x%08X", c.err, got, c.want)
		}
	}
}

func TestUnknownWireReasonKeepsServerHRESULT(t *testing.T) {
	st := status.New(codes.FailedPrecondition, "a newer condition")
	st, err := st.WithDetails(&errdetails.ErrorInfo{Domain: apierr.Domain, Reason: "hrSomethingNew", Metadata: map[string]string{"hresult": "0xC8001234"}})
	if err != nil {
		t.Fatal(err)
	}
	got := fromRPC(context.Background(), "op", st.Err())
	var e *Error
	if !errors.As(got, &e) {
		t.Fatalf("%T", got)
	}
	if e.HRESULT != 0xC8001234 || e.Reason != "hrSomethingNew" || !errors.Is(got, ErrUnexpected) {
		t.Fatalf("got %+v", e)
	}
}

func TestTransportStatusesWithoutErrorInfo(t *testing.T) {
	cases := []struct {
		code     codes.Code
		sentinel error
		hr       uint32
	}{
		{codes.Unavailable, ErrUnavailable, 0xC7FF0007},
		{codes.Unauthenticated, ErrAccessDenied, 0x80070005},
		{codes.PermissionDenied, ErrAccessDenied, 0x80070005},
		{codes.Unimplemented, ErrNotImplemented, 0x80004001},
		{codes.Internal, ErrUnexpected, 0x8000FFFF},
		{codes.ResourceExhausted, ErrUnexpected, 0x8000FFFF},
	}
	for _, c := range cases {
		err := fromRPC(context.Background(), "op", status.Error(c.code, "transport says no"))
		if !errors.Is(err, c.sentinel) || HRESULT(err) != c.hr {
			t.Errorf("%v: got %v (0x%08X), want %v (0x%08X)", c.code, err, HRESULT(err), c.sentinel, c.hr)
		}
	}
}

func TestContextErrorsKeepTheirCause(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := fromRPC(ctx, "op", status.Error(codes.Canceled, "context canceled"))
	if !errors.Is(err, context.Canceled) || HRESULT(err) != 0x800704C7 {
		t.Fatalf("got %v (0x%08X)", err, HRESULT(err))
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 0)
	defer dcancel()
	<-dctx.Done()
	err = fromRPC(dctx, "op", status.Error(codes.DeadlineExceeded, "deadline"))
	if !errors.Is(err, context.DeadlineExceeded) || HRESULT(err) != 0x800705B4 {
		t.Fatalf("got %v (0x%08X)", err, HRESULT(err))
	}
}

func TestLocalErrorsCarryCause(t *testing.T) {
	e := newError(condNoCredentials, "load credentials", "read trust.crt: %w", os.ErrNotExist)
	if !errors.Is(e, ErrNoCredentials) || !errors.Is(e, os.ErrNotExist) {
		t.Fatalf("%v does not match both sentinel and cause", e)
	}
	if HRESULT(e) != 0x80070002 {
		t.Fatalf("HRESULT = 0x%08X", HRESULT(e))
	}
}

package apierr

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRoundTripEveryCode(t *testing.T) {
	for _, c := range all {
		wire := Status(New(c, "something about %s", "x"))
		st, _ := status.FromError(wire)
		if st.Code() != c.GRPC {
			t.Errorf("%s: wire code %v, want %v", c.Reason, st.Code(), c.GRPC)
		}
		back := FromStatus(wire)
		if back.Code != c || back.Msg != "something about x" {
			t.Errorf("%s: round trip gave %+v", c.Reason, back)
		}
		if !errors.Is(back, &Error{Code: c}) {
			t.Errorf("%s: errors.Is fails after round trip", c.Reason)
		}
	}
}

func TestWrapKeepsCause(t *testing.T) {
	e := New(LogFileCorrupt, "log generation 7: %w", io.ErrUnexpectedEOF)
	if !errors.Is(e, io.ErrUnexpectedEOF) {
		t.Fatal("cause lost")
	}
	wrapped := fmt.Errorf("serve: %w", e)
	if Of(wrapped) != LogFileCorrupt {
		t.Fatalf("Of = %v", Of(wrapped))
	}
	if errors.Is(e, &Error{Code: BackupSequence}) {
		t.Fatal("different codes match")
	}
}

func TestPlainErrorsBecomeUnexpected(t *testing.T) {
	back := FromStatus(Status(errors.New("disk on fire")))
	if back.Code != Unexpected || back.Msg != "disk on fire" {
		t.Fatalf("got %+v", back)
	}
	back = FromStatus(status.Error(codes.PermissionDenied, "no"))
	if back.Code != AccessDenied {
		t.Fatalf("bare PermissionDenied mapped to %+v", back.Code)
	}
	if Status(nil) != nil || FromStatus(nil) != nil {
		t.Fatal("nil not preserved")
	}
}

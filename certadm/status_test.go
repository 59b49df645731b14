package certadm

import (
	"errors"
	"testing"
)

func TestParseRequestStatus(t *testing.T) {
	for in, want := range map[string]RequestStatus{"": StatusAny, "any": StatusAny, "Pending": StatusPending, "ISSUED": StatusIssued, " denied ": StatusDenied} {
		if got, err := ParseRequestStatus(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseRequestStatus("revoked"); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("revoked: %v", err)
	}
	for s, want := range map[RequestStatus]string{StatusPending: "pending", StatusIssued: "issued", StatusDenied: "denied", StatusAny: "any", 9: "status(9)"} {
		if s.String() != want {
			t.Errorf("%d: %q", int(s), s.String())
		}
	}
}

package ca

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseReason(t *testing.T) {
	names := []string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
		"cessationOfOperation", "certificateHold", "", "removeFromCRL", "privilegeWithdrawn", "aACompromise"}
	for code, name := range names {
		if name == "" {
			continue
		}
		for _, in := range []string{name, strings.ToUpper(name), strings.ToLower(name), " " + name + " ", strconv.Itoa(code)} {
			got, err := ParseReason(in)
			if err != nil || got != code {
				t.Errorf("ParseReason(%q) = %d, %v; want %d", in, got, err, code)
			}
		}
		if ReasonName(code) != name {
			t.Errorf("ReasonName(%d) = %q, want %q", code, ReasonName(code), name)
		}
	}
	for _, in := range []string{"", "7", "11", "-1", "compromised", "key compromise", "0x1", "hold"} {
		if _, err := ParseReason(in); !errors.Is(err, ErrBadReason) {
			t.Errorf("ParseReason(%q) err = %v, want ErrBadReason", in, err)
		}
	}
	if ReasonName(7) != "reason(7)" {
		t.Errorf("ReasonName(7) = %q", ReasonName(7))
	}
}

func TestCheckRevocationReason(t *testing.T) {
	for _, ok := range []int{0, 1, 2, 3, 4, 5, 6, 9, 10} {
		if err := CheckRevocationReason(ok); err != nil {
			t.Errorf("CheckRevocationReason(%d) = %v", ok, err)
		}
	}
	for _, bad := range []int{7, 8, 11, -1} {
		if err := CheckRevocationReason(bad); !errors.Is(err, ErrBadReason) {
			t.Errorf("CheckRevocationReason(%d) = %v, want ErrBadReason", bad, err)
		}
	}
}

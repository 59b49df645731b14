package ca

import (
	"fmt"
	"strconv"
	"strings"
)

// RFC 5280 §5.3.1 CRLReason codes. Code 7 is not assigned.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
	ReasonRemoveFromCRL        = 8
	ReasonPrivilegeWithdrawn   = 9
	ReasonAACompromise         = 10
)

var reasonNames = map[int]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonCACompromise:         "cACompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonCertificateHold:      "certificateHold",
	ReasonRemoveFromCRL:        "removeFromCRL",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
	ReasonAACompromise:         "aACompromise",
}

// ParseReason reads an RFC 5280 reason code given by its ASN.1 name, in any
// case ("keyCompromise", "KEYCOMPROMISE"), or by its decimal number ("1").
// Unknown names, the unassigned code 7 and numbers outside 0..10 give
// ErrBadReason. ParseReason accepts removeFromCRL (8), which only has a
// meaning on a delta CRL; use CheckRevocationReason before revoking.
func ParseReason(s string) (int, error) {
	t := strings.TrimSpace(s)
	if n, err := strconv.Atoi(t); err == nil {
		if _, ok := reasonNames[n]; !ok {
			return 0, fmt.Errorf("reason code %d: %w", n, ErrBadReason)
		}
		return n, nil
	}
	for code, name := range reasonNames {
		if strings.EqualFold(t, name) {
			return code, nil
		}
	}
	return 0, fmt.Errorf("reason %q: %w", s, ErrBadReason)
}

// ReasonName returns the RFC 5280 name of a reason code, or "reason(N)" for
// a code that has none.
func ReasonName(code int) string {
	if name, ok := reasonNames[code]; ok {
		return name
	}
	return fmt.Sprintf("reason(%d)", code)
}

// CheckRevocationReason returns nil if a certificate may be revoked with
// code, that is any assigned code except removeFromCRL, which only marks a
// released hold on a delta CRL. Otherwise it returns ErrBadReason.
func CheckRevocationReason(code int) error {
	if _, ok := reasonNames[code]; !ok {
		return fmt.Errorf("reason code %d: %w", code, ErrBadReason)
	}
	if code == ReasonRemoveFromCRL {
		return fmt.Errorf("reason removeFromCRL is not a revocation reason (release the hold instead): %w", ErrBadReason)
	}
	return nil
}

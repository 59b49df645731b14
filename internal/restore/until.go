package restore

import (
	"strconv"
	"strings"
	"time"
)

// Until is the point where hard recovery stops: after the record with LSN
// LSN, or before the first record appended after Time. At most one of the
// two is set; the zero Until means "replay everything".
type Until struct {
	Time time.Time `json:"time,omitzero"`
	LSN  uint64    `json:"lsn,omitempty"`
}

// IsZero reports whether u sets no bound.
func (u Until) IsZero() bool { return u.Time.IsZero() && u.LSN == 0 }

// String returns u in the form ParseUntil reads: an RFC 3339 time in UTC,
// "lsn:N", or "" for no bound.
func (u Until) String() string {
	switch {
	case u.LSN != 0:
		return "lsn:" + strconv.FormatUint(u.LSN, 10)
	case !u.Time.IsZero():
		return u.Time.UTC().Format(time.RFC3339Nano)
	}
	return ""
}

// ParseUntil reads a --until value: "lsn:N" with N a positive decimal LSN,
// or an RFC 3339 time (fractional seconds allowed, a zone offset
// required). The empty string is the zero Until. Anything else is an error
// matching ErrInvalidArgument.
func ParseUntil(s string) (Until, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Until{}, nil
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "lsn:"); ok {
		n, err := strconv.ParseUint(rest, 10, 64)
		if err != nil || n == 0 {
			return Until{}, invalid("until %q: want lsn:N with N a positive decimal number", s)
		}
		return Until{LSN: n}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Until{}, invalid("until %q: want an RFC 3339 time such as 2026-05-01T12:00:00Z, or lsn:N", s)
	}
	return Until{Time: t.UTC()}, nil
}

// validate checks that at most one bound is set.
func (u Until) validate() error {
	if u.LSN != 0 && !u.Time.IsZero() {
		return invalid("until sets both a time and an LSN")
	}
	return nil
}

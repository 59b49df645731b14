package ca

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
)

// serialBytes is the number of random bytes NewSerial draws; with the top
// bit cleared a serial carries 127 bits of entropy.
const serialBytes = 16

// maxSerialOctets is the RFC 5280 §4.1.2.2 limit on serial numbers.
const maxSerialOctets = 20

// NewSerial returns a fresh random certificate serial number: 16 bytes from
// crypto/rand with the top bit cleared, never zero. The result is positive,
// at most 16 octets long in DER, and carries 127 bits of entropy.
func NewSerial() (*big.Int, error) {
	b := make([]byte, serialBytes)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("new serial: %w", err)
		}
		b[0] &= 0x7f
		n := new(big.Int).SetBytes(b)
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// ParseSerial reads a serial number written in hexadecimal, in any of the
// forms tools print: "0A1B2C", "0a:1b:2c", "a1b2c", "0x0A1B", "0A 1B 2C",
// or openssl's "serial=0A1B2C". Upper and lower case, leading zeros, and
// colons or single spaces between digit groups are accepted. An empty,
// negative, zero or non-hex value, or one longer than 20 octets, gives a
// *SerialError (ErrBadSerial).
func ParseSerial(s string) (*big.Int, error) {
	t := strings.TrimSpace(s)
	if len(t) >= len("serial=") && strings.EqualFold(t[:len("serial=")], "serial=") {
		t = strings.TrimSpace(t[len("serial="):])
	}
	if strings.HasPrefix(t, "-") {
		return nil, &SerialError{Input: s, Reason: "negative"}
	}
	if len(t) >= 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') {
		t = t[2:]
	}
	if t == "" {
		return nil, &SerialError{Input: s, Reason: "empty"}
	}
	digits := make([]byte, 0, len(t))
	prevSep := true // a separator may not lead, trail, or follow another
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == ':' || c == ' ':
			if prevSep {
				return nil, &SerialError{Input: s, Reason: "empty digit group"}
			}
			prevSep = true
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			digits = append(digits, c)
			prevSep = false
		default:
			return nil, &SerialError{Input: s, Reason: fmt.Sprintf("%q is not a hex digit", rune(c))}
		}
	}
	if prevSep {
		return nil, &SerialError{Input: s, Reason: "empty digit group"}
	}
	h := string(digits)
	h = strings.TrimLeft(h, "0")
	if len(h) > 2*maxSerialOctets {
		return nil, &SerialError{Input: s, Reason: "longer than 20 octets"}
	}
	if h == "" {
		return nil, &SerialError{Input: s, Reason: "zero"}
	}
	n, ok := new(big.Int).SetString(h, 16)
	if !ok {
		return nil, &SerialError{Input: s, Reason: "not hexadecimal"}
	}
	if err := CheckSerial(n); err != nil {
		return nil, err
	}
	return n, nil
}

// CheckSerial returns nil if n is usable as a certificate serial number:
// positive and at most 20 octets in its DER encoding (which adds a leading
// zero octet when the top bit of the first octet is set). Otherwise it
// returns a *SerialError (ErrBadSerial).
func CheckSerial(n *big.Int) error {
	if n == nil {
		return &SerialError{Input: "<nil>", Reason: "missing"}
	}
	if n.Sign() <= 0 {
		return &SerialError{Input: n.String(), Reason: "not positive"}
	}
	b := n.Bytes()
	if len(b) > maxSerialOctets || len(b) == maxSerialOctets && b[0]&0x80 != 0 {
		return &SerialError{Input: SerialString(n), Reason: "longer than 20 octets in DER"}
	}
	return nil
}

// SerialString returns the canonical text form of a serial number: the
// upper-case hex of its minimal big-endian bytes, always an even number of
// digits, no separators ("0A1B", never "A1B"). The database uses this form
// as its key. A nil value gives ""; a value that is not positive gives its
// decimal form with a leading "-" or "0", which no valid serial matches.
func SerialString(n *big.Int) string {
	if n == nil {
		return ""
	}
	if n.Sign() <= 0 {
		return n.String()
	}
	return strings.ToUpper(hex.EncodeToString(n.Bytes()))
}

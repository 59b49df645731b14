package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/ca"
)

// filterSyntax lists the conditions --filter accepts. Messages about a
// condition that is not one of them end with it.
const filterSyntax = "id=N, serial=HEX, subject~TEXT, requester=NAME, status=pending|issued|denied|revoked, " +
	"expires<T, expires<=T, expires>T, expires>=T (T: YYYY-MM-DD or RFC 3339)"

// filterOps are the operators the condition syntax knows, longest first so
// that "<=" is not read as "<". Each field accepts only some of them; the
// others are known so that a message can name them.
var filterOps = []string{"<=", ">=", "!=", "==", "=~", "!~", "=", "<", ">", "~"}

// condition is one FIELD OP VALUE condition, from --filter or from one of
// the single-purpose flags.
type condition struct {
	// name is how messages refer to the condition: `--filter condition
	// "status=revoked"` or `--status "revoked"`.
	name  string
	field string // lower case
	op    string
	value string
}

// parseFilter reads one --filter value: conditions separated by commas. A
// comma written `\,` does not end a condition, and `\\` is a backslash that
// does not escape what follows; both stay in the value as written, which
// is how a subject shows them (RFC 4514: `O=Example\, Inc.`), so a subject
// copied from certadm view matches.
func parseFilter(s string) ([]condition, error) {
	var (
		parts []string
		cur   strings.Builder
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == ',' || s[i+1] == '\\'):
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
		case c == ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, cur.String())
	conds := make([]condition, 0, len(parts))
	for _, p := range parts {
		c, err := parseCondition(p)
		if err != nil {
			return nil, err
		}
		conds = append(conds, c)
	}
	return conds, nil
}

// parseCondition splits "FIELD OP VALUE"; spaces around the three parts
// are ignored. It checks the shape only; viewQuery.add checks the field,
// the operator and the value.
func parseCondition(s string) (condition, error) {
	text := strings.TrimSpace(s)
	c := condition{name: fmt.Sprintf("--filter condition %q", text)}
	if text == "" {
		return c, usagef("--filter: empty condition (a stray comma?); accepted: %s", filterSyntax)
	}
	end := 0
	for end < len(text) && isFieldChar(text[end]) {
		end++
	}
	c.field = strings.ToLower(text[:end])
	rest := strings.TrimLeft(text[end:], " ")
	for _, op := range filterOps {
		if strings.HasPrefix(rest, op) {
			c.op = op
			break
		}
	}
	if c.field == "" || c.op == "" {
		return c, usagef("%s: want FIELD OP VALUE; accepted: %s", c.name, filterSyntax)
	}
	c.value = strings.TrimSpace(rest[len(c.op):])
	return c, nil
}

func isFieldChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-' || b == '.'
}

// viewQuery is the selection the conditions add up to: every condition
// must hold. A field given twice must agree; where the query can express
// both at once (two expiry bounds on one side, two subject texts one of
// which contains the other) the stricter one is kept.
type viewQuery struct {
	id        int64
	serial    string // canonical upper-case hex
	subject   string
	requester string
	status    string // "pending", "issued", "denied", "revoked"; "" any

	// before and after bound the certificate's NotAfter, exclusively:
	// NotAfter < before and NotAfter > after, as the server compares them.
	// They are whole microseconds (the database's precision), so "at or
	// before T" is exactly "before T plus one microsecond".
	before, after       time.Time
	hasBefore, hasAfter bool

	// by records which condition set each field ("expires before" and
	// "expires after" for the two bounds), for messages.
	by map[string]string
}

// add narrows q by c. A condition the query cannot express, an unknown
// field, an operator the field does not take, a bad value, or a value that
// contradicts an earlier condition on the same field is a usage error
// naming c.
func (q *viewQuery) add(c condition) error {
	if q.by == nil {
		q.by = map[string]string{}
	}
	if c.value == "" {
		return usagef("%s: no value; accepted: %s", c.name, filterSyntax)
	}
	wantOp := func(ops, syntax string) error {
		for _, op := range strings.Fields(ops) {
			if c.op == op {
				return nil
			}
		}
		return usagef("%s: %s does not take %q; write %s (accepted: %s)", c.name, c.field, c.op, syntax, filterSyntax)
	}
	clash := func(what string) error {
		return usagef("%s contradicts %s: %s", c.name, q.by[c.field], what)
	}
	switch c.field {
	case "id":
		if err := wantOp("=", "id=N"); err != nil {
			return err
		}
		n, err := strconv.ParseInt(c.value, 10, 64)
		if err != nil || n <= 0 {
			return usagef("%s: want a positive request id (id=N)", c.name)
		}
		if q.id != 0 && q.id != n {
			return clash("a request has one id")
		}
		q.id = n
	case "serial":
		if err := wantOp("=", "serial=HEX"); err != nil {
			return err
		}
		n, err := ca.ParseSerial(c.value)
		if err != nil {
			return usagef("%s: want a serial number in hex, colons allowed (serial=HEX): %v", c.name, err)
		}
		s := ca.SerialString(n)
		if q.serial != "" && q.serial != s {
			return clash("a certificate has one serial number")
		}
		q.serial = s
	case "subject":
		if c.op == "=" || c.op == "==" {
			return usagef("%s: the server matches subjects by substring only; write subject~TEXT (accepted: %s)", c.name, filterSyntax)
		}
		if err := wantOp("~", "subject~TEXT"); err != nil {
			return err
		}
		switch {
		case q.subject == "" || strings.Contains(c.value, q.subject):
			q.subject = c.value // containing the longer text implies the shorter
			q.by["subject"] = c.name
		case strings.Contains(q.subject, c.value):
		default:
			return clash("the server matches one subject text, and neither contains the other")
		}
	case "requester":
		if err := wantOp("=", "requester=NAME"); err != nil {
			return err
		}
		if q.requester != "" && q.requester != c.value {
			return clash("a request has one requester")
		}
		q.requester = c.value
	case "status":
		if err := wantOp("=", "status=pending|issued|denied|revoked"); err != nil {
			return err
		}
		s := strings.ToLower(c.value)
		switch s {
		case "pending", "issued", "denied", "revoked":
		default:
			return usagef("%s: unknown status %q; want status=pending|issued|denied|revoked", c.name, c.value)
		}
		if q.status != "" && q.status != s {
			return clash("a request has one status")
		}
		q.status = s
	case "expires":
		if c.op == "=" || c.op == "==" {
			return usagef("%s: the server compares expiry with <, <=, > and >= only; for one day write expires>=DAY,expires<NEXTDAY (accepted: %s)", c.name, filterSyntax)
		}
		if err := wantOp("< <= > >=", "expires<T, expires<=T, expires>T or expires>=T"); err != nil {
			return err
		}
		t, err := parseWhen(c.value)
		if err != nil {
			return usagef("%s: %q is not a time; want RFC 3339 (2027-01-02T15:04:05Z) or a date (2027-01-02, midnight UTC)", c.name, c.value)
		}
		if err := q.bound(c, t); err != nil {
			return err
		}
	default:
		return usagef("%s: unknown field %q; accepted: %s", c.name, c.field, filterSyntax)
	}
	if _, ok := q.by[c.field]; !ok {
		q.by[c.field] = c.name
	}
	// A pending or denied request has no certificate, so no expiry.
	if (q.status == "pending" || q.status == "denied") && (q.hasBefore || q.hasAfter) {
		other := q.by["status"]
		if c.field == "status" {
			other = q.by["expires before"]
			if other == "" {
				other = q.by["expires after"]
			}
		}
		return usagef("%s contradicts %s: a %s request has no certificate, so no expiry", c.name, other, q.status)
	}
	return nil
}

// bound adds an expiry condition on t with c's operator, keeping the
// stricter bound on each side. An empty range is a contradiction.
func (q *viewQuery) bound(c condition, t time.Time) error {
	floor := t.Truncate(time.Microsecond)
	ceil := floor
	if !floor.Equal(t) {
		ceil = floor.Add(time.Microsecond)
	}
	var other string // the opposite bound's key in q.by
	switch c.op {
	case "<": // NotAfter < T
		other = "after"
		q.setBefore(ceil, c.name)
	case "<=": // NotAfter <= T
		other = "after"
		q.setBefore(floor.Add(time.Microsecond), c.name)
	case ">": // NotAfter > T
		other = "before"
		q.setAfter(floor, c.name)
	case ">=": // NotAfter >= T
		other = "before"
		q.setAfter(ceil.Add(-time.Microsecond), c.name)
	}
	// The wire carries times after year 1 and before year 10000; the zero
	// time would mean "no bound".
	for _, b := range []struct {
		t   time.Time
		set bool
	}{{q.before, q.hasBefore}, {q.after, q.hasAfter}} {
		if b.set && (!b.t.After(time.Time{}) || b.t.Year() > 9999) {
			return usagef("%s: time out of range (years 1 to 9999)", c.name)
		}
	}
	if q.hasBefore && q.hasAfter && !q.after.Add(time.Microsecond).Before(q.before) {
		return usagef("%s contradicts %s: no expiry time satisfies both", c.name, q.by["expires "+other])
	}
	return nil
}

func (q *viewQuery) setBefore(t time.Time, name string) {
	if !q.hasBefore || t.Before(q.before) {
		q.before, q.hasBefore = t, true
		q.by["expires before"] = name
	}
}

func (q *viewQuery) setAfter(t time.Time, name string) {
	if !q.hasAfter || t.After(q.after) {
		q.after, q.hasAfter = t, true
		q.by["expires after"] = name
	}
}

// filter returns the query as the library's filter, without a limit.
func (q *viewQuery) filter() certadm.ViewFilter {
	f := certadm.ViewFilter{
		RequestID:       q.id,
		Serial:          q.serial,
		SubjectContains: q.subject,
		Requester:       q.requester,
	}
	switch q.status {
	case "pending":
		f.Status = certadm.StatusPending
	case "issued":
		f.Status = certadm.StatusIssued
	case "denied":
		f.Status = certadm.StatusDenied
	case "revoked":
		f.RevokedOnly = true
	}
	if q.hasBefore {
		f.ExpiresBefore = q.before
	}
	if q.hasAfter {
		f.ExpiresAfter = q.after
	}
	return f
}

// parseWhen reads a time given as RFC 3339 or as a date (YYYY-MM-DD,
// midnight UTC).
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

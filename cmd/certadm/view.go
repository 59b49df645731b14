package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

// viewFlags are the view command's options as typed.
type viewFlags struct {
	status, serial, subject, before, after, format string
	id                                             int64
	limit                                          int
}

// filter checks the flags and turns them into a ViewFilter. Every mistake
// is a usage error, found before any connection is made.
func (f viewFlags) filter() (certadm.ViewFilter, error) {
	var v certadm.ViewFilter
	switch strings.ToLower(f.status) {
	case "", "any":
	case "pending":
		v.Status = certadm.StatusPending
	case "issued":
		v.Status = certadm.StatusIssued
	case "denied":
		v.Status = certadm.StatusDenied
	case "revoked":
		v.RevokedOnly = true
	default:
		return v, usagef("--status %q: want pending, issued, denied or revoked", f.status)
	}
	switch f.format {
	case "table", "json", "csv":
	default:
		return v, usagef("--format %q: want table, json or csv", f.format)
	}
	if f.id < 0 {
		return v, usagef("--id %d: want a positive request id", f.id)
	}
	if f.limit < 0 {
		return v, usagef("--limit %d: must not be negative", f.limit)
	}
	var err error
	if v.ExpiresBefore, err = parseWhen("--expires-before", f.before); err != nil {
		return v, err
	}
	if v.ExpiresAfter, err = parseWhen("--expires-after", f.after); err != nil {
		return v, err
	}
	v.Serial = f.serial
	v.RequestID = f.id
	v.SubjectContains = f.subject
	v.Limit = f.limit
	return v, nil
}

// parseWhen reads a time given as RFC 3339 or as a date (YYYY-MM-DD,
// midnight UTC); empty is the zero time.
func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("%s %q: want RFC 3339 (2026-01-02T15:04:05Z) or a date (2026-01-02)", flag, s)
}

func newViewCmd(a *app) *cobra.Command {
	var f viewFlags
	cmd := &cobra.Command{
		Use:   "view",
		Short: "List requests and certificates (Officer, Auditor, Reader)",
		Args:  cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, args []string) error {
			filter, err := f.filter()
			if err != nil {
				return err
			}
			return a.withClient(ctx, func(c *certadm.Client) error {
				rows, err := c.View(ctx, filter)
				if err != nil {
					return err
				}
				return writeView(a.stdout, f.format, rows)
			})
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.status, "status", "", "pending, issued, denied or revoked")
	fl.StringVar(&f.serial, "serial", "", "the certificate with this serial number (hex)")
	fl.Int64Var(&f.id, "id", 0, "the request with this id")
	fl.StringVar(&f.subject, "subject-contains", "", "subjects containing this text")
	fl.StringVar(&f.before, "expires-before", "", "certificates expiring before this time (RFC 3339 or YYYY-MM-DD)")
	fl.StringVar(&f.after, "expires-after", "", "certificates expiring after this time (RFC 3339 or YYYY-MM-DD)")
	fl.StringVar(&f.format, "format", "table", "output format: table, json or csv")
	fl.IntVar(&f.limit, "limit", 0, "at most this many rows (0: the server's default)")
	return cmd
}

// viewRow is one output row; the JSON names are also the CSV header.
type viewRow struct {
	RequestID        int64  `json:"request_id"`
	Status           string `json:"status"`
	Profile          string `json:"profile"`
	Requester        string `json:"requester"`
	Subject          string `json:"subject"`
	SubmittedAt      string `json:"submitted_at"`
	ResolvedAt       string `json:"resolved_at,omitempty"`
	DenyReason       string `json:"deny_reason,omitempty"`
	Serial           string `json:"serial,omitempty"`
	NotBefore        string `json:"not_before,omitempty"`
	NotAfter         string `json:"not_after,omitempty"`
	Revoked          bool   `json:"revoked"`
	RevokedAt        string `json:"revoked_at,omitempty"`
	RevocationReason *int   `json:"revocation_reason,omitempty"`
}

var csvHeader = []string{"request_id", "status", "profile", "requester", "subject", "submitted_at", "resolved_at",
	"deny_reason", "serial", "not_before", "not_after", "revoked", "revoked_at", "revocation_reason"}

// rfc3339 formats t for machine output; the zero time is "".
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func rowOf(r *certadm.Request) viewRow {
	v := viewRow{
		RequestID:   r.ID,
		Status:      r.Status.String(),
		Profile:     r.Profile,
		Requester:   r.Requester,
		Subject:     r.Subject,
		SubmittedAt: rfc3339(r.SubmittedAt),
		ResolvedAt:  rfc3339(r.ResolvedAt),
		DenyReason:  r.DenyReason,
	}
	if c := r.Certificate; c != nil {
		v.Serial = c.Serial
		v.NotBefore = rfc3339(c.NotBefore)
		v.NotAfter = rfc3339(c.NotAfter)
		v.Revoked = c.Revoked
		if c.Revoked {
			v.RevokedAt = rfc3339(c.RevokedAt)
			reason := c.RevocationReason
			v.RevocationReason = &reason
		}
	}
	return v
}

func (v viewRow) csv() []string {
	reason := ""
	if v.RevocationReason != nil {
		reason = strconv.Itoa(*v.RevocationReason)
	}
	return []string{strconv.FormatInt(v.RequestID, 10), v.Status, v.Profile, v.Requester, v.Subject, v.SubmittedAt,
		v.ResolvedAt, v.DenyReason, v.Serial, v.NotBefore, v.NotAfter, strconv.FormatBool(v.Revoked), v.RevokedAt, reason}
}

// writeView writes rows in format: "table" (aligned columns), "json" (an
// array, [] when empty) or "csv" (a header line, then one line per row).
func writeView(w io.Writer, format string, reqs []*certadm.Request) error {
	rows := make([]viewRow, len(reqs))
	for i, r := range reqs {
		rows[i] = rowOf(r)
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(csvHeader); err != nil {
			return err
		}
		for _, r := range rows {
			if err := cw.Write(r.csv()); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case "table":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tSERIAL\tNOT AFTER\tREVOKED\tSUBJECT")
		for _, r := range rows {
			serial, notAfter, revoked := dash(r.Serial), dash(r.NotAfter), "-"
			if r.Revoked {
				revoked = r.RevokedAt
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.RequestID, r.Status, serial, notAfter, revoked, r.Subject)
		}
		return tw.Flush()
	}
	return usagef("--format %q: want table, json or csv", format)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

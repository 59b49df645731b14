package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/ca"
)

// statusRevoked is the row status of an issued certificate that is
// revoked, on hold included; other rows show the request's disposition.
const statusRevoked = "revoked"

// viewRow is one output row; the JSON names are also the CSV header.
type viewRow struct {
	RequestID int64 `json:"request_id"`
	// Status is pending, issued, denied or revoked: what status= selects.
	// A certificate on hold is "revoked" with RevocationReason 6
	// (certificateHold).
	Status    string `json:"status"`
	Profile   string `json:"profile"`
	Requester string `json:"requester"`
	// Subject is the issued certificate's subject once there is one (a
	// profile may keep less of the request's subject than it asked for),
	// else the request's; RequestedSubject is the request's when it
	// differs (JSON only).
	Subject          string `json:"subject"`
	RequestedSubject string `json:"requested_subject,omitempty"`
	SubmittedAt      string `json:"submitted_at"`
	ResolvedAt       string `json:"resolved_at,omitempty"`
	DenyReason       string `json:"deny_reason,omitempty"`
	Serial           string `json:"serial,omitempty"`
	NotBefore        string `json:"not_before,omitempty"`
	NotAfter         string `json:"not_after,omitempty"`
	// Revoked, RevokedAt and RevocationReason repeat what Status says, with
	// the time and the RFC 5280 reason code.
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

// requestStatus is the status view shows for r, and get, approve and
// submit print: "revoked" for an issued certificate that is revoked (on
// hold included), else the request's disposition.
func requestStatus(r *certadm.Request) string {
	if c := r.Certificate; c != nil && c.Revoked {
		return statusRevoked
	}
	return r.Status.String()
}

func rowOf(r *certadm.Request) viewRow {
	v := viewRow{
		RequestID:   r.ID,
		Status:      requestStatus(r),
		Profile:     r.Profile,
		Requester:   r.Requester,
		SubmittedAt: rfc3339(r.SubmittedAt),
		ResolvedAt:  rfc3339(r.ResolvedAt),
		DenyReason:  r.DenyReason,
	}
	v.Subject, v.RequestedSubject = subjectsOf(r)
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

// tableStatus is the STATUS column: Status, and for a certificate on hold
// "revoked (certificateHold)", since only a hold can be released.
func (v viewRow) tableStatus() string {
	if v.Revoked && v.RevocationReason != nil && *v.RevocationReason == ca.ReasonCertificateHold {
		return fmt.Sprintf("%s (%s)", v.Status, ca.ReasonName(ca.ReasonCertificateHold))
	}
	return v.Status
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
func writeView(w io.Writer, format string, rows []viewRow) error {
	switch format {
	case "json":
		if rows == nil {
			rows = []viewRow{}
		}
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
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.RequestID, r.tableStatus(), serial, notAfter, revoked, r.Subject)
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

// subjectsOf returns the subject to show for r, the issued certificate's
// once there is one, and the requested subject when it differs ("" when it
// does not).
func subjectsOf(r *certadm.Request) (shown, requested string) {
	if c := r.Certificate; c != nil && c.Subject != "" {
		if c.Subject != r.Subject {
			return c.Subject, r.Subject
		}
		return c.Subject, ""
	}
	return r.Subject, ""
}

package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/fsutil"
)

// timeFormat is how the commands print times: RFC 3339 in UTC.
const timeFormat = time.RFC3339

// formatTime prints t, or "-" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeFormat)
}

// printRequest writes a request's disposition and, once issued, its
// certificate's identity.
func printRequest(w io.Writer, r *certadm.Request) {
	fmt.Fprintf(w, "request %d: %s\n", r.ID, r.Status)
	if r.Subject != "" {
		fmt.Fprintf(w, "subject: %s\n", r.Subject)
	}
	if r.Status == certadm.StatusDenied && r.DenyReason != "" {
		fmt.Fprintf(w, "reason: %s\n", r.DenyReason)
	}
	if c := r.Certificate; c != nil {
		printCertificate(w, c)
	}
}

// printCertificate writes a certificate's serial, validity and revocation.
func printCertificate(w io.Writer, c *certadm.Certificate) {
	fmt.Fprintf(w, "serial: %s\n", c.Serial)
	if !c.NotAfter.IsZero() {
		fmt.Fprintf(w, "valid: %s .. %s\n", formatTime(c.NotBefore), formatTime(c.NotAfter))
	}
	if c.Revoked {
		fmt.Fprintf(w, "revoked: %s (reason %d)\n", formatTime(c.RevokedAt), c.RevocationReason)
	}
}

// writeCertificate writes an issued certificate as PEM to path, durably,
// mode 0644.
func writeCertificate(path string, c *certadm.Certificate) error {
	if err := fsutil.WriteFileAtomic(path, c.PEM(), 0o644); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	return nil
}

// readInput reads a file named on the command line; "-" is standard input.
func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	return b, nil
}

// displayName is File.String made printable: a tag that is not printable
// ASCII (the directory tags 0x82 and 0x83) is written as \xNN.
func displayName(f certadm.File) string {
	if f.Type == certadm.FileDynamic {
		return f.Name
	}
	t := byte(f.Type)
	if t >= 0x20 && t < 0x7F {
		return f.String()
	}
	return fmt.Sprintf(`\x%02X`, t) + f.Name
}

// trimPassword removes one trailing line ending from a password file's
// content.
func trimPassword(b []byte) string {
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

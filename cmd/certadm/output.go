package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/ca"
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

// printRequest writes a request's status and, once issued, its
// certificate's identity. The status is the one view shows (requestStatus):
// a revoked certificate's request is "revoked", followed by the reason.
func printRequest(w io.Writer, r *certadm.Request) {
	status := requestStatus(r)
	if status == statusRevoked {
		status += " (" + ca.ReasonName(r.Certificate.RevocationReason) + ")"
	}
	fmt.Fprintf(w, "request %d: %s\n", r.ID, status)
	if shown, requested := subjectsOf(r); shown != "" {
		fmt.Fprintf(w, "subject: %s\n", shown)
		if requested != "" {
			fmt.Fprintf(w, "requested subject: %s\n", requested)
		}
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
		fmt.Fprintf(w, "revoked: %s (reason %d, %s)\n", formatTime(c.RevokedAt), c.RevocationReason, ca.ReasonName(c.RevocationReason))
	}
}

// stdio is the file name that means standard input where a command reads
// a file and standard output where --out names one.
const stdio = "-"

// report returns where a command that can write a certificate with --out
// prints its messages: standard error when --out is "-", so that standard
// output holds the PEM certificate alone, else standard output.
func (a *app) report(out string) io.Writer {
	if out == stdio {
		return a.stderr
	}
	return a.stdout
}

// writeCertificate writes an issued certificate as PEM to path, durably,
// mode 0644, and says where; path "-" writes the PEM to standard output
// and nothing else.
// checkOutput checks, before anything is asked of the server, that a
// certificate can be written to path ("" and - need nothing): its
// directory exists and path is not a directory. A certificate issued and
// then not written would make the retry issue another.
func checkOutput(path string) error {
	if path == "" || path == stdio {
		return nil
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("--out %s: the directory %s does not exist", path, filepath.Dir(path))
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("--out %s is a directory; give a file name", path)
	}
	return nil
}

func (a *app) writeCertificate(path string, c *certadm.Certificate) error {
	if path == stdio {
		if _, err := a.stdout.Write(c.PEM()); err != nil {
			return fmt.Errorf("write certificate to standard output: %w", err)
		}
		return nil
	}
	if err := fsutil.WriteFileAtomic(path, c.PEM(), 0o644); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	a.printf("certificate written to %s\n", path)
	return nil
}

// inputName is how messages name a file read with readInput.
func inputName(path string) string {
	if path == stdio {
		return "standard input"
	}
	return path
}

// readInput reads a file named on the command line; "-" is standard input.
func readInput(path string) ([]byte, error) {
	if path == stdio {
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

// count writes n and the noun that goes with it: one (for 1) or many.
func count[N ~int | ~int64 | ~uint64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// trimPassword removes one trailing line ending from a password file's
// content.
func trimPassword(b []byte) string {
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

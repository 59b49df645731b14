package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/ca"
)

func newSubmitCmd(a *app) *cobra.Command {
	var profile, out string
	cmd := &cobra.Command{
		Use:   "submit CSR",
		Short: "Submit a PKCS#10 request (PEM or DER file, - for standard input)",
		Long: `Submit a PKCS#10 certificate request. The CA's policy issues it at once or
leaves it pending for an officer ("certadm approve ID"). With --out, an
issued certificate is written there as PEM; --out - writes it to standard
output, which then holds the certificate alone (the request's status goes to
standard error). A file that is not a certificate request is refused before
the server is contacted. A request the CA denies is an error (exit status 1).`,
		Args: cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			csr, err := readInput(args[0])
			if err != nil {
				return err
			}
			if _, err := ca.ParseCSR(csr); err != nil {
				return csrFileError(args[0], err)
			}
			if err := checkOutput(out); err != nil {
				return err
			}
			w := a.report(out)
			return a.withClient(ctx, func(c *certadm.Client) error {
				r, err := c.Submit(ctx, csr, profile)
				if err != nil {
					return err
				}
				printRequest(w, r)
				switch r.Status {
				case certadm.StatusIssued:
					if out != "" && r.Certificate != nil {
						return a.writeCertificate(out, r.Certificate)
					}
				case certadm.StatusPending:
					fmt.Fprintf(w, "pending: an officer approves it with 'certadm approve %d'\n", r.ID)
				case certadm.StatusDenied:
					return fmt.Errorf("request %d denied: %s: %w", r.ID, r.DenyReason, certadm.ErrPolicyDenied)
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&profile, "profile", "", `certificate profile (default: the server's, "tls-server")`)
	cmd.Flags().StringVar(&out, "out", "", "write the issued certificate to this file (PEM; - for standard output)")
	return cmd
}

// fileContentError is a file named on the command line whose content is
// not what the command takes. It matches both its cause and kind, the
// certadm sentinel of the condition the server reports for the same
// content (which gives the HRESULT).
type fileContentError struct {
	msg  string // the whole message, naming the file
	err  error
	kind error
}

func (e *fileContentError) Error() string { return e.msg }

// Unwrap returns the cause and the certadm sentinel.
func (e *fileContentError) Unwrap() []error { return []error{e.err, e.kind} }

// csrFileError names the file in err, an error of ca.ParseCSR, and gives it
// the condition the server reports for the same request: ErrTooLarge for
// an oversized one, else ErrBadRequest.
func csrFileError(file string, err error) error {
	name := inputName(file)
	if errors.Is(err, ca.ErrTooLarge) {
		return &fileContentError{msg: fmt.Sprintf("%s: %v", name, err), err: err, kind: certadm.ErrTooLarge}
	}
	msg := fmt.Sprintf("%s: %v", name, err)
	var fe *ca.CSRFormatError
	if errors.As(err, &fe) {
		msg = name + " is " + fe.Error() // "bad.csr is not a certificate request: ..."
	}
	return &fileContentError{msg: msg, err: err, kind: certadm.ErrBadRequest}
}

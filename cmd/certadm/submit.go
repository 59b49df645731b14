package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newSubmitCmd(a *app) *cobra.Command {
	var profile, out string
	cmd := &cobra.Command{
		Use:   "submit CSR",
		Short: "Submit a PKCS#10 request (PEM or DER file, - for standard input)",
		Long: `Submit a PKCS#10 certificate request. The CA's policy issues it at once or
leaves it pending for an officer ("certadm approve ID"). With --out, an
issued certificate is written there as PEM. A request the CA denies is an
error (exit status 1).`,
		Args: cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			csr, err := readInput(args[0])
			if err != nil {
				return err
			}
			return a.withClient(ctx, func(c *certadm.Client) error {
				r, err := c.Submit(ctx, csr, profile)
				if err != nil {
					return err
				}
				printRequest(a.stdout, r)
				switch r.Status {
				case certadm.StatusIssued:
					if out != "" && r.Certificate != nil {
						if err := writeCertificate(out, r.Certificate); err != nil {
							return err
						}
						a.printf("certificate written to %s\n", out)
					}
				case certadm.StatusPending:
					a.printf("pending: an officer approves it with 'certadm approve %d'\n", r.ID)
				case certadm.StatusDenied:
					return fmt.Errorf("request %d denied: %s: %w", r.ID, r.DenyReason, certadm.ErrPolicyDenied)
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&profile, "profile", "", `certificate profile (default: the server's, "tls-server")`)
	cmd.Flags().StringVar(&out, "out", "", "write the issued certificate to this file (PEM)")
	return cmd
}

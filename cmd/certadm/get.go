package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newGetCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a request and, once issued, write its certificate",
		Long: `Show request ID: its status ("revoked", with the reason, once its
certificate is revoked, as view shows it), its subject and its certificate's
serial, validity and revocation. With --out, the certificate is written
there as PEM; --out - writes it to standard output, which then holds the
certificate alone (the rest goes to standard error).`,
		Args: cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			id, err := parseRequestID(args[0])
			if err != nil {
				return err
			}
			return a.withClient(ctx, func(c *certadm.Client) error {
				r, err := c.GetRequest(ctx, id)
				if err != nil {
					return err
				}
				printRequest(a.report(out), r)
				if out != "" {
					if r.Certificate == nil {
						return fmt.Errorf("request %d has no certificate (status %s), nothing written to %s: %w", id, r.Status, out, certadm.ErrBadRequestStatus)
					}
					return a.writeCertificate(out, r.Certificate)
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "write the issued certificate to this file (PEM; - for standard output)")
	return cmd
}

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
		Args:  cobra.ExactArgs(1),
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
				printRequest(a.stdout, r)
				if out != "" {
					if r.Certificate == nil {
						return fmt.Errorf("request %d has no certificate (status %s), nothing written to %s: %w", id, r.Status, out, certadm.ErrBadRequestStatus)
					}
					if err := writeCertificate(out, r.Certificate); err != nil {
						return err
					}
					a.printf("certificate written to %s\n", out)
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "write the issued certificate to this file (PEM)")
	return cmd
}

package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newImportCertCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "import-cert CERT",
		Short: "Re-add a certificate this CA issued (PEM or DER file; Officer)",
		Long: `Re-add a certificate this CA issued to its database (ImportCertificate), for
example one issued after the last backup when the logs that recorded it
were lost.`,
		Args: cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			der, err := readInput(args[0])
			if err != nil {
				return err
			}
			return a.withClient(ctx, func(c *certadm.Client) error {
				cert, err := c.ImportCertificate(ctx, der)
				if err != nil {
					return err
				}
				a.printf("imported certificate %s\n", cert.Serial)
				if cert.Subject != "" {
					a.printf("subject: %s\n", cert.Subject)
				}
				return nil
			})
		}),
	}
}

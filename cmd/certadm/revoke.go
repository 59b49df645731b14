package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newRevokeCmd(a *app) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "revoke SERIAL",
		Short: "Revoke a certificate (Officer)",
		Long: `Revoke the certificate with serial number SERIAL, given in hex in any case,
with or without colons and leading zeros (as openssl prints it). --reason is
an RFC 5280 reason name or number: unspecified (default), keyCompromise,
cACompromise, affiliationChanged, superseded, cessationOfOperation,
certificateHold (undo with "certadm unrevoke"), privilegeWithdrawn,
aACompromise.`,
		Args: cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			serial := strings.TrimSpace(args[0])
			if serial == "" {
				return usagef("empty serial number")
			}
			return a.withClient(ctx, func(c *certadm.Client) error {
				cert, err := c.Revoke(ctx, serial, reason)
				if err != nil {
					return err
				}
				a.printf("revoked %s\n", cert.Serial)
				printCertificate(a.stdout, cert)
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "RFC 5280 revocation reason, by name or number")
	return cmd
}

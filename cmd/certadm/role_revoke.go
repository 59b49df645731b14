package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newRoleRevokeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Remove principal NAME; its credentials stop working",
		Args:  cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.withClient(ctx, func(c *certadm.Client) error {
				if err := c.RevokeRole(ctx, args[0]); err != nil {
					return err
				}
				a.printf("removed %s\n", args[0])
				return nil
			})
		}),
	}
}

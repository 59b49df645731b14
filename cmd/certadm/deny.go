package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newDenyCmd(a *app) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "deny ID",
		Short: "Deny a pending request (Officer)",
		Args:  cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			id, err := parseRequestID(args[0])
			if err != nil {
				return err
			}
			return a.withClient(ctx, func(c *certadm.Client) error {
				r, err := c.Deny(ctx, id, reason)
				if err != nil {
					return err
				}
				printRequest(a.stdout, r)
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the request is denied (recorded with it)")
	return cmd
}

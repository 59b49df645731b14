package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newApproveCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "approve ID",
		Short: "Issue a pending request (Officer)",
		Args:  cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			id, err := parseRequestID(args[0])
			if err != nil {
				return err
			}
			return a.withClient(ctx, func(c *certadm.Client) error {
				r, err := c.Approve(ctx, id)
				if err != nil {
					return err
				}
				printRequest(a.stdout, r)
				return nil
			})
		}),
	}
}

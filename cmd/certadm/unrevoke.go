package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newUnrevokeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "unrevoke SERIAL",
		Short: "Release a certificate from certificateHold (Officer)",
		Args:  cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			serial, err := parseSerialArg(args[0])
			if err != nil {
				return err
			}
			return a.withClient(ctx, func(c *certadm.Client) error {
				cert, err := c.Unrevoke(ctx, serial)
				if err != nil {
					return err
				}
				a.printf("released %s from hold\n", cert.Serial)
				return nil
			})
		}),
	}
}

package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newShutdownCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "shutdown",
		Short: "Ask the server to stop (CertSrvServerControl; Operator or Administrator)",
		Args:  cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, args []string) error {
			if err := certadm.ServerControl(ctx, a.server, certadm.ControlShutdown, a.options()...); err != nil {
				return err
			}
			a.printf("shutdown requested\n")
			return nil
		}),
	}
}

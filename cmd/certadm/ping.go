package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
)

func newPingCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "ping",
		Short: "Show whether the CA is online, and who you are to it",
		Args:  cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, args []string) error {
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			info, err := c.Ping(ctx)
			if err != nil {
				return err
			}
			a.printf("server: %s\n", c.Server())
			a.printf("state: %s\n", info.State)
			if info.WritesRefused != "" {
				a.printf("writes: refused: %s\n", info.WritesRefused)
			}
			a.printf("ca: %s\n", info.CAName)
			a.printf("principal: %s\n", info.Principal)
			a.printf("roles: %s\n", strings.Join(info.Roles, ", "))
			if info.Version != "" {
				a.printf("version: %s\n", info.Version)
			}
			return nil
		}),
	}
}

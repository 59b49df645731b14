package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newCRLCmd(a *app) *cobra.Command {
	var delta bool
	cmd := &cobra.Command{
		Use:   "crl",
		Short: "Publish a full CRL, or a delta CRL with --delta (Officer)",
		Args:  cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.withClient(ctx, func(c *certadm.Client) error {
				info, err := c.PublishCRL(ctx, delta)
				if err != nil {
					return err
				}
				kind := "full"
				if info.Delta {
					kind = "delta"
				}
				a.printf("published %s CRL number %s with %s\n", kind, info.Number, count(info.Entries, "entry", "entries"))
				a.printf("this update: %s\nnext update: %s\n", formatTime(info.ThisUpdate), formatTime(info.NextUpdate))
				if info.URL != "" {
					a.printf("url: %s\n", info.URL)
				}
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&delta, "delta", false, "publish a delta CRL")
	return cmd
}

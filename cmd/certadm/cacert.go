package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/fsutil"
)

func newCACertCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "ca-cert",
		Short: "Write the CA certificate, then its chain, as PEM",
		Args:  cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.withClient(ctx, func(c *certadm.Client) error {
				cert, chain, err := c.CACertificate(ctx)
				if err != nil {
					return err
				}
				var buf bytes.Buffer
				for _, x := range append([]*x509.Certificate{cert}, chain...) {
					if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: x.Raw}); err != nil {
						return err
					}
				}
				if out == "" || out == stdio {
					_, err := a.stdout.Write(buf.Bytes())
					return err
				}
				if err := fsutil.WriteFileAtomic(out, buf.Bytes(), 0o644); err != nil {
					return fmt.Errorf("write CA certificate: %w", err)
				}
				a.printf("CA certificate %q written to %s\n", cert.Subject.String(), out)
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "write to this file instead of standard output (- is standard output)")
	return cmd
}

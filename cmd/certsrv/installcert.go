package main

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/service"
)

func newInstallCertCmd(a *app) *cobra.Command {
	var chainFile string
	cmd := &cobra.Command{
		Use:   "install-cert CERT",
		Short: "Install a subordinate CA's signed certificate",
		Long: `install-cert completes a subordinate CA made with certsrv init --subordinate:
CERT is the certificate the parent CA issued for keys/ca.csr (PEM or DER,
optionally followed by the chain above it); --chain names a PEM file with the
chain when CERT does not hold it. The certificate must be for that
request's key, a CA certificate (keyCertSign, cRLSign), valid now, and
chain to a self-signed root. The CA must be stopped.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.dir()
			if err != nil {
				return err
			}
			certPEM, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var chainPEM []byte
			if chainFile != "" {
				if chainPEM, err = os.ReadFile(chainFile); err != nil {
					return err
				}
			}
			l, err := lock(dir)
			if err != nil {
				return err
			}
			defer l.Release()
			if err := service.InstallCert(cmd.Context(), dir, certPEM, chainPEM); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Installed the CA certificate in %s\n", dir.CACertPath())
			printNameConstraints(a, dir)
			fmt.Fprintf(a.stdout, "Next: certsrv serve --data %s\n", dir.Root)
			return nil
		},
	}
	cmd.Flags().StringVar(&chainFile, "chain", "", "PEM file with the certificates above CERT, nearest first")
	return cmd
}

// printNameConstraints names the name constraints of the installed
// certificate and the chain above it, which certsrv enforces at issuance.
func printNameConstraints(a *app, dir datadir.Dir) {
	var certs []*x509.Certificate
	for _, path := range []string{dir.CACertPath(), dir.CAChainPath()} {
		if b, err := os.ReadFile(path); err == nil {
			if cs, err := ca.ParseCertsPEM(b); err == nil {
				certs = append(certs, cs...)
			}
		}
	}
	first := true
	for _, c := range certs {
		d := ca.DescribeNameConstraints(c)
		if d == "" {
			continue
		}
		if first {
			fmt.Fprintln(a.stdout, "Name constraints this CA will issue within (requests outside them are refused):")
			first = false
		}
		fmt.Fprintf(a.stdout, "  %s: %s\n", c.Subject.CommonName, d)
	}
	if len(certs) > 0 {
		if err := ca.CheckSubjectConstraints(certs[0], certs[1:]); err != nil {
			fmt.Fprintf(a.stdout, "Warning: %v\n", err)
		}
	}
}

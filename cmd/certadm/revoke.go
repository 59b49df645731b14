package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/ca"
)

func newRevokeCmd(a *app) *cobra.Command {
	var reason string
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "revoke SERIAL",
		Short: "Revoke a certificate (Officer)",
		Long: `Revoke the certificate with serial number SERIAL, given in hex in any case,
with or without colons and leading zeros (as openssl prints it). --reason is
an RFC 5280 reason name (any case) or number: unspecified (0, the default),
keyCompromise (1), cACompromise (2), affiliationChanged (3), superseded (4),
cessationOfOperation (5), certificateHold (6; undo with "certadm unrevoke"),
privilegeWithdrawn (9), aACompromise (10). A malformed SERIAL or an unknown
reason is a usage error (exit status 2), found before the server is
contacted.`,
		Args: cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			serial, err := parseSerialArg(args[0])
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("reason") && strings.TrimSpace(reason) == "" {
				// Not the default: an empty --reason would quietly turn a
				// hold into a final revocation with reason unspecified.
				return usagef("--reason is empty; want one of %s (or leave --reason out for unspecified)", revocationReasons())
			}
			if err := checkReasonFlag(reason); err != nil {
				return err
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
	cmd.Flags().StringVar(&reason, "reason", "", "RFC 5280 revocation reason, by name or number (default unspecified)")
	return cmd
}

// parseSerialArg checks a SERIAL argument with the parser the server uses
// and returns it in canonical form; a malformed one is a usage error.
func parseSerialArg(s string) (string, error) {
	n, err := ca.ParseSerial(s)
	if err != nil {
		why := err.Error()
		var se *ca.SerialError
		if errors.As(err, &se) {
			why = se.Reason
		}
		return "", usagef("SERIAL %q: %s; want the serial number in hex, colons and leading zeros allowed (e.g. 1B:B8:89 or 1BB889)", s, why)
	}
	return ca.SerialString(n), nil
}

// checkReasonFlag checks --reason with the server's parser and its rule for
// revocation; "" (the server's default, unspecified) passes. An unknown or
// unusable reason is a usage error that lists the accepted ones.
func checkReasonFlag(s string) error {
	if s == "" {
		return nil
	}
	code, err := ca.ParseReason(s)
	if err == nil {
		err = ca.CheckRevocationReason(code)
	}
	if err != nil {
		return usagef("--reason %q: not a revocation reason; want one of %s", s, revocationReasons())
	}
	return nil
}

// revocationReasons lists the reasons a certificate may be revoked with, by
// name and number, from the server's own table.
func revocationReasons() string {
	var rs []string
	for code := 0; code <= ca.ReasonAACompromise; code++ {
		if ca.CheckRevocationReason(code) == nil {
			rs = append(rs, fmt.Sprintf("%s (%d)", ca.ReasonName(code), code))
		}
	}
	return strings.Join(rs, ", ")
}

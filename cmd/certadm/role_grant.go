package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/service"
)

func newRoleGrantCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "grant NAME ROLE... --out DIR",
		Short: "Give principal NAME roles and write a new credential for it into DIR",
		Long: `Give principal NAME the listed roles (Administrator, Officer, Auditor,
Operator, Enrollee, Reader), added to the roles it already has. A new ECDSA P-256
key is generated here; only its public key is sent. DIR receives
client.key (mode 0600), client.crt, trust.crt and server: a credentials
directory to use with --creds or CERTADM_CREDS. DIR must not already hold
a credential. Role names are matched without regard to case and reported
as the server stores them ("operator" grants Operator); an unknown role is
a usage error (exit status 2), found before the server is contacted.`,
		Args: cobra.MinimumNArgs(2),
		RunE: a.action(func(ctx context.Context, args []string) error {
			if out == "" {
				return usagef("--out DIR is required")
			}
			if err := ca.CheckPrincipal(args[0]); err != nil {
				return usagef("NAME %q: %v", args[0], err)
			}
			roles, err := parseRoleArgs(args[1:])
			if err != nil {
				return err
			}
			keyPath := filepath.Join(out, certadm.CredsKeyFile)
			if _, err := os.Lstat(keyPath); err == nil {
				return fmt.Errorf("%s already holds a credential: %w", out, fs.ErrExist)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return fmt.Errorf("generate key: %w", err)
			}
			return a.withClient(ctx, func(c *certadm.Client) error {
				cred, err := c.GrantRole(ctx, args[0], roles, &key.PublicKey)
				if err != nil {
					return err
				}
				if err := writeCredentials(out, key, cred, c.Server()); err != nil {
					return err
				}
				a.printf("granted %s to %s\n", strings.Join(roles, ", "), args[0])
				a.printf("credential written to %s (use --creds %s)\n", out, out)
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the new credential into (required)")
	return cmd
}

// parseRoleArgs reads ROLE arguments with the server's role parser and
// returns the canonical names the server stores, in its order and without
// duplicates. An unknown name is a usage error that lists the roles.
func parseRoleArgs(names []string) ([]string, error) {
	for _, n := range names {
		if _, err := service.ParseRole(n); err != nil {
			return nil, usagef("ROLE %q: unknown role; want one of %s (any case)", n, strings.Join(service.AllRoles().Strings(), ", "))
		}
	}
	roles, err := service.ParseRoles(names)
	if err != nil {
		return nil, usagef("ROLE: %v", err)
	}
	return roles.Strings(), nil
}

// writeCredentials writes a credentials directory. Each file is written
// atomically; the key first, so a crash part-way leaves a directory that
// fails to load rather than one that holds a certificate without its key.
func writeCredentials(dir string, key *ecdsa.PrivateKey, cred *certadm.Credential, server string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create credentials directory: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{certadm.CredsKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600},
		{certadm.CredsCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cred.Certificate.Raw}), 0o644},
		{certadm.CredsTrustFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cred.TrustAnchor.Raw}), 0o644},
		{certadm.CredsServerFile, []byte(server + "\n"), 0o644},
	}
	for _, f := range files {
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("write credential: %w", err)
		}
	}
	return nil
}

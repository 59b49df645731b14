package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/fsutil"
)

func newKeyBackupCmd(a *app) *cobra.Command {
	var passwordFile string
	var force bool
	cmd := &cobra.Command{
		Use:   "backup DIR --password-file F [--force]",
		Short: "Write the CA key and chain to DIR/<CA>.p12 (Operator)",
		Long: `Export the CA key and chain as a PKCS#12 file encrypted with the password
in F (its first line; a trailing newline is not part of it) and write it to
DIR/<CA name>.p12, mode 0600, atomically. The key is never part of a
database backup; keep this file apart from it.

An existing DIR/<CA name>.p12 (perhaps encrypted with another password) is
left alone and the command fails, unless --force, which replaces it.`,
		Args: cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			if passwordFile == "" {
				return usagef("--password-file is required")
			}
			b, err := readInput(passwordFile)
			if err != nil {
				return err
			}
			password := trimPassword(b)
			if password == "" {
				return usagef("password file %s is empty", passwordFile)
			}
			dir := args[0]
			return a.withClient(ctx, func(c *certadm.Client) error {
				// Refuse before the server exports (and logs) anything
				// when the file it will be written to is there already.
				if info, err := c.Ping(ctx); err == nil && !force && info.CAName != "" {
					if err := keepExisting(dir, info.CAName+".p12"); err != nil {
						return err
					}
				}
				p12, name, err := c.BackupKey(ctx, password)
				if err != nil {
					return err
				}
				if name == "" || filepath.Base(name) != name {
					return fmt.Errorf("server suggested file name %q, which is not a plain file name: %w", name, certadm.ErrInvalidData)
				}
				path, err := fsutil.Within(dir, name)
				if err != nil {
					return fmt.Errorf("server suggested file name %q: %w", name, err)
				}
				if !force {
					if err := keepExisting(dir, name); err != nil {
						return err
					}
				}
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return fmt.Errorf("create %s: %w", dir, err)
				}
				if err := fsutil.WriteFileAtomic(path, p12, 0o600); err != nil {
					return fmt.Errorf("write key backup: %w", err)
				}
				a.printf("wrote %s (%d bytes)\n", path, len(p12))
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file holding the PKCS#12 password (required)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing DIR/<CA name>.p12")
	return cmd
}

// keepExisting refuses a key file name in dir that exists already.
func keepExisting(dir, name string) error {
	path, err := fsutil.Within(dir, name)
	if err != nil {
		return fmt.Errorf("key file name %q: %w", name, err)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s: %w; it may be encrypted with another password: move it away, or use --force to replace it", path, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("key backup: %w", err)
	}
	return nil
}

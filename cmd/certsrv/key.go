package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/internal/service"
)

// newKeyCmd groups the CA key operations.
func newKeyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "CA key operations",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			cmd.Help()
			return usagef("certsrv key needs a subcommand")
		},
	}
	cmd.AddCommand(newKeyRestoreCmd(a))
	return cmd
}

func newKeyRestoreCmd(a *app) *cobra.Command {
	var passwordFile, passphraseFile string
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Install the CA key from a PKCS#12 key backup",
		Long: `key restore installs the CA key from FILE, a PKCS#12 file made by
certadm key backup, into the data directory. The CA must be stopped. The key
must belong to keys/ca.crt; on a directory without a CA certificate, the
certificate and chain in FILE are installed too. An existing keys/ca.key is
kept as keys/ca.key.bak.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if passwordFile == "" {
				return usagef("--password-file is required")
			}
			dir, err := a.dir()
			if err != nil {
				return err
			}
			p12, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			password, err := readSecret(passwordFile, "password")
			if err != nil {
				return err
			}
			pass, err := readSecret(passphraseFile, "passphrase")
			if err != nil {
				return err
			}
			if err := service.KeyRestoreWithOptions(cmd.Context(), dir, p12, string(password), service.KeyRestoreOptions{Passphrase: pass}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Restored the CA key to %s\n", dir.CAKeyPath())
			return nil
		},
	}
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file holding the PKCS#12 password (required)")
	cmd.Flags().StringVar(&passphraseFile, "passphrase-file", "", "file holding a passphrase to encrypt the restored key with")
	return cmd
}

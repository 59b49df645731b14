package main

import "github.com/spf13/cobra"

func newKeyCmd(a *app) *cobra.Command {
	return group("key", "Export the CA key", newKeyBackupCmd(a))
}

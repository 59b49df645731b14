package main

import "github.com/spf13/cobra"

func newRoleCmd(a *app) *cobra.Command {
	return group("role", "Grant and revoke roles (Administrator)", newRoleGrantCmd(a), newRoleRevokeCmd(a))
}

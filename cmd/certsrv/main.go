// Command certsrv is the certsrv certificate authority daemon and its local
// operations: init creates a CA, serve runs it (the gRPC admin API and the
// HTTP publication endpoint), install-cert completes a subordinate CA, and
// key restore puts a backed-up CA key back. Operations that change a data
// directory take its lock, so they refuse to run while a server holds it.
//
// Exit status: 0 success, 1 an operation failed, 2 the command line was
// wrong.
package main

import (
	"os"

	"github.com/spf13/cobra"
)

// commands lists the constructor of every top-level subcommand, in the
// order help shows them. A file that adds a subcommand defines its
// constructor and appends it here; nothing registers itself at init time.
var commands = []func(*app) *cobra.Command{
	newInitCmd,
	newServeCmd,
	newInstallCertCmd,
	newKeyCmd,
	newCheckCmd,
	newRestoreCmd,
	newRecoverCmd,
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

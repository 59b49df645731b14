// Command certadm is the certsrv administration client, the counterpart of
// certutil: it submits and manages certificate requests, revokes
// certificates, publishes CRLs, lists the CA's database, manages roles and
// credentials, exports the CA key, and drives the backup API. It talks to
// the server through the public library github.com/certsrv/certsrv/certadm.
//
// The server and the credentials come from --server and --creds, then the
// CERTADM_SERVER and CERTADM_CREDS environment variables, then
// ./certsrv-data/admin (see the certadm package). Exit status: 0 success,
// 1 an operation failed, 2 the command line was wrong. Errors are printed
// as "certadm: <message> (HRESULT 0x%08X)".
package main

import (
	"os"

	"github.com/spf13/cobra"
)

// commands lists the constructor of every top-level subcommand, in the
// order help shows them. A file that adds a subcommand defines its
// constructor and appends it here; nothing registers itself at init time.
var commands = []func(*app) *cobra.Command{
	newPingCmd,
	newSubmitCmd,
	newGetCmd,
	newApproveCmd,
	newDenyCmd,
	newRevokeCmd,
	newUnrevokeCmd,
	newCRLCmd,
	newViewCmd,
	newCACertCmd,
	newImportCertCmd,
	newRoleCmd,
	newKeyCmd,
	newLocationsCmd,
	newDynamicFilesCmd,
	newShutdownCmd,
	newVerifyCmd,
	newBenchCmd,
	newBackupCmd,
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

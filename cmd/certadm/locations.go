package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newLocationsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "locations",
		Short: "Print the restore map: database file, log and checkpoint directories (Operator)",
		Long: `Print the restore map (CertSrvRestoreGetDatabaseLocations) as tagged names,
one per line: D for the database file, \x82 for the log directory, \x83 for
the checkpoint directory, followed by the absolute path on the server. The
command opens a full backup session, lists, and aborts it.`,
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.inBackupSession(ctx, func(b *certadm.BackupContext) error {
				files, err := b.DatabaseLocations(ctx)
				if err != nil {
					return err
				}
				for _, f := range files {
					a.printf("%s\n", displayName(f))
				}
				return nil
			})
		}),
	}
}

// inBackupSession prepares a full backup session, runs fn, and aborts the
// session, as certutil does for its listing commands. fn's error wins over
// the abort's.
func (a *app) inBackupSession(ctx context.Context, fn func(*certadm.BackupContext) error) error {
	b, err := certadm.BackupPrepare(ctx, a.server, certadm.BackupFull, a.options()...)
	if err != nil {
		return err
	}
	err = fn(b)
	if aerr := b.Abort(ctx); err == nil {
		err = aerr
	}
	return err
}

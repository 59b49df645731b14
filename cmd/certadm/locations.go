package main

import (
	"context"
	"errors"
	"fmt"

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
			return a.inBackupSession(ctx, "locations", func(b *certadm.BackupContext) error {
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
// session, as certutil does for its listing commands (certbcli.h lists
// these only within a backup context). fn's error wins over the abort's.
// A refused prepare says why the listing command needed a session.
func (a *app) inBackupSession(ctx context.Context, command string, fn func(*certadm.BackupContext) error) error {
	b, err := certadm.BackupPrepare(ctx, a.server, certadm.BackupFull, a.options()...)
	switch {
	case errors.Is(err, certadm.ErrAccessDenied):
		return fmt.Errorf("%s opens a backup session, which needs the Operator role: %w", command, err)
	case errors.Is(err, certadm.ErrBackupInProgress):
		return fmt.Errorf("%s opens a backup session of its own, and only one runs at a time; run it when the backup has ended: %w", command, err)
	case err != nil:
		return err
	}
	err = fn(b)
	if aerr := b.Abort(ctx); err == nil {
		err = aerr
	}
	return err
}

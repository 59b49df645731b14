package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/internal/restore"
)

func newRecoverCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "recover",
		Short: "Run the hard recovery of a completed restore now (CA stopped)",
		Long: `recover runs, offline, the hard recovery that a completed restore
(certsrv restore, or a program using the certadm restore functions) left
for the next start of the CA: it verifies the restored database and the
backup's logs, replays them and the live logs that continue them, stops at
the registered point in time, and leaves a CA that starts with nothing to
replay. An interrupted recovery resumes where it stopped. The CA must be
stopped. Without a pending restore there is nothing to do.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := a.logger()
			if err != nil {
				return err
			}
			dir, err := a.dir()
			if err != nil {
				return err
			}
			if _, err := os.Stat(dir.Root); err != nil {
				return fmt.Errorf("no data directory %s: %w", dir.Root, err)
			}
			if _, err := os.Stat(restore.RecordPath(dir)); errors.Is(err, fs.ErrNotExist) {
				// Nothing pending: no need to lock (and so touch) the directory.
				fmt.Fprintf(a.stdout, "No restore is pending in %s; nothing to recover.\n", dir.Root)
				return nil
			}
			l, err := lock(dir)
			if err != nil {
				return err
			}
			defer l.Release()
			rec, err := restore.Pending(dir)
			if err != nil {
				return err
			}
			if rec == nil {
				fmt.Fprintf(a.stdout, "No restore is pending in %s; nothing to recover.\n", dir.Root)
				return nil
			}
			prog := newRestoreProgress(a.stderr)
			if prog != nil {
				prog.status.Recovering()
				if logger, err = a.loggerTo(prog.out); err != nil {
					prog.close()
					return err
				}
			}
			res, err := restore.Recover(cmd.Context(), dir, restore.RecoverOptions{Logger: logger, OnProgress: prog.onPhase})
			prog.close()
			if err != nil {
				return err
			}
			printRecovery(a, res)
			fmt.Fprintf(a.stdout, "Next: certsrv serve --data %s\n", dir.Root)
			return nil
		},
	}
}

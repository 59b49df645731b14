package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/store"
)

// errCheckFailed is returned when the check found problems; the report has
// already been printed.
var errCheckFailed = errors.New("check found problems")

func newCheckCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check the database, checkpoint and every log generation offline",
		Long: `check opens nothing for writing: it runs PRAGMA integrity_check on the
database, reads and verifies the checkpoint file, and verifies every log
generation (header, signature, chain, CRC of every record, LSN continuity),
then prints a report. The CA must be stopped, so that the files do not move
under the check. Exit status 0 means no problem was found; 1 means the report
lists at least one.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := a.dir()
			if err != nil {
				return err
			}
			cfg, err := dir.LoadConfig()
			if err != nil {
				return err
			}
			lock, err := dir.Acquire()
			if err != nil {
				if errors.Is(err, datadir.ErrLocked) {
					return fmt.Errorf("%w: stop the CA before checking it offline", err)
				}
				return err
			}
			defer lock.Release()
			rep, err := store.Check(cmd.Context(), service.StoreOptions(dir, cfg, nil))
			if err != nil {
				return err
			}
			fmt.Fprint(a.stdout, rep.String())
			if !rep.OK() {
				return fmt.Errorf("%w: %s", errCheckFailed, count(len(rep.Problems), "problem", "problems"))
			}
			fmt.Fprintln(a.stdout, "ok: no problems found")
			return nil
		},
	}
}

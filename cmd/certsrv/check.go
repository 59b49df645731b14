package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/termline"
)

// checkLine starts the status line of certsrv check on w when w is a
// terminal (a check of a large database reads every page for minutes), and
// returns nil otherwise.
func checkLine(w io.Writer) *termline.Line {
	out, width, ok := terminalOutput(w)
	if !ok {
		return nil
	}
	start := time.Now()
	l := termline.New(out, func() string {
		return termline.Fit("checking the database, the checkpoint and every log generation  "+time.Since(start).Truncate(time.Second).String(), width)
	})
	l.Draw()
	l.Start()
	return l
}

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
			line := checkLine(a.stderr)
			rep, err := store.Check(cmd.Context(), service.StoreOptions(dir, cfg, nil))
			line.Close()
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

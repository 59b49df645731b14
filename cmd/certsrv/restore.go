package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/internal/restore"
)

// restoreFlags are the flags of certsrv restore.
type restoreFlags struct {
	until        string
	noCatchUp    bool
	force        bool
	passwordFile string
	recoverNow   bool
	cancel       bool
}

func newRestoreCmd(a *app) *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore DIR",
		Short: "Restore a backup set into the data directory (CA stopped)",
		Long: `restore puts the backup set in DIR (a full backup and the incremental
backups appended to it, as certadm backup writes them) into the data
directory. The CA must be stopped.

It first verifies the whole set (manifest, checksums, signatures, the chain
of log generations) and the data directory, and changes nothing when
anything is wrong. It then registers the restore, copies the database
snapshot, the backup's logs, the dynamic files (into publish/), the
configuration (into an empty directory) and the CA key (from the set's
<CA>.p12, decrypted with --password-file, unless the data directory already
holds that CA's key), and completes the registration. Hard recovery runs when
the CA next starts (certsrv serve) or at certsrv recover; --recover-now runs
it at once. Recovery replays the backup's logs and then, unless
--no-catchup, the live logs still in log/ that continue them, so losing only
the database file loses nothing; --until stops it at a point in time
(RFC 3339, e.g. 2026-05-01T12:00:00Z) or after a log record (lsn:N).

Restoring into an empty directory (a new host) gives a CA with a new server
TLS certificate and admin credential, made during recovery. A data directory
that already holds the CA is refused unless --force: its database file is
then set aside under restore/, never deleted, and its live logs are kept for
catch-up. A directory holding another CA is always refused.

restore --cancel removes a restore that was registered but not completed (or
one waiting for recovery), so the CA can start again.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.cancel {
				return noArgs(cmd, args)
			}
			return exactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.cancel {
				return a.cancelRestore()
			}
			return a.restore(cmd, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.until, "until", "", "stop recovery at this time (RFC 3339) or after this log record (lsn:N)")
	fl.BoolVar(&f.noCatchUp, "no-catchup", false, "do not replay the live logs after the backup's")
	fl.BoolVar(&f.force, "force", false, "restore over a data directory that holds this CA")
	fl.StringVar(&f.passwordFile, "password-file", "", "file holding the password of the set's key file (<CA>.p12)")
	fl.BoolVar(&f.recoverNow, "recover-now", false, "run hard recovery now instead of at the next start")
	fl.BoolVar(&f.cancel, "cancel", false, "cancel a registered restore instead of restoring")
	return cmd
}

func (a *app) restore(cmd *cobra.Command, setDir string, f *restoreFlags) error {
	logger, err := a.logger()
	if err != nil {
		return err
	}
	dir, err := a.dir()
	if err != nil {
		return err
	}
	until, err := restore.ParseUntil(f.until)
	if err != nil {
		return usagef("--until: %v", err)
	}
	password, err := readSecret(f.passwordFile, "password")
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(setDir)
	if err != nil {
		return err
	}
	undo := newTargetUndo(dir.Root)
	prog := newRestoreProgress(a.stderr)
	if prog != nil {
		if logger, err = a.loggerTo(prog.out); err != nil {
			prog.close()
			return err
		}
	}
	rep, err := restore.Restore(cmd.Context(), restore.Options{
		SetDir:     abs,
		Dir:        dir,
		Until:      until,
		NoCatchUp:  f.noCatchUp,
		Force:      f.force,
		Password:   string(password),
		RecoverNow: f.recoverNow,
		Logger:     logger,
		Status:     prog.statusOf(),
		OnProgress: prog.onPhase,
	})
	prog.close()
	if err != nil {
		undo.run()
		return err
	}
	out := a.stdout
	v := rep.Verify
	fmt.Fprintf(out, "Verified backup set %s: %s, %s, %d bytes\n", abs, count(v.Backups, "backup", "backups"), count(v.Files, "file", "files"), v.Bytes)
	for _, n := range rep.Notes {
		fmt.Fprintf(out, "Note: %s\n", n)
	}
	rec := rep.Record
	fmt.Fprintf(out, "Restored CA %q into %s: snapshot at LSN %d, log generations %d..%d\n",
		rep.CAName, dir.Root, rec.SnapshotLSN, rec.LowGen, rec.HighGen)
	if rep.KeyRestored {
		fmt.Fprintf(out, "The CA key came from the set's key file.\n")
	}
	if rep.ConfigNote != "" {
		fmt.Fprintf(out, "Note: %s.\n", rep.ConfigNote)
	}
	for _, p := range rep.Replaced {
		fmt.Fprintf(out, "Set aside the previous database file as %s\n", p)
	}
	if res := rep.Recovery; res != nil {
		printRecovery(a, res)
		fmt.Fprintf(out, "Next: certsrv serve --data %s\n", dir.Root)
		return nil
	}
	fmt.Fprintf(out, "The restore is registered; hard recovery runs when the CA starts.\n")
	fmt.Fprintf(out, "Next: certsrv serve --data %s  (or certsrv recover --data %s to recover now)\n", dir.Root, dir.Root)
	if rec.NewCredentials {
		fmt.Fprintf(out, "A new admin credential is written to %s during recovery.\n", dir.AdminDir())
	}
	return nil
}

// targetUndo removes what a failed restore made in a data directory that
// did not exist, or was empty, before it: a refused restore leaves the
// target as it was (a data directory holding files is restore's own to
// keep as it was).
type targetUndo struct {
	root    string
	existed bool
	empty   bool
}

func newTargetUndo(root string) targetUndo {
	u := targetUndo{root: root}
	entries, err := os.ReadDir(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err == nil:
		u.existed, u.empty = true, len(entries) == 0
	default:
		u.existed = true
	}
	return u
}

func (u targetUndo) run() {
	switch {
	case !u.existed:
		os.RemoveAll(u.root)
	case u.empty:
		entries, err := os.ReadDir(u.root)
		if err != nil {
			return
		}
		for _, e := range entries {
			os.RemoveAll(filepath.Join(u.root, e.Name()))
		}
	}
}

func (a *app) cancelRestore() error {
	dir, err := a.dir()
	if err != nil {
		return err
	}
	if _, err := os.Stat(restore.RecordPath(dir)); errors.Is(err, fs.ErrNotExist) {
		// Nothing to cancel: say so without making the directory.
		return fmt.Errorf("%s: %w", dir.Root, restore.ErrNothingPending)
	}
	rec, err := restore.Cancel(dir)
	if err != nil {
		return err
	}
	if rec == nil {
		fmt.Fprintf(a.stdout, "Removed an unreadable restore record from %s\n", dir.RestoreDir())
		return nil
	}
	fmt.Fprintf(a.stdout, "Cancelled the restore of CA %q (state %s) in %s\n", rec.CAName, rec.State, dir.Root)
	if rec.State != restore.StateRegistered && rec.State != restore.StateFailed {
		fmt.Fprintf(a.stdout, "The restored files stay as they are; the next start runs soft recovery on them.\n")
	}
	return nil
}

// printRecovery prints what a hard recovery did, and why the live log was
// not replayed when it was not: the restore asked so (--no-catchup), or
// catch-up was impossible.
func printRecovery(a *app, res *restore.Result) {
	out := a.stdout
	fmt.Fprintf(out, "Recovered to LSN %d (%s): %s from the backup's logs, %d from the live log, in %v\n",
		res.LastLSN, res.StopReason, count(res.BackupRecords, "record", "records"), res.LiveRecords, res.Duration.Round(1e6))
	switch {
	case res.Record != nil && !res.Record.CatchUp:
		fmt.Fprintf(out, "Live log not replayed: --no-catchup\n")
	case res.CatchUpSkipped != "":
		fmt.Fprintf(out, "Live log not replayed: %s\n", res.CatchUpSkipped)
	}
	if res.SetAside != "" {
		fmt.Fprintf(out, "Files recovery replaced were kept in %s\n", res.SetAside)
	}
	fmt.Fprintf(out, "The next backup must be a full backup.\n")
}

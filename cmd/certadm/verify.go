package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/internal/verify"
)

type verifyFlags struct {
	json    bool
	noWrite bool
	tempDir string
}

func newVerifyCmd(a *app) *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify DIR [--json] [--no-write] [--temp-dir T]",
		Short: "Prove the backup set DIR restorable, without touching any CA",
		Long: `Prove the backup set DIR restorable without touching any CA (no server is
contacted).

The set's files are checked against its manifest: the manifest's checksum,
every file's size and SHA-256 (of each 16 MiB chunk of a larger file, hashed
on every core; a damaged chunk is named with its byte range), nothing
missing or extra, the restore map, the database snapshot's signatures and
position, and the log generations as one
chain that continues the snapshot. A set without manifest.json (written by
other backup software) is accepted, said so, and checked from the files
themselves. Then the set is restored into a temporary directory (--temp-dir,
default $TMPDIR; it needs room for a copy of the database): the log records
after the snapshot are replayed, SQLite's integrity_check runs, every issued
certificate must verify against the CA certificate in Dynamic/, the CRLs
must verify and the latest must list exactly the revoked, unexpired
certificates known when it was published, and the database must agree with
itself. The temporary directory is always removed.

A report with one line per check is printed (--json: one JSON object, for
machines). A check whose file failed its own check is reported as not
checked, never as ok. Unless --no-write, the outcome is recorded in
DIR/verified.json (time, tool version, outcome, summary), so a later verify
can say when the set was last proven restorable.

A problem of this machine rather than of the set (the temporary directory
cannot be made or written, it runs out of space, the command is
interrupted) is no verdict: the report says NOT VERIFIED ("outcome":
"error" in --json), the error says "could not verify DIR", and
DIR/verified.json is left as it was.

Exit status: 0 the set verified, 1 it did not (or could not be read or
verified here), 2 the command line was wrong.`,
		Args: cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			return runVerify(ctx, a, args[0], f)
		}),
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	fl.BoolVar(&f.noWrite, "no-write", false, "do not record the outcome in DIR/verified.json")
	fl.StringVar(&f.tempDir, "temp-dir", "", "directory for the trial restore's temporary copy (default $TMPDIR)")
	return cmd
}

// runVerify verifies dir, records the outcome in it unless asked not to,
// and prints the report. A set that did not verify is an error (exit 1);
// so is a verification that reached no verdict (*verify.EnvironmentError),
// which is not recorded.
func runVerify(ctx context.Context, a *app, dir string, f verifyFlags) error {
	var progress verify.Progress
	line := newVerifyProgress(a.stderr, &progress)
	rep, verr := verify.Verify(ctx, dir, verify.Options{TempDir: f.tempDir, Progress: &progress})
	line.Close()
	var failed *verify.FailedError
	verdict := verr == nil || errors.As(verr, &failed)
	if !verdict && !errors.Is(verr, verify.ErrNotVerified) {
		return verr
	}
	if verdict && !f.noWrite && !errors.Is(verr, verify.ErrNotASet) {
		if err := verify.WriteRecord(dir, verify.NewRecord(rep, toolVersion())); err != nil {
			fmt.Fprintf(a.stderr, "certadm: warning: the outcome was not recorded in the set: %v (use --no-write on read-only media)\n", err)
		}
	}
	if f.json {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		a.printf("%s\n", b)
	} else if err := rep.WriteText(a.stdout); err != nil {
		return err
	}
	return verr
}

// toolVersion names this program and its version for the verification
// record: the module version it was built as, and the VCS revision when the
// build recorded one.
func toolVersion() string {
	v := "(devel)"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "certadm " + v
	}
	if bi.Main.Version != "" {
		v = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return "certadm " + v
}

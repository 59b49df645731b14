package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/internal/cmdline"
	"github.com/certsrv/certsrv/internal/datadir"
)

// version is reported by Ping; set with -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes.
const (
	exitOK    = cmdline.ExitOK
	exitError = cmdline.ExitError
	exitUsage = cmdline.ExitUsage
)

// app is what every subcommand shares: the output streams and the global
// flags.
type app struct {
	stdout, stderr io.Writer
	// dataPath is --data; "" means datadir.DefaultDir.
	dataPath string
	// logLevel is --log-level.
	logLevel string
}

// usagef returns a usage error (exit status 2; cmdline.Usagef).
func usagef(format string, args ...any) error { return cmdline.Usagef(format, args...) }

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %s, got %d", cmd.CommandPath(), count(n, "argument", "arguments"), len(args))
		}
		return nil
	}
}

// noArgs is cobra.NoArgs with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) != 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// newRootCmd builds the command tree.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "certsrv",
		Short:         "certsrv certificate authority daemon",
		Long:          "certsrv runs a certificate authority whose database is backed up and restored while it keeps issuing.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for certsrv", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(a.stderr)
			cmd.Help()
			return usagef("no command given")
		},
		// Every command checks --log-level, whether or not it logs.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			_, err := a.logger()
			return err
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.PersistentFlags().StringVar(&a.dataPath, "data", "", "data directory (default ./"+datadir.DefaultDir+")")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdline.UsageError{Err: err} })
	for _, mk := range commands {
		root.AddCommand(mk(a))
	}
	return root
}

// run executes the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(context.Background())
	if err == nil {
		return exitOK
	}
	if cmdline.IsUsage(err) {
		// The help of the command whose line was wrong: "certsrv restore
		// --help" for a bad restore flag.
		cmdline.ReportUsage(stderr, "certsrv", cmd, err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "certsrv: %v\n", err)
	return exitError
}

// dir returns the data directory named by --data.
func (a *app) dir() (datadir.Dir, error) {
	return datadir.New(a.dataPath)
}

// logger returns a text logger on stderr at the --log-level level.
func (a *app) logger() (*slog.Logger, error) { return a.loggerTo(a.stderr) }

// loggerTo returns a text logger on w at the --log-level level.
func (a *app) loggerTo(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", a.logLevel)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), nil
}

// lock takes dir's process lock, with an error that says who holds it.
func lock(dir datadir.Dir) (*datadir.Lock, error) {
	l, err := dir.Acquire()
	if errors.Is(err, datadir.ErrLocked) {
		holder := ""
		if b, rerr := os.ReadFile(dir.LockPath()); rerr == nil && len(bytes.TrimSpace(b)) > 0 {
			holder = fmt.Sprintf(" (process %s holds %s)", strings.TrimSpace(string(b)), dir.LockPath())
		}
		return nil, fmt.Errorf("data directory %s is in use by another certsrv process%s: %w", dir.Root, holder, err)
	}
	return l, err
}

// count writes n and the noun that goes with it: one (for 1) or many.
func count[N ~int | ~int64 | ~uint64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// readSecret reads a passphrase or password file: its content without a
// final line break. An empty name gives nil; an empty file is an error.
func readSecret(name, what string) ([]byte, error) {
	if name == "" {
		return nil, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("%s file %s is empty", what, name)
	}
	return b, nil
}

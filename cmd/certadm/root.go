package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/cmdline"
)

// Exit statuses.
const (
	exitOK    = cmdline.ExitOK
	exitError = cmdline.ExitError
	exitUsage = cmdline.ExitUsage
)

// app holds the global flags and the output streams every subcommand
// shares.
type app struct {
	server  string
	creds   string
	timeout time.Duration

	stdout io.Writer
	stderr io.Writer

	// ran is set when a subcommand's own code starts; an error before that
	// came from parsing the command line.
	ran bool
}

// usageError is a command-line mistake: exit status 2.
type usageError = cmdline.UsageError

// usagef returns a usage error (cmdline.Usagef).
func usagef(format string, args ...any) error { return cmdline.Usagef(format, args...) }

// run executes the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if !a.ran || cmdline.IsUsage(err) {
		cmdline.ReportUsage(stderr, "certadm", cmd, err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "certadm: %v (HRESULT 0x%08X)\n", err, certadm.HRESULT(err))
	return exitError
}

// newRootCmd builds the command tree: the global flags and every
// constructor in commands.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "certadm",
		Short: "Administer a certsrv certificate authority",
		Long: `certadm administers a certsrv certificate authority over its admin API.

The server address comes from --server, else CERTADM_SERVER, else the
"server" file in the credentials directory, else 127.0.0.1:8443. The
credentials directory (client.crt, client.key, trust.crt) comes from
--creds, else CERTADM_CREDS, else ./certsrv-data/admin.

Exit status: 0 success, 1 an operation failed, 2 the command line was wrong.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("a command is required")
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usagef("%v", err) })
	f := root.PersistentFlags()
	f.StringVar(&a.server, "server", "", "server address host:port (default: $CERTADM_SERVER, the credentials' server file, 127.0.0.1:8443)")
	f.StringVar(&a.creds, "creds", "", "credentials directory (default: $CERTADM_CREDS, ./certsrv-data/admin)")
	f.DurationVar(&a.timeout, "timeout", 0, "give up after this long, e.g. 30s (0: no limit)")
	for _, newCmd := range commands {
		root.AddCommand(newCmd(a))
	}
	return root
}

// group makes a command that only holds subcommands; run on its own it is
// a usage error.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return usagef("%s needs a subcommand", cmd.CommandPath())
		},
	}
	c.AddCommand(subs...)
	return c
}

// action wraps a subcommand's body: it marks the command line as parsed,
// applies --timeout to the context and passes the arguments.
func (a *app) action(fn func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		ctx := cmd.Context()
		if a.timeout < 0 {
			return usagef("--timeout must not be negative")
		}
		if a.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, a.timeout)
			defer cancel()
		}
		return fn(ctx, args)
	}
}

// options returns the library options the global flags select. The
// environment fallbacks are the library's.
func (a *app) options() []certadm.Option {
	var opts []certadm.Option
	if a.creds != "" {
		opts = append(opts, certadm.WithCredentials(a.creds))
	}
	return opts
}

// dial connects with the global flags.
func (a *app) dial(ctx context.Context) (*certadm.Client, error) {
	return certadm.Dial(ctx, a.server, a.options()...)
}

// withClient dials, runs fn and closes the connection.
func (a *app) withClient(ctx context.Context, fn func(*certadm.Client) error) error {
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

// printf writes to standard output.
func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.stdout, format, args...)
}

// parseRequestID reads a request id argument: a positive decimal integer.
func parseRequestID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("request id %q: want a positive integer", s)
	}
	return id, nil
}

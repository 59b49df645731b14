// Package cmdline holds what the certsrv and certadm command lines share:
// their exit statuses and the usage error, a command-line mistake that
// exits with status 2 and points at the help of the command that was
// wrong.
package cmdline

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit statuses of both commands.
const (
	ExitOK    = 0 // success
	ExitError = 1 // an operation failed
	ExitUsage = 2 // the command line was wrong
)

// UsageError is a mistake in the command line.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the mistake's cause.
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message; %w wraps.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is or wraps a *UsageError.
func IsUsage(err error) bool {
	var ue *UsageError
	return errors.As(err, &ue)
}

// ReportUsage writes a usage error the way both commands do: "<prog>:
// <err>", then "Run '<command path> --help' for usage." naming cmd, the
// command whose line was wrong (prog when cmd is nil).
func ReportUsage(w io.Writer, prog string, cmd *cobra.Command, err error) {
	name := prog
	if cmd != nil {
		name = cmd.CommandPath()
	}
	fmt.Fprintf(w, "%s: %v\nRun '%s --help' for usage.\n", prog, err, name)
}

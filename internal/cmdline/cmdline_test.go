package cmdline

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/spf13/cobra"
)

func TestUsageErrors(t *testing.T) {
	cause := errors.New("bad flag")
	err := fmt.Errorf("restore: %w", Usagef("--until: %w", cause))
	if !IsUsage(err) || !errors.Is(err, cause) || IsUsage(cause) {
		t.Fatalf("IsUsage/Is on %v", err)
	}
	root := &cobra.Command{Use: "certsrv"}
	sub := &cobra.Command{Use: "restore"}
	root.AddCommand(sub)
	var b bytes.Buffer
	ReportUsage(&b, "certsrv", sub, err)
	if want := "certsrv: restore: --until: bad flag\nRun 'certsrv restore --help' for usage.\n"; b.String() != want {
		t.Errorf("ReportUsage wrote %q, want %q", b.String(), want)
	}
	b.Reset()
	ReportUsage(&b, "certadm", nil, err)
	if want := "certadm: restore: --until: bad flag\nRun 'certadm --help' for usage.\n"; b.String() != want {
		t.Errorf("ReportUsage without a command wrote %q, want %q", b.String(), want)
	}
}

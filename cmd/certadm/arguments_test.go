package main

import (
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/clitest"
)

// TestMalformedArgumentsAreUsageErrors: an argument the CLI can tell is
// malformed with the server's own parsers (a serial, a revocation reason, a
// role) is a usage error, exit status 2, found before any connection (no
// credentials exist here), naming the argument and what is accepted.
func TestMalformedArgumentsAreUsageErrors(t *testing.T) {
	work := isolate(t)
	cases := []struct {
		args []string
		want []string // in standard error
	}{
		{[]string{"revoke", "zz"}, []string{`SERIAL "zz": 'z' is not a hex digit`, "want the serial number in hex", "Run 'certadm revoke --help'"}},
		{[]string{"revoke", "00"}, []string{`SERIAL "00": zero`}},
		{[]string{"revoke", "0A:1B", "--reason", "bogus"}, []string{`--reason "bogus"`, "keyCompromise (1)", "aACompromise (10)"}},
		{[]string{"revoke", "0A:1B", "--reason", "7"}, []string{`--reason "7"`, "certificateHold (6)"}},
		{[]string{"revoke", "0A:1B", "--reason", ""}, []string{"--reason is empty", "leave --reason out"}},
		{[]string{"revoke", "0A:1B", "--reason", "removeFromCRL"}, []string{`--reason "removeFromCRL"`, "privilegeWithdrawn (9)"}},
		{[]string{"unrevoke", "xyz"}, []string{`SERIAL "xyz"`, "Run 'certadm unrevoke --help'"}},
		{[]string{"role", "grant", "x", "Wizard", "--out", work + "/x"}, []string{`ROLE "Wizard": unknown role`, "Administrator, Officer, Auditor, Operator, Enrollee, Reader", "Run 'certadm role grant --help'"}},
		{[]string{"role", "grant", "x", "Officer", "wizard", "--out", work + "/x"}, []string{`ROLE "wizard"`}},
		{[]string{"role", "grant", " padded", "Officer", "--out", work + "/x"}, []string{`NAME " padded"`, "printable ASCII"}},
	}
	for _, c := range cases {
		code, out, errOut := cli(t, c.args...)
		if code != exitUsage || out != "" || strings.Contains(errOut, "HRESULT") {
			t.Errorf("certadm %q: exit %d, stdout %q, stderr %q; want a usage error", c.args, code, out, errOut)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("certadm %q: stderr %q lacks %q", c.args, errOut, w)
			}
		}
	}
	// Reasons by name in any case and by number still pass the check (and
	// reach the connection, which fails here for want of credentials).
	for _, r := range []string{"keycompromise", "6", "AACOMPROMISE"} {
		if code, _, errOut := cli(t, "revoke", "0A:1B", "--reason", r); code != exitError || !strings.Contains(errOut, "HRESULT") {
			t.Errorf("--reason %s: exit %d %s", r, code, errOut)
		}
	}
}

// TestUsageHintNamesTheSubcommand: every usage error, of every command,
// ends with the help of the command whose line was wrong.
func TestUsageHintNamesTheSubcommand(t *testing.T) {
	isolate(t)
	paths := clitest.CommandPaths(newRootCmd(&app{}))
	if len(paths) < 20 {
		t.Fatalf("only %d commands found", len(paths))
	}
	for _, p := range paths {
		code, _, errOut := cli(t, append(append([]string{}, p...), "--no-such-flag")...)
		want := "Run '" + strings.Join(append([]string{"certadm"}, p...), " ") + " --help' for usage.\n"
		if code != exitUsage || !strings.HasSuffix(errOut, want) {
			t.Errorf("certadm %q --no-such-flag: exit %d, stderr %q; want it to end with %q", p, code, errOut, want)
		}
	}
	// Errors found by the command's own code, not by the flag parser.
	for _, c := range []struct{ args []string }{
		{[]string{"view", "--format", "xml"}},
		{[]string{"backup", "dir", "--max-rate", "10kB"}},
		{[]string{"key", "backup", "dir"}},
		{[]string{"role", "grant", "alice", "Officer"}},
		{[]string{"role", "bogus"}},
	} {
		path := []string{"certadm"}
		for _, a := range c.args {
			if strings.HasPrefix(a, "-") || a == "dir" || a == "alice" || a == "bogus" {
				break
			}
			path = append(path, a)
		}
		want := "Run '" + strings.Join(path, " ") + " --help' for usage.\n"
		if code, _, errOut := cli(t, c.args...); code != exitUsage || !strings.HasSuffix(errOut, want) {
			t.Errorf("certadm %q: exit %d, stderr %q; want it to end with %q", c.args, code, errOut, want)
		}
	}
}

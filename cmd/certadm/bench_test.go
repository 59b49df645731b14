package main

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestConnectionCounts(t *testing.T) {
	for _, tc := range []struct {
		flag string
		c    int
		want []int
	}{
		{"shared", 64, []int{1}},
		{"per-worker", 64, []int{64}},
		{"both", 8, []int{1, 8}},
		{"4", 64, []int{4}},
		{"100", 8, []int{8}},
	} {
		got, err := connectionCounts(tc.flag, tc.c)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("connectionCounts(%q, %d) = %v, %v; want %v", tc.flag, tc.c, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0", "-2", "many", "1.5"} {
		var u *usageError
		if got, err := connectionCounts(bad, 8); !errors.As(err, &u) {
			t.Errorf("connectionCounts(%q) = %v, %v; want a usage error", bad, got, err)
		}
	}
}

// TestBenchIssueDefaultAndCount runs bench issue with the default (one
// shared connection) and with a number of connections, and checks the
// figures it prints, the client CPU line included.
func TestBenchIssueDefaultAndCount(t *testing.T) {
	srv := startServer(t)
	isolate(t)
	for _, tc := range []struct {
		args []string
		mode string
	}{
		{nil, "12 requests, 4 workers, one shared connection: 12 issued"},
		{[]string{"--connections", "2"}, "12 requests, 4 workers, 2 connections: 12 issued"},
	} {
		args := append([]string{"--server", srv.Addr, "--creds", srv.CredsDir, "bench", "issue", "-n", "12", "-c", "4"}, tc.args...)
		out := mustCLI(t, args...)
		if !strings.Contains(out, tc.mode) || !strings.Contains(out, "errors: 0  pending: 0") {
			t.Errorf("bench %v output:\n%s", tc.args, out)
		}
		if !regexp.MustCompile(`client CPU: [0-9.]+(µs|ms|s) per request`).MatchString(out) {
			t.Errorf("bench %v: no client CPU line:\n%s", tc.args, out)
		}
	}
}

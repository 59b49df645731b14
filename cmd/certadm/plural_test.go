package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// pluralOfOne finds a count of 1 followed by a plural noun in the output
// of certadm.
var pluralOfOne = regexp.MustCompile(`(^|[^0-9.])1 (requests|workers|entries|files|principals|CRLs|certificates|issued certificates|recorded CRLs|recorded backups|log records|backups|problems)\b`)

// TestCountsOfOneAreSingular: a count of one takes the singular in what
// certadm prints: crl, backup, verify, bench.
func TestCountsOfOneAreSingular(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	out := mustCLI(t, append(g, "submit", writeCSR(t, work, "one.test"))...)
	serial := serialLine.FindStringSubmatch(out)[1]
	mustCLI(t, append(g, "revoke", serial, "--reason", "keyCompromise")...)
	outputs := []string{mustCLI(t, append(g, "crl")...)}
	if !strings.Contains(outputs[0], " with 1 entry\n") {
		t.Errorf("crl: %q", outputs[0])
	}
	set := filepath.Join(work, "set")
	outputs = append(outputs, mustCLI(t, append(g, "backup", set)...))
	ver := mustCLI(t, "verify", set, "--no-write")
	for _, want := range []string{
		"1 request: 0 issued, 1 revoked",
		"1 principal, 0 recorded backups",
		"1 issued certificate verifies against the CA certificate and matches its database record",
		"lists exactly the 1 revoked, unexpired certificate known",
		"1 certificate checked",
	} {
		if !strings.Contains(ver, want) {
			t.Errorf("verify lacks %q:\n%s", want, ver)
		}
	}
	outputs = append(outputs, ver)
	mustCLI(t, append(g, "submit", writeCSR(t, work, "two.test"))...)
	inc := mustCLI(t, append(g, "backup", set, "--incremental")...)
	if !strings.Contains(inc, ": 1 file, ") {
		t.Errorf("incremental backup of one generation: %q", inc)
	}
	outputs = append(outputs, inc)
	ver = mustCLI(t, "verify", set)
	if !strings.Contains(ver, "1 principal, 1 recorded backup;") {
		t.Errorf("verify of the set with an incremental backup:\n%s", ver)
	}
	outputs = append(outputs, ver)
	bench := mustCLI(t, append(g, "bench", "issue", "-n", "1", "-c", "1")...)
	if !strings.Contains(bench, "1 request, 1 worker, one shared connection: 1 issued") {
		t.Errorf("bench: %q", bench)
	}
	outputs = append(outputs, bench)
	for _, o := range outputs {
		if m := pluralOfOne.FindString(o); m != "" {
			t.Errorf("%q in:\n%s", m, o)
		}
	}
}

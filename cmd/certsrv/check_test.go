package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/clitest"
)

// TestCheck runs certsrv check on a healthy data directory, then on one
// with a flipped byte in a log generation, and on one whose checkpoint was
// damaged: each damage is reported by name and the exit status is 1.
func TestCheck(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := runCertsrv(t, "init", "--data", data); code != 0 {
		t.Fatalf("init: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := runCertsrv(t, "check", "--data", data)
	if code != 0 || !strings.Contains(stdout, "ok: no problems found") {
		t.Fatalf("check of a healthy directory: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// While a server holds the lock, check refuses.
	d := startServe(t, "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	code, _, stderr = runCertsrv(t, "check", "--data", data)
	if code != 1 || !strings.Contains(stderr, "stop the CA") {
		t.Fatalf("check while serving: exit %d\n%s", code, stderr)
	}
	if code := d.Stop(t); code != 0 {
		t.Fatalf("serve exit %d", code)
	}

	logs, _ := filepath.Glob(filepath.Join(data, "log", "ca*.log"))
	if len(logs) == 0 {
		t.Fatal("no log generations")
	}
	sort.Strings(logs)
	victim := logs[0]
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 100 {
		t.Fatalf("log %s too short to damage: %d bytes", victim, len(b))
	}
	orig := append([]byte(nil), b...)
	b[len(b)/2+40] ^= 0xFF
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCertsrv(t, "check", "--data", data)
	if code != 1 || !strings.Contains(stdout+stderr, filepath.Base(victim)) {
		t.Fatalf("check with a damaged log: exit %d, want 1 and a report naming %s\n%s\n%s", code, filepath.Base(victim), stdout, stderr)
	}
	if err := os.WriteFile(victim, orig, 0o600); err != nil {
		t.Fatal(err)
	}

	chk := filepath.Join(data, "sys", "ca.chk")
	c, err := os.ReadFile(chk)
	if err != nil {
		t.Fatal(err)
	}
	c[len(c)/2] ^= 0xFF
	if err := os.WriteFile(chk, c, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCertsrv(t, "check", "--data", data)
	if code != 1 || !strings.Contains(stdout+stderr, "checkpoint") {
		t.Fatalf("check with a damaged checkpoint: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestCheckOnATerminal runs certsrv check with standard error on a
// terminal: a status line says what is checked while it runs and is erased
// before the report, which goes to standard output as in a script.
func TestCheckOnATerminal(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := runCertsrv(t, "init", "--data", data); code != 0 {
		t.Fatalf("init: exit %d\n%s", code, stderr)
	}
	term := clitest.FakeTerminal(t, &terminalOutput, 200)
	var stdout bytes.Buffer
	if code := run([]string{"check", "--data", data}, &stdout, term); code != 0 {
		t.Fatalf("check: exit %d\n%s%s", code, stdout.String(), term.String())
	}
	shown := term.String()
	if !strings.HasPrefix(shown, "\rchecking the database, the checkpoint and every log generation  0s\x1b[K") || !strings.HasSuffix(shown, "\r\x1b[K") {
		t.Errorf("terminal: %q", shown)
	}
	if !strings.Contains(stdout.String(), "ok: no problems found") || strings.Contains(stdout.String(), "checking") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

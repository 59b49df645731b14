package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/certsrv/certsrv/internal/clitest"
)

var (
	certadmOnce sync.Once
	certadmPath string
	certadmErr  error
)

// certadmBinary builds certadm next to the certsrv binary, once.
func certadmBinary(t *testing.T) string {
	t.Helper()
	certadmOnce.Do(func() {
		certadmPath = filepath.Join(filepath.Dir(binary), "certadm")
		out, err := exec.Command("go", "build", "-o", certadmPath, "../certadm").CombinedOutput()
		if err != nil {
			certadmErr = err
			t.Logf("go build certadm: %s", out)
		}
	})
	if certadmErr != nil {
		t.Fatalf("go build certadm: %v", certadmErr)
	}
	return certadmPath
}

// TestRestoreNoCatchUpSaysSo: a restore with --no-catchup --recover-now over
// a CA whose live log goes on past the backup says that the live log was
// not replayed because it was asked, and counts in the singular what there
// is one of.
func TestRestoreNoCatchUpSaysSo(t *testing.T) {
	data, set := backedUpCA(t)
	code, stdout, stderr := runCertsrv(t, "restore", set, "--data", data, "--force", "--no-catchup", "--recover-now")
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"Verified backup set " + set + ": 1 backup, ",
		"Live log not replayed: --no-catchup\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("restore output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, " 1 backups") || strings.Contains(stdout, " 1 records") {
		t.Errorf("a plural after 1:\n%s", stdout)
	}
}

// backedUpCA makes a CA with the real binaries, takes a full backup of it
// with certadm while it serves, stops it, and returns its data directory
// and the set.
func backedUpCA(t *testing.T) (data, set string) {
	t.Helper()
	tmp := t.TempDir()
	data = filepath.Join(tmp, "data")
	if code, _, stderr := runCertsrv(t, "init", "--data", data); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	d := startServe(t, "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	set = filepath.Join(tmp, "set")
	cmd := exec.Command(certadmBinary(t), "--server", d.Admin, "--creds", filepath.Join(data, "admin"), "backup", set)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("certadm backup: %v\n%s", err, out)
	}
	if code := d.Stop(t); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	return data, set
}

// TestRestoreOnATerminal runs certsrv restore --recover-now with standard
// error on a terminal: the report on standard output is unchanged, the
// status line's frames say what the restore does (the recovery's phase
// included), the log messages are written above it, and the line is
// erased at the end.
func TestRestoreOnATerminal(t *testing.T) {
	data, set := backedUpCA(t)
	term := clitest.FakeTerminal(t, &terminalOutput, 200)
	var stdout bytes.Buffer
	if code := run([]string{"restore", set, "--data", data, "--force", "--recover-now"}, &stdout, term); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout.String(), term.String())
	}
	if !strings.Contains(stdout.String(), "Verified backup set "+set) || strings.Contains(stdout.String(), "restoring") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	shown := term.String()
	if !strings.HasSuffix(shown, "\r\x1b[K") {
		t.Fatalf("the status line was not erased at the end: %q", shown)
	}
	frames, logs := 0, 0
	for _, f := range strings.Split(shown, "\r") {
		f = strings.TrimSuffix(f, "\x1b[K")
		switch {
		case f == "":
		case strings.HasPrefix(f, "restoring"), strings.HasPrefix(f, "recovering"):
			frames++
		case strings.Contains(f, "level=INFO"):
			logs++ // a log message, written after the line was erased
		default:
			t.Errorf("frame %q", f)
		}
	}
	if frames == 0 || logs == 0 || !strings.Contains(shown, "recovering: ") {
		t.Errorf("%d frames, %d log messages:\n%q", frames, logs, shown)
	}
}

// TestUsageHintNamesTheSubcommand: a usage error of any command ends with
// the help of that command ("certsrv restore --help" for restore).
func TestUsageHintNamesTheSubcommand(t *testing.T) {
	paths := clitest.CommandPaths(newRootCmd(&app{}))
	if len(paths) < 8 {
		t.Fatalf("only %d commands found", len(paths))
	}
	check := func(args []string, path []string) {
		t.Helper()
		var out, errOut strings.Builder
		code := run(args, &out, &errOut)
		want := "Run '" + strings.Join(append([]string{"certsrv"}, path...), " ") + " --help' for usage.\n"
		if code != exitUsage || !strings.HasSuffix(errOut.String(), want) {
			t.Errorf("certsrv %q: exit %d, stderr %q; want it to end with %q", args, code, errOut.String(), want)
		}
	}
	for _, p := range paths {
		check(append(append([]string{}, p...), "--no-such-flag"), p)
	}
	dir := t.TempDir()
	check([]string{"restore", "--data", dir}, []string{"restore"})
	check([]string{"restore", dir, "--data", dir, "--until", "soon"}, []string{"restore"})
	check([]string{"restore", "a", "b"}, []string{"restore"})
	check([]string{"key"}, []string{"key"})
	check([]string{"key", "restore", "file.p12", "--data", dir}, []string{"key", "restore"})
	check([]string{"init", "--key", "rsa-1024", "--data", dir}, []string{"init"})
	check([]string{"bogus"}, nil)
}

// TestRecoverOnATerminal registers a restore, then runs certsrv recover
// with standard error on a terminal: its status line names the recovery's
// phases and is erased before the report.
func TestRecoverOnATerminal(t *testing.T) {
	data, set := backedUpCA(t)
	if code, stdout, stderr := runCertsrv(t, "restore", set, "--data", data, "--force"); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	term := clitest.FakeTerminal(t, &terminalOutput, 200)
	var stdout bytes.Buffer
	if code := run([]string{"recover", "--data", data}, &stdout, term); code != 0 {
		t.Fatalf("recover: exit %d\n%s%s", code, stdout.String(), term.String())
	}
	shown := term.String()
	if !strings.Contains(shown, "\rrecovering: ") || !strings.HasSuffix(shown, "\r\x1b[K") {
		t.Errorf("terminal: %q", shown)
	}
	if !strings.Contains(stdout.String(), "Recovered to LSN ") || strings.Contains(stdout.String(), "recovering") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

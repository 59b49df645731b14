package main

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// valgrindExit is the exit status valgrind is told to use when it finds an
// error, so that it cannot be mistaken for the program's own.
const valgrindExit = 99

// valgrind returns the path of valgrind, failing the test with what to
// install when it is missing.
func valgrind(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("valgrind")
	if err != nil {
		t.Fatalf("valgrind is required for the leak tests (Debian package valgrind): %v", err)
	}
	return p
}

// valgrindArgs are the options of every run: full leak checking, and only
// definitely lost blocks count as errors. The Go runtime keeps its memory
// reachable until exit (its heap, its threads' stacks), which valgrind
// reports as "still reachable" or "possibly lost"; a list the caller did not
// free is unreachable from everywhere, which valgrind reports as
// "definitely lost".
func valgrindArgs(t *testing.T) []string {
	return []string{
		"--leak-check=full",
		"--errors-for-leak-kinds=definite",
		"--show-leak-kinds=definite",
		fmt.Sprintf("--error-exitcode=%d", valgrindExit),
		"--suppressions=" + filepath.Join(repoRoot(t), "capi", "test", "valgrind.supp"),
	}
}

// valgrindEnv is added to the environment of every run under valgrind.
// GODEBUG=asyncpreemptoff=1 turns off the Go runtime's signal-based
// preemption, whose handler saves registers below a goroutine's stack
// pointer, which memcheck reports as invalid reads and writes.
var valgrindEnv = []string{"GODEBUG=asyncpreemptoff=1"}

var definitelyLost = regexp.MustCompile(`definitely lost: ([0-9,]+) bytes in ([0-9,]+) blocks`)

// lost returns the bytes and blocks valgrind's summary reports as
// definitely lost; no summary line means none (valgrind omits the summary
// when every block was freed).
func lost(t *testing.T, report string) (bytes, blocks int) {
	t.Helper()
	m := definitelyLost.FindStringSubmatch(report)
	if m == nil {
		return 0, 0
	}
	atoi := func(s string) int {
		n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
		if err != nil {
			t.Fatalf("valgrind summary %q: %v", m[0], err)
		}
		return n
	}
	return atoi(m[1]), atoi(m[2])
}

// TestScenarioUnderValgrind runs the whole backup scenario under valgrind:
// every list is freed, so nothing may be definitely lost, and memcheck may
// report no other error.
func TestScenarioUnderValgrind(t *testing.T) {
	vg := valgrind(t)
	b := build(t)
	lib := valgrindLib(t)
	srv := startServer(t)
	issueSome(t, srv, 3)
	out := t.TempDir() // an existing, empty directory is accepted
	args := append(valgrindArgs(t), b.scenario, srv.Addr, out)
	env := append([]string{"CERTADM_CREDS=" + srv.CredsDir, "CERTADM_LIBRARY=" + lib}, valgrindEnv...)
	stdout, stderr, err := run(t, t.TempDir(), env, 5*time.Minute, vg, args...)
	t.Logf("scenario under valgrind:\n%s\n%s", stdout, stderr)
	if err != nil {
		t.Fatalf("valgrind backup_scenario: %v", err)
	}
	if n, blocks := lost(t, stderr); n != 0 {
		t.Errorf("valgrind: %d bytes in %d blocks definitely lost", n, blocks)
	}
	if !regexp.MustCompile(`ERROR SUMMARY: 0 errors`).MatchString(stderr) {
		t.Error("valgrind reported errors")
	}
	checkScenarioSet(t, srv, out)
}

// TestValgrindSeesMissingFree proves the leak check can fail: the same
// program gets one list and frees it (no loss) or drops it, and then
// valgrind must report exactly that list's bytes as definitely lost and
// exit with its error status.
func TestValgrindSeesMissingFree(t *testing.T) {
	vg := valgrind(t)
	b := build(t)
	lib := valgrindLib(t)
	srv := startServer(t)
	env := append([]string{"CERTADM_CREDS=" + srv.CredsDir}, valgrindEnv...)
	listBytes := regexp.MustCompile(`leak-probe list bytes ([0-9]+)`)

	for _, mode := range []string{"free", "leak"} {
		args := append(valgrindArgs(t), b.test, "--leak-probe", lib, srv.Addr, mode)
		stdout, stderr, err := run(t, t.TempDir(), env, 5*time.Minute, vg, args...)
		m := listBytes.FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("%s: the probe did not get its list:\n%s\n%s", mode, stdout, stderr)
		}
		size, _ := strconv.Atoi(m[1])
		n, blocks := lost(t, stderr)
		var exit *exec.ExitError
		switch mode {
		case "free":
			if err != nil || n != 0 {
				t.Errorf("free: %v, %d bytes in %d blocks lost; want a clean run\n%s", err, n, blocks, stderr)
			}
		case "leak":
			if !errors.As(err, &exit) || exit.ExitCode() != valgrindExit {
				t.Errorf("leak: valgrind exited with %v, want status %d", err, valgrindExit)
			}
			if n != size || blocks != 1 {
				t.Errorf("leak: %d bytes in %d blocks definitely lost, want the list's %d bytes in 1 block\n%s", n, blocks, size, stderr)
			}
			// The lost block is the list: malloc called by the library's
			// allocation helper.
			if !regexp.MustCompile(`by 0x[0-9A-F]+: _cgo_[0-9a-f]+_Cfunc_certadm_malloc`).MatchString(stderr) {
				t.Errorf("leak: the lost block was not allocated by certadm_malloc:\n%s", stderr)
			}
		}
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backuptest"
	"github.com/certsrv/certsrv/internal/testserver"
)

// buildDir holds the library and the C programs, built once per test
// binary by TestMain's helpers and removed when the tests end.
var (
	buildDir  string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "capi-build")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot returns the module's root directory (the parent of capi/).
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// goTool returns the go command that runs this test.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// built is what build produces.
type built struct {
	lib      string // libcertadm.so
	scenario string // examples/c/backup_scenario, next to the library
	test     string // capi/test/test_certbcli
}

// build builds libcertadm.so with go build -buildmode=c-shared and the two
// C programs with gcc, once per test binary. gcc is required: the test
// fails, saying so, when it is missing.
func build(t testing.TB) built {
	t.Helper()
	b := built{
		lib:      filepath.Join(buildDir, "libcertadm.so"),
		scenario: filepath.Join(buildDir, "backup_scenario"),
		test:     filepath.Join(buildDir, "test_certbcli"),
	}
	buildOnce.Do(func() {
		root := repoRoot(t)
		if _, err := exec.LookPath("gcc"); err != nil {
			buildErr = fmt.Errorf("gcc is required to build the C programs: %v", err)
			return
		}
		steps := [][]string{
			{goTool(), "build", "-buildmode=c-shared", "-o", b.lib, "./capi"},
			{"gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-g",
				"-I" + filepath.Join(root, "include"), "-I" + filepath.Join(root, "examples", "c"),
				"-o", b.scenario, filepath.Join(root, "examples", "c", "backup_scenario.c"), "-ldl"},
			{"gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-pthread",
				"-I" + filepath.Join(root, "include"), "-I" + filepath.Join(root, "examples", "c"),
				"-o", b.test, filepath.Join(root, "capi", "test", "test_certbcli.c"),
				filepath.Join(root, "capi", "test", "test_restore.c"), "-ldl"},
		}
		for _, s := range steps {
			cmd := exec.Command(s[0], s[1:]...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return b
}

// valgrindLib builds libcertadm.so a second time with the valgrind build
// tag, once per test binary. With it the Go runtime tells valgrind about its
// heap and its goroutine stacks (Go 1.25 and later); without it memcheck
// reports thousands of invalid reads and writes of Go's own memory.
func valgrindLib(t testing.TB) string {
	t.Helper()
	lib := filepath.Join(buildDir, "valgrind", "libcertadm.so")
	valgrindOnce.Do(func() {
		cmd := exec.Command(goTool(), "build", "-tags=valgrind", "-buildmode=c-shared", "-o", lib, "./capi")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			valgrindErr = fmt.Errorf("go build -tags=valgrind: %v\n%s", err, out)
		}
	})
	if valgrindErr != nil {
		t.Fatal(valgrindErr)
	}
	return lib
}

var (
	valgrindOnce sync.Once
	valgrindErr  error
)

// startServer starts a real server with the Backup service wired as the
// daemon wires it, including ServerControl's shutdown.
func startServer(t testing.TB) *testserver.Server {
	t.Helper()
	return testserver.Start(t, backuptest.Service(t))
}

// deadAddress returns a 127.0.0.1 address where nothing listens.
func deadAddress(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// run runs a program with the environment env added, in dir, bounded by
// timeout, and returns its standard output, standard error and error.
func run(t testing.TB, dir string, env []string, timeout time.Duration, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// cleanEnv is the test's environment without the variables the library
// reads, so that each run says exactly what it uses.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "CERTADM_CREDS", "CERTADM_SERVER", "CERTADM_LIBRARY", "CERTBCLI_TRACE":
			continue
		}
		out = append(out, kv)
	}
	return out
}

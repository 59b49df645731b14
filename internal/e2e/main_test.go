package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// certadmBin is the certadm executable TestMain builds from ./cmd/certadm,
// so that backups run through exactly the code of `certadm backup`.
var certadmBin string

// binDir holds the executables built for the tests.
var binDir string

var (
	certsrvOnce  sync.Once
	certsrvBuilt string
	certsrvErr   error
)

// certsrvBinary builds ./cmd/certsrv on first use (only the benchmarks
// that run the server as `certsrv serve` need it) and returns its path.
func certsrvBinary(tb testing.TB) string {
	tb.Helper()
	certsrvOnce.Do(func() {
		p := filepath.Join(binDir, "certsrv")
		cmd := exec.Command(goTool(), "build", "-o", p, "./cmd/certsrv")
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			certsrvErr = fmt.Errorf("go build ./cmd/certsrv: %v\n%s", err, out)
			return
		}
		certsrvBuilt = p
	})
	if certsrvErr != nil {
		tb.Fatal(certsrvErr)
	}
	return certsrvBuilt
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certsrv-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	certadmBin = filepath.Join(dir, "certadm")
	cmd := exec.Command(goTool(), "build", "-o", certadmBin, "./cmd/certadm")
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/certadm: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if benchTemp != "" {
		os.RemoveAll(benchTemp)
	}
	os.Exit(code)
}

// goTool is the go command of the toolchain running the tests.
func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// moduleRoot is the module's root directory: tests run in the package
// directory, internal/e2e.
func moduleRoot() string {
	return filepath.Join("..", "..")
}

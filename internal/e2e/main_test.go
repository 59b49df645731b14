package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// certadmBin is the certadm executable TestMain builds from ./cmd/certadm,
// so that backups run through exactly the code of `certadm backup`.
var certadmBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certsrv-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
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

package sha256x2

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed assembly is what gen_amd64.go writes.
func TestGeneratedAssemblyUpToDate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "block_amd64.s")
	cmd := exec.Command("go", "run", "gen_amd64.go", "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_amd64.go: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("block_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("block_amd64.s differs from what gen_amd64.go writes: run go generate ./internal/sha256x2")
	}
}

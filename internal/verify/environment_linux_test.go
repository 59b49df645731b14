//go:build linux

package verify

import (
	"testing"

	"github.com/certsrv/certsrv/internal/mounttest"
)

// mountTmpfs mounts a tmpfs of size bytes (read-only when ro) on a new
// directory (mounttest.Tmpfs) and returns the directory.
func mountTmpfs(t *testing.T, size int64, ro bool) string {
	t.Helper()
	dir := t.TempDir()
	mounttest.Tmpfs(t, dir, size, ro)
	return dir
}

//go:build linux

// Package mounttest mounts small file systems for tests of what happens
// when a disk is full or read-only. Not used outside tests.
package mounttest

import (
	"fmt"
	"os"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes (read-only when readOnly) on dir,
// making dir if it is missing, and unmounts it when the test ends. It
// skips the test where the system does not allow the mount (not root, no
// CAP_SYS_ADMIN).
func Tmpfs(tb testing.TB, dir string, size int64, readOnly bool) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	var flags uintptr
	if readOnly {
		flags = syscall.MS_RDONLY
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		tb.Skipf("cannot mount a tmpfs for the test: %v", err)
	}
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
}

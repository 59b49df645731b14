//go:build linux

package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/mounttest"
)

// A backup medium that fills up: the backup fails naming the file and the
// cause with ERROR_DISK_FULL, leaves no manifest, and the server records
// nothing and deletes no log.
func TestBackupToAFullMedium(t *testing.T) {
	isolate(t)
	medium := t.TempDir()
	// Smaller than the test CA's database (about 200 KB).
	mounttest.Tmpfs(t, medium, 64<<10, false)
	srv := startServer(t)
	logs, err := filepath.Glob(filepath.Join(srv.Dir.LogDir(), "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(medium, "set")
	code, _, errOut := cli(t, "--server", srv.Addr, "--creds", srv.CredsDir, "backup", dir)
	if code != exitError || !strings.Contains(errOut, "no space left on device") || !strings.Contains(errOut, "DataBase/") ||
		!strings.HasSuffix(errOut, "(HRESULT 0x80070070)\n") {
		t.Fatalf("backup to a full medium: exit %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, backupset.ManifestFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("manifest after the failed backup: %v", err)
	}
	if parts, _ := filepath.Glob(filepath.Join(dir, "*", "*.part")); len(parts) != 0 {
		t.Errorf("partial files left: %v", parts)
	}
	after, err := filepath.Glob(filepath.Join(srv.Dir.LogDir(), "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(after) < len(logs) {
		t.Errorf("logs deleted by a failed backup: %d before, %d after", len(logs), len(after))
	}
	c := client(t, srv.Addr, srv.CredsDir)
	if _, err := c.BackupPrepare(context.Background(), certadm.BackupLogsOnly); !errors.Is(err, certadm.ErrFullBackupNotTaken) {
		t.Errorf("after the failed backup: %v, want no full backup recorded", err)
	}
}

//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/certsrv/certsrv/internal/mounttest"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// TestServeOnAFillingDisk runs the real server on its own small file
// system and fills it: Ping says that changes are refused, a submission
// fails with ERROR_DISK_FULL and records nothing, reads keep working; once
// space is freed, submissions succeed again with no restart.
func TestServeOnAFillingDisk(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is needed: %v", err)
	}
	disk := t.TempDir()
	mounttest.Tmpfs(t, disk, 32<<20, false)
	data := filepath.Join(disk, "ca")
	if code, _, stderr := runCertsrv(t, "init", "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	d := startServe(t, "--data", data)
	creds := filepath.Join(data, "admin")
	conn := dialServer(t, d.Admin, creds)
	admin := certsrvv1.NewAdminClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tmp := t.TempDir()
	submit := func(host string) error {
		_, err := admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: opensslCSR(t, tmp, host)})
		return err
	}
	if err := submit("before.example.test"); err != nil {
		t.Fatal(err)
	}
	if p := ping(t, d.Admin, creds); p.WritesRefused != "" {
		t.Fatalf("writes refused with space to spare: %s", p.WritesRefused)
	}

	// Leave less than the reserve (a twentieth of 32 MiB) free.
	var st syscall.Statfs_t
	if err := syscall.Statfs(disk, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(disk, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*int64(st.Bsize)-(512<<10)), 0o600); err != nil {
		t.Fatal(err)
	}
	err := submit("refused.example.test")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "below the reserve") {
		t.Fatalf("a submission on a full disk: %v, want ResourceExhausted (ERROR_DISK_FULL) naming the reserve", err)
	}
	if p := ping(t, d.Admin, creds); !strings.Contains(p.WritesRefused, "below the reserve") || p.State != certsrvv1.ServerState_SERVER_STATE_ONLINE {
		t.Errorf("Ping on a full disk: state %v, writes refused %q", p.State, p.WritesRefused)
	}
	list, err := admin.View(ctx, &certsrvv1.ViewRequest{})
	if err != nil {
		t.Fatalf("a read on a full disk: %v", err)
	}
	if len(list.GetRequests()) != 1 {
		t.Errorf("%d requests recorded, want the one before the disk filled", len(list.GetRequests()))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := submit("after.example.test")
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("a submission after space was freed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p := ping(t, d.Admin, creds); p.WritesRefused != "" {
		t.Errorf("writes still refused after space was freed: %s", p.WritesRefused)
	}
	if !strings.Contains(d.Stderr(), "disk nearly full") {
		t.Errorf("the server log does not say the disk was nearly full:\n%s", d.Stderr())
	}
}

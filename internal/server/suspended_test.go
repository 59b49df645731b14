package server_test

import (
	"testing"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/testserver"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// TestPlaceholderAnswersSuspended: the listener that stands in for the
// admin API during hard recovery reports SUSPENDED to Ping and refuses
// every other RPC of both services with CERTSRV_E_SERVER_SUSPENDED, over
// the data directory's TLS with client certificates.
func TestPlaceholderAnswersSuspended(t *testing.T) {
	s := testserver.Start(t)
	ph, err := server.StartPlaceholder(s.Dir, "Placeholder CA", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Stop()
	conn, err := testserver.Dial(ph.Addr(), s.CredsDir)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := clients{admin: certsrvv1.NewAdminClient(conn), backup: certsrvv1.NewBackupClient(conn)}
	ctx := ctxT(t)
	resp, err := c.admin.Ping(ctx, &certsrvv1.PingRequest{})
	if err != nil || resp.State != certsrvv1.ServerState_SERVER_STATE_SUSPENDED || resp.Principal != "admin" || resp.CaName != "Placeholder CA" {
		t.Fatalf("Ping = %+v, %v", resp, err)
	}
	n := 0
	for _, mc := range matrixCalls(t, 1, nil) {
		if mc.name == "Admin/Ping" {
			continue
		}
		n++
		err := mc.call(ctx, c)
		if e := apierr.FromStatus(err); err == nil || e.Code != apierr.ServerSuspended || e.Code.HRESULT != 0x80094006 {
			t.Errorf("%s on the placeholder: %v, want CERTSRV_E_SERVER_SUSPENDED", mc.name, err)
		}
	}
	if n < 20 {
		t.Fatalf("only %d RPCs checked", n)
	}
	if err := ph.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := c.admin.Ping(ctx, &certsrvv1.PingRequest{}); err == nil {
		t.Fatal("Ping answered after Stop")
	}
}

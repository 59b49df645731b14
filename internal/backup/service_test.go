package backup

import (
	"context"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// TestServiceServerControl: CSCONTROL_SHUTDOWN answers and then calls
// Shutdown; other codes are refused; without a Shutdown hook the call is
// not implemented; a Service needs a principal hook.
func TestServiceServerControl(t *testing.T) {
	db := newDB(t)
	if _, err := New(StoreEngine(db), Options{}); err == nil {
		t.Fatal("New without Options.Principal succeeded")
	}
	who := func(context.Context) (string, bool) { return op1, true }
	called := make(chan struct{})
	s, err := New(StoreEngine(db), Options{Principal: who, Shutdown: func() { close(called) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	_, err = s.ServerControl(ctx, &certsrvv1.ServerControlRequest{Control: 2})
	wantStatus(t, err, apierr.InvalidArg, "ServerControl(2)")
	select {
	case <-called:
		t.Fatal("ServerControl(2) shut the server down")
	default:
	}
	if _, err := s.ServerControl(ctx, &certsrvv1.ServerControlRequest{Control: ControlShutdown}); err != nil {
		t.Fatalf("ServerControl(1): %v", err)
	}
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("ServerControl(1) never called Shutdown")
	}

	s2, err := New(StoreEngine(db), Options{Principal: who})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	_, err = s2.ServerControl(ctx, &certsrvv1.ServerControlRequest{Control: ControlShutdown})
	wantStatus(t, err, apierr.NotImplemented, "ServerControl without a shutdown hook")

	nobody, err := New(StoreEngine(db), Options{Principal: func(context.Context) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	defer nobody.Close()
	_, err = nobody.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
	wantStatus(t, err, apierr.AccessDenied, "BackupPrepare without a principal")
}

// Package backuptest wires this project's Backup service into a test
// server (internal/testserver) as certsrv serve wires it. It is a package
// of its own because internal/backup's tests use testserver themselves.
package backuptest

import (
	"testing"

	"github.com/certsrv/certsrv/internal/backup"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/testserver"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// Service is the testserver option that registers backup.ForCA's service
// for the test server's CA, with server.PrincipalFrom naming the caller;
// edit may adjust the options first (Lease, Logger, DynamicFiles, ...).
// The server answers ServerControl itself and closes the service before
// the CA when it stops, as under certsrv serve. A failure ends the test.
func Service(t testing.TB, edit ...func(*backup.Options)) testserver.Option {
	return testserver.WithBackup(func(c *service.CA) certsrvv1.BackupServer {
		s, err := New(c, edit...)
		if err != nil {
			t.Fatalf("backup service: %v", err)
		}
		return s
	})
}

// New returns the Backup service for c as Service registers it, for a
// test that wraps it or serves it itself.
func New(c *service.CA, edit ...func(*backup.Options)) (*backup.Service, error) {
	opts := backup.Options{Principal: server.PrincipalFrom, ConnClosed: server.ConnClosed}
	for _, e := range edit {
		e(&opts)
	}
	return backup.ForCA(c, opts)
}

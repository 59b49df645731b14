package server

import (
	"context"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/apierr"
)

// ControlShutdown is CSCONTROL_SHUTDOWN, the one ServerControl code.
const ControlShutdown = 1

// backupService is the Backup service as registered: the backup
// implementation given in Options (or one that answers Unimplemented) with
// ServerControl answered by the server itself, since only the server can
// stop the server.
type backupService struct {
	certsrvv1.BackupServer
	s *Server
}

func newBackupService(s *Server, impl certsrvv1.BackupServer) *backupService {
	if impl == nil {
		impl = certsrvv1.UnimplementedBackupServer{}
	}
	return &backupService{BackupServer: impl, s: s}
}

// ServerControl implements CertSrvServerControl. CSCONTROL_SHUTDOWN
// answers and then stops the server gracefully (the stop waits for this
// RPC to finish); any other code is InvalidArg.
func (b *backupService) ServerControl(ctx context.Context, req *certsrvv1.ServerControlRequest) (*certsrvv1.ServerControlResponse, error) {
	if req.GetControl() != ControlShutdown {
		return nil, apierr.New(apierr.InvalidArg, "unknown server control code %d", req.GetControl())
	}
	principal := ""
	if c, ok := CallerFrom(ctx); ok {
		principal = c.Principal
	}
	b.s.logger.Info("shutdown requested through the API", "principal", principal)
	b.s.Shutdown()
	return &certsrvv1.ServerControlResponse{}, nil
}

// PrincipalFrom returns the authenticated principal of the RPC whose
// context ctx is. It has the shape a backup service's principal hook
// wants, so the wiring can pass it along as is.
func PrincipalFrom(ctx context.Context) (string, bool) {
	c, ok := CallerFrom(ctx)
	if !ok {
		return "", false
	}
	return c.Principal, true
}

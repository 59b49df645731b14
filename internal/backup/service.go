package backup

import (
	"context"
	"errors"
	"math"

	"github.com/certsrv/certsrv/internal/apierr"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
	"google.golang.org/grpc"
)

// ControlShutdown is certbcli.h's CSCONTROL_SHUTDOWN.
const ControlShutdown = 1

// Service is the gRPC Backup service (certsrvv1.BackupServer) over a
// Manager. The server's interceptor has already checked the caller's role;
// Service finds the caller's principal with Options.Principal and leaves
// every rule to the Manager. Every error it returns is a gRPC status made
// by apierr.Status.
type Service struct {
	certsrvv1.UnimplementedBackupServer
	m         *Manager
	principal func(context.Context) (string, bool)
	shutdown  func()
}

var _ certsrvv1.BackupServer = (*Service)(nil)

// New returns the Backup service over eng and starts its lease janitor.
// opts.Principal is required. Close stops it.
func New(eng Engine, opts Options) (*Service, error) {
	if opts.Principal == nil {
		return nil, errors.New("backup: Options.Principal is required")
	}
	m, err := NewManager(eng, opts)
	if err != nil {
		return nil, err
	}
	return &Service{m: m, principal: opts.Principal, shutdown: opts.Shutdown}, nil
}

// Manager returns the session manager the service runs on.
func (s *Service) Manager() *Manager { return s.m }

// Close aborts any session, releasing its snapshot, and stops the lease
// janitor (see Manager.Close).
func (s *Service) Close() error { return s.m.Close() }

// who returns the caller's principal, or "" when there is none (the
// Manager refuses "" with AccessDenied).
func (s *Service) who(ctx context.Context) string {
	p, ok := s.principal(ctx)
	if !ok {
		return ""
	}
	return p
}

func fileList(files []File) *certsrvv1.FileList {
	out := &certsrvv1.FileList{Files: make([]*certsrvv1.File, len(files))}
	for i, f := range files {
		out.Files[i] = &certsrvv1.File{Tag: f.Tag, Name: f.Name, Size: f.Size, Url: f.URL}
	}
	return out
}

func listResult(files []File, err error) (*certsrvv1.FileList, error) {
	if err != nil {
		return nil, apierr.Status(err)
	}
	return fileList(files), nil
}

// BackupPrepare implements certsrvv1.BackupServer.
func (s *Service) BackupPrepare(ctx context.Context, req *certsrvv1.BackupPrepareRequest) (*certsrvv1.BackupPrepareResponse, error) {
	id, err := s.m.Prepare(ctx, s.who(ctx), Type(req.GetType()))
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &certsrvv1.BackupPrepareResponse{SessionId: id, LeaseSeconds: int64(math.Ceil(s.m.Lease().Seconds()))}, nil
}

// GetDatabaseNames implements certsrvv1.BackupServer.
func (s *Service) GetDatabaseNames(ctx context.Context, req *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
	return listResult(s.m.DatabaseNames(ctx, s.who(ctx), req.GetSessionId()))
}

// GetBackupLogs implements certsrvv1.BackupServer.
func (s *Service) GetBackupLogs(ctx context.Context, req *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
	return listResult(s.m.BackupLogs(ctx, s.who(ctx), req.GetSessionId()))
}

// GetDynamicFiles implements certsrvv1.BackupServer.
func (s *Service) GetDynamicFiles(ctx context.Context, req *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
	return listResult(s.m.DynamicFiles(ctx, s.who(ctx), req.GetSessionId()))
}

// GetDatabaseLocations implements certsrvv1.BackupServer.
func (s *Service) GetDatabaseLocations(ctx context.Context, req *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
	return listResult(s.m.DatabaseLocations(ctx, s.who(ctx), req.GetSessionId()))
}

// OpenFile implements certsrvv1.BackupServer.
func (s *Service) OpenFile(ctx context.Context, req *certsrvv1.OpenFileRequest) (*certsrvv1.OpenFileResponse, error) {
	size, err := s.m.OpenFile(ctx, s.who(ctx), req.GetSessionId(), req.GetName())
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &certsrvv1.OpenFileResponse{Size: size}, nil
}

// ReadFile implements certsrvv1.BackupServer.
func (s *Service) ReadFile(req *certsrvv1.ReadFileRequest, stream grpc.ServerStreamingServer[certsrvv1.FileChunk]) error {
	ctx := stream.Context()
	err := s.m.Read(ctx, s.who(ctx), req.GetSessionId(), int(req.GetChunkSize()), func(off int64, p []byte) error {
		return stream.Send(&certsrvv1.FileChunk{Offset: off, Data: p})
	})
	return apierr.Status(err)
}

// ReadRaw is ReadFile for a transport other than gRPC (the admin port's
// HTTP/1.1 side): the caller, who must carry the same authorization as a
// ReadFile call, gets the open file's bytes through send. The error is an
// *apierr.Error or another error, not a gRPC status.
func (s *Service) ReadRaw(ctx context.Context, sessionID string, chunk int, send func(off int64, p []byte) error) error {
	return s.m.Read(ctx, s.who(ctx), sessionID, chunk, send)
}

// CloseFile implements certsrvv1.BackupServer.
func (s *Service) CloseFile(ctx context.Context, req *certsrvv1.CloseFileRequest) (*certsrvv1.CloseFileResponse, error) {
	if err := s.m.CloseFile(ctx, s.who(ctx), req.GetSessionId(), req.GetConsumed()); err != nil {
		return nil, apierr.Status(err)
	}
	return &certsrvv1.CloseFileResponse{}, nil
}

// TruncateLogs implements certsrvv1.BackupServer.
func (s *Service) TruncateLogs(ctx context.Context, req *certsrvv1.SessionRequest) (*certsrvv1.TruncateLogsResponse, error) {
	res, err := s.m.TruncateLogs(ctx, s.who(ctx), req.GetSessionId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	out := &certsrvv1.TruncateLogsResponse{Deleted: int32(len(res.Deleted)), Reason: res.Reason}
	if n := len(res.Deleted); n > 0 {
		out.FirstGeneration, out.LastGeneration = res.Deleted[0], res.Deleted[n-1]
	}
	return out, nil
}

// End implements certsrvv1.BackupServer.
func (s *Service) End(ctx context.Context, req *certsrvv1.EndRequest) (*certsrvv1.EndResponse, error) {
	res, err := s.m.End(ctx, s.who(ctx), req.GetSessionId(), req.GetAbort())
	if err != nil {
		return nil, apierr.Status(err)
	}
	out := &certsrvv1.EndResponse{Recorded: res.Recorded}
	if res.Recorded {
		r := res.Record
		out.FirstGeneration, out.LastGeneration = r.FirstGen, r.LastGen
		out.FirstLsn, out.LastLsn = r.FirstLSN, r.LastLSN
	}
	return out, nil
}

// ServerControl implements certsrvv1.BackupServer. CSCONTROL_SHUTDOWN (1)
// answers, then calls Options.Shutdown in its own goroutine (a graceful
// stop waits for this call to finish, so calling it inline would wait for
// itself). Any other value is InvalidArg.
func (s *Service) ServerControl(ctx context.Context, req *certsrvv1.ServerControlRequest) (*certsrvv1.ServerControlResponse, error) {
	if s.who(ctx) == "" {
		return nil, apierr.Status(apierr.New(apierr.AccessDenied, "%w", ErrNoPrincipal))
	}
	if req.GetControl() != ControlShutdown {
		return nil, apierr.Status(apierr.New(apierr.InvalidArg, "control %d is not CSCONTROL_SHUTDOWN (1)", req.GetControl()))
	}
	if s.shutdown == nil {
		return nil, apierr.Status(apierr.New(apierr.NotImplemented, "this server cannot be shut down over the API"))
	}
	go s.shutdown()
	return &certsrvv1.ServerControlResponse{}, nil
}

package wiretest

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/certsrv/certsrv/internal/apierr"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// SessionID is the id every BackupPrepare of the double answers.
const SessionID = "wiretest-session"

// FileScript says how the double serves one file.
type FileScript struct {
	// Size is what OpenFile announces.
	Size int64
	// Data is served in contiguous chunks of the size the client asks for,
	// when Chunks is nil.
	Data []byte
	// Chunks, when not nil, are sent exactly as given instead of Data.
	Chunks []*certsrvv1.FileChunk
	// Err, when not nil, ends the stream after the chunks.
	Err error
	// Hold, when not nil, keeps the stream open after the chunks until it
	// is closed or the client goes away.
	Hold <-chan struct{}
}

// Backup is the Backup double. Its lists answer the fields below; files
// are served from Files.
type Backup struct {
	certsrvv1.UnimplementedBackupServer
	recorder

	Files                               map[string]*FileScript
	Databases, Logs, Dynamic, Locations []*certsrvv1.File
	TruncateAnswer                      *certsrvv1.TruncateLogsResponse
	open                                string
}

// sessioned is a request that carries a session id.
type sessioned interface {
	proto.Message
	GetSessionId() string
}

func (b *Backup) check(method string, req sessioned) error {
	if err := b.record(method, req); err != nil {
		return err
	}
	if req.GetSessionId() != SessionID {
		return Fail(apierr.BackupSequence, "unknown session")
	}
	return nil
}

// BackupPrepare answers SessionID with a 60 s lease.
func (b *Backup) BackupPrepare(ctx context.Context, r *certsrvv1.BackupPrepareRequest) (*certsrvv1.BackupPrepareResponse, error) {
	if err := b.record("BackupPrepare", r); err != nil {
		return nil, err
	}
	return &certsrvv1.BackupPrepareResponse{SessionId: SessionID, LeaseSeconds: 60}, nil
}

func (b *Backup) list(method string, r *certsrvv1.SessionRequest, files []*certsrvv1.File) (*certsrvv1.FileList, error) {
	if err := b.check(method, r); err != nil {
		return nil, err
	}
	return &certsrvv1.FileList{Files: files}, nil
}

// GetDatabaseNames answers Databases.
func (b *Backup) GetDatabaseNames(ctx context.Context, r *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
	return b.list("GetDatabaseNames", r, b.Databases)
}

// GetBackupLogs answers Logs.
func (b *Backup) GetBackupLogs(ctx context.Context, r *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
	return b.list("GetBackupLogs", r, b.Logs)
}

// GetDynamicFiles answers Dynamic.
func (b *Backup) GetDynamicFiles(ctx context.Context, r *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
	return b.list("GetDynamicFiles", r, b.Dynamic)
}

// GetDatabaseLocations answers Locations.
func (b *Backup) GetDatabaseLocations(ctx context.Context, r *certsrvv1.SessionRequest) (*certsrvv1.FileList, error) {
	return b.list("GetDatabaseLocations", r, b.Locations)
}

// OpenFile opens a file from Files.
func (b *Backup) OpenFile(ctx context.Context, r *certsrvv1.OpenFileRequest) (*certsrvv1.OpenFileResponse, error) {
	if err := b.check("OpenFile", r); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.Files[r.GetName()]
	if !ok {
		return nil, Fail(apierr.NotFound, "not listed: "+r.GetName())
	}
	b.open = r.GetName()
	return &certsrvv1.OpenFileResponse{Size: f.Size}, nil
}

// ReadFile serves the open file per its script.
func (b *Backup) ReadFile(r *certsrvv1.ReadFileRequest, s certsrvv1.Backup_ReadFileServer) error {
	if err := b.check("ReadFile", r); err != nil {
		return err
	}
	b.mu.Lock()
	f := b.Files[b.open]
	b.mu.Unlock()
	if f == nil {
		return Fail(apierr.BackupSequence, "no open file")
	}
	chunks := f.Chunks
	if chunks == nil {
		n := int(r.GetChunkSize())
		for off := 0; off < len(f.Data); off += n {
			end := min(off+n, len(f.Data))
			chunks = append(chunks, &certsrvv1.FileChunk{Offset: int64(off), Data: f.Data[off:end]})
		}
	}
	for _, c := range chunks {
		if err := s.Send(c); err != nil {
			return err
		}
	}
	if f.Hold != nil {
		select {
		case <-f.Hold:
		case <-s.Context().Done():
			return s.Context().Err()
		}
	}
	return f.Err
}

// CloseFile closes the open file.
func (b *Backup) CloseFile(ctx context.Context, r *certsrvv1.CloseFileRequest) (*certsrvv1.CloseFileResponse, error) {
	if err := b.check("CloseFile", r); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.open = ""
	b.mu.Unlock()
	return &certsrvv1.CloseFileResponse{}, nil
}

// TruncateLogs answers TruncateAnswer, or nothing deleted.
func (b *Backup) TruncateLogs(ctx context.Context, r *certsrvv1.SessionRequest) (*certsrvv1.TruncateLogsResponse, error) {
	if err := b.check("TruncateLogs", r); err != nil {
		return nil, err
	}
	if b.TruncateAnswer != nil {
		return b.TruncateAnswer, nil
	}
	return &certsrvv1.TruncateLogsResponse{Reason: "nothing to delete"}, nil
}

// End records a normal end as a recorded backup of generations 3..5.
func (b *Backup) End(ctx context.Context, r *certsrvv1.EndRequest) (*certsrvv1.EndResponse, error) {
	if err := b.check("End", r); err != nil {
		return nil, err
	}
	if r.GetAbort() {
		return &certsrvv1.EndResponse{}, nil
	}
	return &certsrvv1.EndResponse{Recorded: true, FirstGeneration: 3, LastGeneration: 5, FirstLsn: 100, LastLsn: 250}, nil
}

// ServerControl accepts CSCONTROL_SHUTDOWN.
func (b *Backup) ServerControl(ctx context.Context, r *certsrvv1.ServerControlRequest) (*certsrvv1.ServerControlResponse, error) {
	if err := b.record("ServerControl", r); err != nil {
		return nil, err
	}
	return &certsrvv1.ServerControlResponse{}, nil
}

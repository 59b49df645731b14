package server_test

import (
	"context"
	"crypto/x509"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/backuptest"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/testserver"
)

// The principals of the role matrix: one per role holding only that role,
// one registered without any role, and one the CA does not know at all.
const (
	noRoles      = "none"
	unregistered = "stranger"
)

var roleNames = []string{"Administrator", "Officer", "Auditor", "Operator", "Enrollee", "Reader"}

// matrixCall is one RPC of the matrix: who may call it (SPEC §5, written
// out here independently of the server's table), what an allowed call
// answers (the zero Code for success), and the call itself.
type matrixCall struct {
	name    string
	allowed []string // role names; "*" = any authenticated principal, even without roles
	want    apierr.Code
	call    func(ctx context.Context, c clients) error
}

// streamErr drains a server stream and returns its first error.
func streamErr[T any](s interface{ Recv() (T, error) }, err error) error {
	if err != nil {
		return err
	}
	for {
		if _, err := s.Recv(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func matrixCalls(t *testing.T, enrolleeRequest int64, pubDER []byte) []matrixCall {
	csr, _ := newCSR(t, "matrix.example.test")
	return []matrixCall{
		{"Admin/Ping", []string{"*"}, apierr.Code{}, func(ctx context.Context, c clients) error {
			_, err := c.admin.Ping(ctx, &certsrvv1.PingRequest{})
			return err
		}},
		{"Admin/Submit", []string{"Enrollee"}, apierr.Code{}, func(ctx context.Context, c clients) error {
			_, err := c.admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr})
			return err
		}},
		{"Admin/GetRequest", []string{"Enrollee", "Officer", "Auditor", "Reader"}, apierr.Code{}, func(ctx context.Context, c clients) error {
			_, err := c.admin.GetRequest(ctx, &certsrvv1.GetRequestRequest{RequestId: enrolleeRequest})
			return err
		}},
		{"Admin/Approve", []string{"Officer"}, apierr.NoRequest, func(ctx context.Context, c clients) error {
			_, err := c.admin.Approve(ctx, &certsrvv1.ApproveRequest{RequestId: 987654})
			return err
		}},
		{"Admin/Deny", []string{"Officer"}, apierr.NoRequest, func(ctx context.Context, c clients) error {
			_, err := c.admin.Deny(ctx, &certsrvv1.DenyRequest{RequestId: 987654, Reason: "no"})
			return err
		}},
		{"Admin/Revoke", []string{"Officer"}, apierr.NotFound, func(ctx context.Context, c clients) error {
			_, err := c.admin.Revoke(ctx, &certsrvv1.RevokeRequest{Serial: "7F:01", Reason: "keyCompromise"})
			return err
		}},
		{"Admin/Unrevoke", []string{"Officer"}, apierr.NotFound, func(ctx context.Context, c clients) error {
			_, err := c.admin.Unrevoke(ctx, &certsrvv1.UnrevokeRequest{Serial: "7F01"})
			return err
		}},
		{"Admin/PublishCRL", []string{"Officer"}, apierr.Code{}, func(ctx context.Context, c clients) error {
			_, err := c.admin.PublishCRL(ctx, &certsrvv1.PublishCRLRequest{})
			return err
		}},
		{"Admin/View", []string{"Officer", "Auditor", "Reader"}, apierr.Code{}, func(ctx context.Context, c clients) error {
			_, err := c.admin.View(ctx, &certsrvv1.ViewRequest{Limit: 5})
			return err
		}},
		{"Admin/GetCACertificate", roleNames, apierr.Code{}, func(ctx context.Context, c clients) error {
			_, err := c.admin.GetCACertificate(ctx, &certsrvv1.GetCACertificateRequest{})
			return err
		}},
		{"Admin/GrantRole", []string{"Administrator"}, apierr.InvalidArg, func(ctx context.Context, c clients) error {
			_, err := c.admin.GrantRole(ctx, &certsrvv1.GrantRoleRequest{Principal: "matrix-new", Roles: []string{"NoSuchRole"}, PublicKey: pubDER})
			return err
		}},
		{"Admin/RevokeRole", []string{"Administrator"}, apierr.NotFound, func(ctx context.Context, c clients) error {
			_, err := c.admin.RevokeRole(ctx, &certsrvv1.RevokeRoleRequest{Principal: "nobody-at-all"})
			return err
		}},
		{"Admin/BackupKey", []string{"Operator"}, apierr.InvalidArg, func(ctx context.Context, c clients) error {
			_, err := c.admin.BackupKey(ctx, &certsrvv1.BackupKeyRequest{Password: "short"})
			return err
		}},
		{"Admin/ImportCertificate", []string{"Officer"}, apierr.BadRequest, func(ctx context.Context, c clients) error {
			_, err := c.admin.ImportCertificate(ctx, &certsrvv1.ImportCertificateRequest{Certificate: []byte("not a certificate")})
			return err
		}},

		// No backup service is registered: an allowed call reaches the
		// Unimplemented stub, a refused one never gets that far.
		{"Backup/BackupPrepare", []string{"Operator"}, apierr.NotImplemented, func(ctx context.Context, c clients) error {
			_, err := c.backup.BackupPrepare(ctx, &certsrvv1.BackupPrepareRequest{Type: certsrvv1.BackupType_BACKUP_TYPE_FULL})
			return err
		}},
		{"Backup/GetDatabaseNames", []string{"Operator"}, apierr.NotImplemented, func(ctx context.Context, c clients) error {
			_, err := c.backup.GetDatabaseNames(ctx, &certsrvv1.SessionRequest{SessionId: "x"})
			return err
		}},
		{"Backup/GetBackupLogs", []string{"Operator"}, apierr.NotImplemented, func(ctx context.Context, c clients) error {
			_, err := c.backup.GetBackupLogs(ctx, &certsrvv1.SessionRequest{SessionId: "x"})
			return err
		}},
		{"Backup/GetDynamicFiles", []string{"Operator"}, apierr.NotImplemented, func(ctx context.Context, c clients) error {
			_, err := c.backup.GetDynamicFiles(ctx, &certsrvv1.SessionRequest{SessionId: "x"})
			return err
		}},
		{"Backup/GetDatabaseLocations", []string{"Operator"}, apierr.NotImplemented, func(ctx context.Context, c clients) error {
			_, err := c.backup.GetDatabaseLocations(ctx, &certsrvv1.SessionRequest{SessionId: "x"})
			return err
		}},
		{"Backup/OpenFile", []string{"Operator"}, apierr.NotImplemented, func(ctx context.Context, c clients) error {
			_, err := c.backup.OpenFile(ctx, &certsrvv1.OpenFileRequest{SessionId: "x", Name: "y"})
			return err
		}},
		{"Backup/ReadFile", []string{"Operator"}, apierr.NotImplemented, func(ctx context.Context, c clients) error {
			return streamErr(c.backup.ReadFile(ctx, &certsrvv1.ReadFileRequest{SessionId: "x"}))
		}},
		{"Backup/CloseFile", []string{"Operator"}, apierr.NotImplemented, func(ctx context.Context, c clients) error {
			_, err := c.backup.CloseFile(ctx, &certsrvv1.CloseFileRequest{SessionId: "x"})
			return err
		}},
		{"Backup/TruncateLogs", []string{"Operator"}, apierr.NotImplemented, func(ctx context.Context, c clients) error {
			_, err := c.backup.TruncateLogs(ctx, &certsrvv1.SessionRequest{SessionId: "x"})
			return err
		}},
		{"Backup/End", []string{"Operator"}, apierr.NotImplemented, func(ctx context.Context, c clients) error {
			_, err := c.backup.End(ctx, &certsrvv1.EndRequest{SessionId: "x", Abort: true})
			return err
		}},
		// An unknown control code: allowed callers get InvalidArg and the
		// server keeps running.
		{"Backup/ServerControl", []string{"Operator", "Administrator"}, apierr.InvalidArg, func(ctx context.Context, c clients) error {
			_, err := c.backup.ServerControl(ctx, &certsrvv1.ServerControlRequest{Control: 99})
			return err
		}},
	}
}

// TestRoleMatrix calls every RPC of both services as a principal holding
// exactly one role (credentials made through the GrantRole RPC), as one
// holding none, and as one the CA does not know, and checks that the call
// is refused with AccessDenied exactly when the role does not allow it;
// an allowed call must give the answer its arguments call for.
func TestRoleMatrix(t *testing.T) {
	t.Run("no backup service", func(t *testing.T) { roleMatrix(t, false) })
	t.Run("backup service", func(t *testing.T) { roleMatrix(t, true) })
}

// roleMatrix runs the matrix against a server without a Backup service
// (allowed Backup calls reach the Unimplemented stub) or with the real one
// (allowed Backup calls get the backup engine's own answer, whatever it
// is, but neither AccessDenied nor NotImplemented).
func roleMatrix(t *testing.T, withBackup bool) {
	var opts []testserver.Option
	if withBackup {
		opts = append(opts, backuptest.Service(t))
	}
	s := testserver.Start(t, opts...)
	ctx := ctxT(t)
	admin := dial(t, s, s.CredsDir)

	principals := map[string]string{} // principal → credentials dir
	for _, r := range roleNames {
		principals[r] = grantRPC(t, ctx, s, admin.admin, "p-"+r, r)
	}
	var err error
	if principals[noRoles], err = s.Grant("p-none"); err != nil {
		t.Fatal(err)
	}
	if principals[unregistered], err = s.Unregistered("p-stranger"); err != nil {
		t.Fatal(err)
	}
	csr, _ := newCSR(t, "enrollee.example.test")
	req, err := s.CA.Submit(ctx, "p-Enrollee", csr, "")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ca.GenerateKey(ca.KeyECDSAP256)
	pubDER, _ := x509.MarshalPKIXPublicKey(key.Public())

	calls := matrixCalls(t, req.ID, pubDER)
	covered := map[string]bool{}
	for _, mc := range calls {
		covered[mc.name] = true
	}
	for _, sd := range []struct {
		prefix string
		names  []string
	}{{"Admin/", methodNames(certsrvv1.Admin_ServiceDesc.Methods, certsrvv1.Admin_ServiceDesc.Streams)},
		{"Backup/", methodNames(certsrvv1.Backup_ServiceDesc.Methods, certsrvv1.Backup_ServiceDesc.Streams)}} {
		for _, n := range sd.names {
			if !covered[sd.prefix+n] {
				t.Errorf("the matrix does not call %s%s", sd.prefix, n)
			}
		}
	}

	for who, creds := range principals {
		c := dial(t, s, creds)
		for _, mc := range calls {
			t.Run(who+"/"+mc.name, func(t *testing.T) {
				err := mc.call(ctx, c)
				allowed := who != unregistered && (slices.Contains(mc.allowed, who) || slices.Contains(mc.allowed, "*"))
				got := code(err)
				backupAnswer := withBackup && strings.HasPrefix(mc.name, "Backup/") && mc.name != "Backup/ServerControl"
				switch {
				case allowed && backupAnswer:
					if got == apierr.AccessDenied || got == apierr.NotImplemented {
						t.Fatalf("%s as %s: %v, want the backup service's answer", mc.name, who, err)
					}
					t.Logf("%s as %s: %q", mc.name, who, got.Reason)
				case !allowed && got != apierr.AccessDenied:
					t.Fatalf("%s as %s: got %v (%+v), want AccessDenied", mc.name, who, err, got)
				case !allowed && who != unregistered:
					// The refusal says which roles the method needs.
					for _, r := range mc.allowed {
						if r != "*" && !strings.Contains(err.Error(), r) {
							t.Fatalf("%s as %s: %v does not name the role %s", mc.name, who, err, r)
						}
					}
					if !strings.Contains(err.Error(), "it needs ") {
						t.Fatalf("%s as %s: %v does not say what the method needs", mc.name, who, err)
					}
				case allowed && got == apierr.AccessDenied:
					t.Fatalf("%s as %s: refused (%v), but the role allows it", mc.name, who, err)
				case allowed && got != mc.want:
					t.Fatalf("%s as %s: got %v (%s), want %q", mc.name, who, err, got.Reason, mc.want.Reason)
				}
			})
		}
	}
}

func methodNames(ms []grpc.MethodDesc, ss []grpc.StreamDesc) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.MethodName)
	}
	for _, s := range ss {
		out = append(out, s.StreamName)
	}
	return out
}

// TestEnrolleeReadsOwnRequestsOnly checks the handler's narrowing of
// GetRequest: an Enrollee reads its own request but not another's, while a
// Reader reads both.
func TestEnrolleeReadsOwnRequestsOnly(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	admin := dial(t, s, s.CredsDir)
	alice := dial(t, s, grantRPC(t, ctx, s, admin.admin, "alice", "Enrollee"))
	bob := dial(t, s, grantRPC(t, ctx, s, admin.admin, "bob", "Enrollee"))
	reader := dial(t, s, grantRPC(t, ctx, s, admin.admin, "rita", "Reader"))

	csr, _ := newCSR(t, "alice.example.test")
	r, err := alice.admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requester != "alice" || r.Status != certsrvv1.RequestStatus_REQUEST_STATUS_ISSUED || r.Certificate == nil {
		t.Fatalf("submit as alice: %+v", r)
	}
	got, err := alice.admin.GetRequest(ctx, &certsrvv1.GetRequestRequest{RequestId: r.RequestId})
	if err != nil || got.RequestId != r.RequestId || got.Certificate.GetSerial() != r.Certificate.Serial {
		t.Fatalf("alice reads her request: %+v, %v", got, err)
	}
	// Another's request and a missing one get the same answer: an
	// Enrollee cannot learn which request ids exist.
	_, errOther := bob.admin.GetRequest(ctx, &certsrvv1.GetRequestRequest{RequestId: r.RequestId})
	_, errMissing := bob.admin.GetRequest(ctx, &certsrvv1.GetRequestRequest{RequestId: 424242})
	if code(errOther) != apierr.NoRequest || code(errMissing) != apierr.NoRequest ||
		strings.ReplaceAll(status.Convert(errOther).Message(), strconv.FormatInt(r.RequestId, 10), "N") != strings.ReplaceAll(status.Convert(errMissing).Message(), "424242", "N") {
		t.Fatalf("bob reads alice's request: %v; a missing one: %v; want the same NoRequest", errOther, errMissing)
	}
	if got, err := reader.admin.GetRequest(ctx, &certsrvv1.GetRequestRequest{RequestId: r.RequestId}); err != nil || got.Requester != "alice" {
		t.Fatalf("reader reads alice's request: %+v, %v", got, err)
	}
}

package server_test

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/testserver"
)

// foreignCreds writes a credential for principal "admin" signed by a
// second, unrelated trust anchor, but trusting the server's real anchor
// (so the client itself would accept the server).
func foreignCreds(t *testing.T, s *testserver.Server) string {
	t.Helper()
	anchor, key, err := ca.NewTrustAnchor("another trust anchor", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := ca.NewClientCredential(anchor, key, "admin", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	real, err := ca.ReadCredentialDir(s.CredsDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "foreign")
	if err := ca.WriteCredentialDir(dir, cred); err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCertFile(filepath.Join(dir, ca.CredentialTrustFile), real.Trust); err != nil {
		t.Fatal(err)
	}
	return dir
}

// handshake dials the admin API with cfg, writes nothing, and reads: with
// TLS 1.3 the server's verdict on the client certificate arrives after the
// client's side of the handshake, so the read reports it.
func handshake(addr string, cfg *tls.Config) error {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	return err
}

// TestHandshakeRefusesForeignAndMissingClientCertificates checks that a
// client certificate from another trust anchor, no client certificate, and
// TLS 1.2 all fail at the TLS layer, and that no RPC runs for them.
func TestHandshakeRefusesForeignAndMissingClientCertificates(t *testing.T) {
	logs := &logRecords{}
	s := testserver.Start(t, testserver.WithLogger(slog.New(logs)))
	ctx := ctxT(t)

	good, err := testserver.ClientTLS(s.CredsDir)
	if err != nil {
		t.Fatal(err)
	}
	// HTTP/2 through ALPN, as gRPC clients ask for it: after a good
	// handshake the server's first HTTP/2 frame is there to read.
	good.NextProtos = []string{"h2"}
	if err := handshake(s.Addr, good.Clone()); err != nil {
		t.Fatalf("admin credential handshake and first read: %v", err)
	}

	foreign := foreignCreds(t, s)
	foreignCfg, err := testserver.ClientTLS(foreign)
	if err != nil {
		t.Fatal(err)
	}
	// Go's client sends a certificate only if its issuer is one the server
	// asks for; send the foreign one regardless, as an attacker would.
	foreignCert := foreignCfg.Certificates[0]
	foreignCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreignCert, nil }
	noCert := good.Clone()
	noCert.Certificates = nil
	tls12 := good.Clone()
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12

	for name, tc := range map[string]struct {
		cfg  *tls.Config
		want string // in the TLS alert
	}{
		"foreign client certificate": {foreignCfg, "unknown certificate authority"},
		"no client certificate":      {noCert, "certificate required"},
		"TLS 1.2":                    {tls12, "protocol version"},
	} {
		t.Run(name, func(t *testing.T) {
			err := handshake(s.Addr, tc.cfg)
			if err == nil || errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("handshake: %v, want a TLS alert %q", err, tc.want)
			}
		})
	}

	// Through gRPC the call fails as a transport error, never as an
	// answer from a handler.
	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(credentials.NewTLS(foreignCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = certsrvv1.NewAdminClient(conn).Ping(ctx, &certsrvv1.PingRequest{})
	if st, _ := status.FromError(err); err == nil || st.Code() != codes.Unavailable {
		t.Fatalf("Ping with a foreign certificate: %v, want Unavailable", err)
	}
	if n := len(logs.find("rpc")) + len(logs.find("rpc refused")) + len(logs.find("rpc failed")); n != 0 {
		t.Fatalf("%d RPCs reached the server from refused handshakes", n)
	}
	// The server still serves the real admin.
	if _, err := dial(t, s, s.CredsDir).admin.Ping(ctx, &certsrvv1.PingRequest{}); err != nil {
		t.Fatalf("admin Ping after refused handshakes: %v", err)
	}
}

// TestPingReportsCaller checks what Ping says about the CA and the caller.
func TestPingReportsCaller(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	resp, err := dial(t, s, s.CredsDir).admin.Ping(ctx, &certsrvv1.PingRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.State != certsrvv1.ServerState_SERVER_STATE_ONLINE || resp.CaName != testserver.CAName ||
		resp.Principal != "admin" || resp.Version != "test" || len(resp.Roles) != 6 {
		t.Fatalf("Ping = %+v", resp)
	}
	none, err := s.Grant("nobody-special")
	if err != nil {
		t.Fatal(err)
	}
	resp, err = dial(t, s, none).admin.Ping(ctx, &certsrvv1.PingRequest{})
	if err != nil || resp.Principal != "nobody-special" || len(resp.Roles) != 0 {
		t.Fatalf("Ping without roles = %+v, %v", resp, err)
	}
}

// TestRevokedPrincipalRefusedOnNextCall revokes a principal through the
// API right after a successful (and so cached) call and checks that its
// very next call is refused; and that a revocation made on the CA
// directly is seen immediately with the cache off and within the cache's
// lifetime with it on.
func TestRevokedPrincipalRefusedOnNextCall(t *testing.T) {
	t.Run("through the API", func(t *testing.T) {
		s := testserver.Start(t, testserver.WithServerOptions(func(o *server.Options) { o.AuthCacheTTL = time.Hour }))
		ctx := ctxT(t)
		admin := dial(t, s, s.CredsDir)
		oscar := dial(t, s, grantRPC(t, ctx, s, admin.admin, "oscar", "Officer", "Reader"))
		for range 3 {
			if _, err := oscar.admin.View(ctx, &certsrvv1.ViewRequest{}); err != nil {
				t.Fatalf("View before revocation: %v", err)
			}
		}
		if _, err := admin.admin.RevokeRole(ctx, &certsrvv1.RevokeRoleRequest{Principal: "oscar"}); err != nil {
			t.Fatal(err)
		}
		if _, err := oscar.admin.View(ctx, &certsrvv1.ViewRequest{}); code(err) != apierr.AccessDenied {
			t.Fatalf("View right after RevokeRole: %v, want AccessDenied", err)
		}
		if _, err := oscar.admin.Ping(ctx, &certsrvv1.PingRequest{}); code(err) != apierr.AccessDenied {
			t.Fatalf("Ping after RevokeRole: %v, want AccessDenied", err)
		}
		if _, err := admin.admin.RevokeRole(ctx, &certsrvv1.RevokeRoleRequest{Principal: "oscar"}); code(err) != apierr.BadRequestStatus {
			t.Fatalf("second RevokeRole: %v, want BadRequestStatus", err)
		}
	})
	t.Run("on the CA, cache off", func(t *testing.T) {
		s := testserver.Start(t, testserver.WithServerOptions(func(o *server.Options) { o.AuthCacheTTL = -1 }))
		ctx := ctxT(t)
		admin := dial(t, s, s.CredsDir)
		rita := dial(t, s, grantRPC(t, ctx, s, admin.admin, "rita", "Reader"))
		if _, err := rita.admin.View(ctx, &certsrvv1.ViewRequest{}); err != nil {
			t.Fatal(err)
		}
		if err := s.CA.RevokeRole(ctx, "rita"); err != nil {
			t.Fatal(err)
		}
		if _, err := rita.admin.View(ctx, &certsrvv1.ViewRequest{}); code(err) != apierr.AccessDenied {
			t.Fatalf("View after a direct revocation: %v, want AccessDenied", err)
		}
	})
	t.Run("on the CA, cache on", func(t *testing.T) {
		const ttl = 300 * time.Millisecond
		s := testserver.Start(t, testserver.WithServerOptions(func(o *server.Options) { o.AuthCacheTTL = ttl }))
		ctx := ctxT(t)
		admin := dial(t, s, s.CredsDir)
		rita := dial(t, s, grantRPC(t, ctx, s, admin.admin, "rita", "Reader"))
		if _, err := rita.admin.View(ctx, &certsrvv1.ViewRequest{}); err != nil {
			t.Fatal(err)
		}
		revoked := time.Now()
		if err := s.CA.RevokeRole(ctx, "rita"); err != nil {
			t.Fatal(err)
		}
		for {
			_, err := rita.admin.View(ctx, &certsrvv1.ViewRequest{})
			if code(err) == apierr.AccessDenied {
				break
			}
			if err != nil {
				t.Fatalf("View: %v", err)
			}
			if time.Since(revoked) > ttl+time.Second {
				t.Fatalf("still admitted %v after a direct revocation with a %v cache", time.Since(revoked), ttl)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestSuspended checks that while suspended every RPC but Ping answers
// CERTSRV_E_SERVER_SUSPENDED (0x80094006), Ping reports SUSPENDED, and
// resuming restores service.
func TestSuspended(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	c := dial(t, s, s.CredsDir)
	s.Server.SetSuspended(true)
	if !s.Server.Suspended() {
		t.Fatal("Suspended() false after SetSuspended(true)")
	}
	resp, err := c.admin.Ping(ctx, &certsrvv1.PingRequest{})
	if err != nil || resp.State != certsrvv1.ServerState_SERVER_STATE_SUSPENDED || resp.Principal != "admin" {
		t.Fatalf("Ping while suspended = %+v, %v", resp, err)
	}
	for _, mc := range matrixCalls(t, 1, nil) {
		if mc.name == "Admin/Ping" {
			continue
		}
		err := mc.call(ctx, c)
		e := apierr.FromStatus(err)
		if err == nil || e.Code != apierr.ServerSuspended || e.Code.HRESULT != 0x80094006 {
			t.Errorf("%s while suspended: %v, want CERTSRV_E_SERVER_SUSPENDED", mc.name, err)
		}
	}
	s.Server.SetSuspended(false)
	resp, err = c.admin.Ping(ctx, &certsrvv1.PingRequest{})
	if err != nil || resp.State != certsrvv1.ServerState_SERVER_STATE_ONLINE {
		t.Fatalf("Ping after resume = %+v, %v", resp, err)
	}
	if _, err := c.admin.View(ctx, &certsrvv1.ViewRequest{}); err != nil {
		t.Fatalf("View after resume: %v", err)
	}
}

package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
	"github.com/certsrv/certsrv/internal/testserver"
)

// clients is one authenticated connection's two service clients.
type clients struct {
	admin  certsrvv1.AdminClient
	backup certsrvv1.BackupClient
}

// dial connects to s with the credential in creds; the connection is
// closed when the test ends.
func dial(t testing.TB, s *testserver.Server, creds string) clients {
	t.Helper()
	conn, err := s.Dial(creds)
	if err != nil {
		t.Fatalf("dial with %s: %v", creds, err)
	}
	t.Cleanup(func() { conn.Close() })
	return clients{admin: certsrvv1.NewAdminClient(conn), backup: certsrvv1.NewBackupClient(conn)}
}

// ctxT returns a context that ends with the test or after 30 s.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// code returns the apierr Code an RPC error carries; nil gives the zero
// Code.
func code(err error) apierr.Code {
	if err == nil {
		return apierr.Code{}
	}
	return apierr.FromStatus(err).Code
}

// grantRPC creates a credential for principal with roles through the
// GrantRole RPC, called with admin, and writes it into a new directory.
func grantRPC(t testing.TB, ctx context.Context, s *testserver.Server, admin certsrvv1.AdminClient, principal string, roles ...string) string {
	t.Helper()
	key, err := ca.GenerateKey(ca.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := admin.GrantRole(ctx, &certsrvv1.GrantRoleRequest{Principal: principal, Roles: roles, PublicKey: pub})
	if err != nil {
		t.Fatalf("GrantRole %s %v: %v", principal, roles, err)
	}
	cert, err := x509.ParseCertificate(resp.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := x509.ParseCertificate(resp.TrustAnchor)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != principal {
		t.Fatalf("granted certificate names %q, want %q", cert.Subject.CommonName, principal)
	}
	dir := filepath.Join(t.TempDir(), principal)
	if err := ca.WriteCredentialDir(dir, &ca.Credential{Cert: cert, Key: key, Trust: trust}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newCSR returns a PEM PKCS#10 request for CN=dns with that DNS name as a
// SAN, and its key.
func newCSR(t testing.TB, dns string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: dns},
		DNSNames: []string{dns},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key
}

// logRecords is a slog.Handler that keeps every record, for tests that
// check what the server or the store reported.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

// find returns the records with message msg.
func (h *logRecords) find(msg string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.recs {
		if r.Message == msg {
			out = append(out, r)
		}
	}
	return out
}

// attr returns the value of the attribute key of r.
func attr(r slog.Record, key string) (slog.Value, bool) {
	var v slog.Value
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, found = a.Value, true
			return false
		}
		return true
	})
	return v, found
}

// storeFilterAll selects every request.
func storeFilterAll() store.Filter { return store.Filter{} }

package service

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

func TestParseRoles(t *testing.T) {
	rs, err := ParseRoles([]string{"reader", " OFFICER ", "Reader", "administrator"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rs, Roles{RoleAdministrator, RoleOfficer, RoleReader}) {
		t.Errorf("ParseRoles = %v", rs)
	}
	if !rs.Has(RoleOfficer) || rs.Has(RoleOperator) {
		t.Errorf("Has is wrong for %v", rs)
	}
	for _, bad := range [][]string{nil, {"Officer", "root"}, {""}} {
		_, err := ParseRoles(bad)
		wantCode(t, err, apierr.InvalidArg)
	}
}

func TestGrantAuthorizeRevoke(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	key := testKey(t, ca.KeyECDSAP256, 2)

	certDER, trustDER, err := c.GrantRole(ctx, "alice", []string{"officer", "READER"}, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCert(t, certDER)
	trust := parseCert(t, trustDER)
	if !trust.Equal(c.TrustAnchor()) {
		t.Error("GrantRole returned another trust anchor")
	}
	pool := x509.NewCertPool()
	pool.AddCert(trust)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("granted credential does not verify for clientAuth: %v", err)
	}
	if cert.Subject.CommonName != "alice" || ca.KeyMatchesCert(key, cert) != nil {
		t.Errorf("credential CN %q, key match %v", cert.Subject.CommonName, ca.KeyMatchesCert(key, cert))
	}
	fp := Fingerprint(certDER)
	roles, err := c.Authorize(ctx, "alice", fp)
	if err != nil || !slices.Equal(roles, Roles{RoleOfficer, RoleReader}) {
		t.Fatalf("Authorize(alice) = %v, %v", roles, err)
	}
	if roles, err := c.Authorize(ctx, "alice", strings.ToUpper(colons(fp))); err != nil || len(roles) != 2 {
		t.Errorf("Authorize with an upper-case colon fingerprint = %v, %v", roles, err)
	}

	adminFP := ""
	if cred, err := ca.ReadCredentialDir(c.Dir().AdminDir()); err == nil {
		adminFP = Fingerprint(cred.Cert.Raw)
	} else {
		t.Fatal(err)
	}
	for name, tc := range map[string][2]string{
		"wrong fingerprint":         {"alice", strings.Repeat("ab", 32)},
		"another principal's cert":  {"alice", adminFP},
		"cert presented as another": {AdminPrincipal, fp},
		"unknown principal":         {"carol", fp},
		"empty fingerprint":         {"alice", ""},
	} {
		_, err := c.Authorize(ctx, tc[0], tc[1])
		if !isCode(err, apierr.AccessDenied) {
			t.Errorf("%s: Authorize = %v, want AccessDenied", name, err)
		}
	}

	before := lastLSN(c)
	_, _, err = c.GrantRole(ctx, "alice", []string{"Officer", "Superuser"}, key.Public())
	wantCode(t, err, apierr.InvalidArg)
	_, _, err = c.GrantRole(ctx, "bad\nname", []string{"Officer"}, key.Public())
	wantCode(t, err, apierr.InvalidArg)
	_, _, err = c.GrantRole(ctx, "dave", []string{"Officer"}, rsaKey(t, 1024).Public())
	wantCode(t, err, apierr.InvalidArg)
	if lastLSN(c) != before {
		t.Errorf("refused grants wrote %d log records", lastLSN(c)-before)
	}
	if _, err := c.Store().Principal(ctx, "dave"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused grant created principal dave: %v", err)
	}

	// Roles accumulate; both credentials work.
	key2 := testKey(t, ca.KeyEd25519, 2)
	cert2, _, err := c.GrantRole(ctx, "alice", []string{"Operator"}, key2.Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{fp, Fingerprint(cert2)} {
		roles, err := c.Authorize(ctx, "alice", f)
		if err != nil || !slices.Equal(roles, Roles{RoleOfficer, RoleOperator, RoleReader}) {
			t.Errorf("Authorize(alice, %s) = %v, %v", f[:8], roles, err)
		}
	}

	if err := c.RevokeRole(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{fp, Fingerprint(cert2)} {
		_, err := c.Authorize(ctx, "alice", f)
		wantCode(t, err, apierr.AccessDenied)
	}
	wantCode(t, c.RevokeRole(ctx, "alice"), apierr.BadRequestStatus)
	wantCode(t, c.RevokeRole(ctx, "nobody"), apierr.NotFound)
	_, _, err = c.GrantRole(ctx, "alice", []string{"Reader"}, key.Public())
	wantCode(t, err, apierr.BadRequestStatus)
	if roles, err := c.Authorize(ctx, AdminPrincipal, adminFP); err != nil || len(roles) != len(AllRoles()) {
		t.Errorf("admin after alice's revocation: %v, %v", roles, err)
	}
}

// TestPrincipalWithoutRoles: a registered credential whose principal holds
// no role authenticates with an empty role set (Ping needs nothing more).
func TestPrincipalWithoutRoles(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	if err := c.Store().GrantRoles(ctx, "nobody", nil, strings.Repeat("cd", 32)); err != nil {
		t.Fatal(err)
	}
	roles, err := c.Authorize(ctx, "nobody", strings.Repeat("cd", 32))
	if err != nil || len(roles) != 0 {
		t.Fatalf("Authorize(role-less principal) = %v, %v", roles, err)
	}
}

func TestMakeAdminCredential(t *testing.T) {
	dir := initDir(t)
	ctx := context.Background()
	old, err := ca.ReadCredentialDir(dir.AdminDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := dir.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, StoreOptions(dir, cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := MakeAdminCredential(ctx, dir, db); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	fresh, err := ca.ReadCredentialDir(dir.AdminDir())
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Trust.Equal(old.Trust) || fresh.Cert.Equal(old.Cert) {
		t.Fatal("MakeAdminCredential kept the old trust anchor or credential")
	}
	c := openCA(t, dir)
	if !c.TrustAnchor().Equal(fresh.Trust) {
		t.Error("tls/trust.crt is not the new credential's anchor")
	}
	roles, err := c.Authorize(ctx, AdminPrincipal, Fingerprint(fresh.Cert.Raw))
	if err != nil || !slices.Equal(roles, AllRoles()) {
		t.Errorf("new admin credential: %v, %v", roles, err)
	}
	if _, err := fresh.Cert.Verify(x509.VerifyOptions{Roots: poolOf(fresh.Trust), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}
	if _, err := old.Cert.Verify(x509.VerifyOptions{Roots: poolOf(fresh.Trust), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("the old admin credential verifies against the new trust anchor")
	}
	serverPEM, err := os.ReadFile(filepath.Join(dir.TLSDir(), "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.ParseCertsPEM(serverPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server[0].Verify(x509.VerifyOptions{Roots: poolOf(fresh.Trust), DNSName: "localhost"}); err != nil {
		t.Errorf("new server certificate does not verify against the new anchor: %v", err)
	}
}

// TestLastAdministratorCannotBeRevoked: revoking the last principal with
// the Administrator role is refused (nobody could manage roles any more);
// once another holds it, the first may go.
func TestLastAdministratorCannotBeRevoked(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	before := lastLSN(c)
	err := c.RevokeRole(ctx, AdminPrincipal)
	wantCode(t, err, apierr.BadRequestStatus)
	if !strings.Contains(err.Error(), "last Administrator") {
		t.Errorf("message: %v", err)
	}
	if lastLSN(c) != before {
		t.Error("the refused revocation wrote a record")
	}
	if _, _, err := c.GrantRole(ctx, "boss", []string{"Administrator"}, testKey(t, ca.KeyEd25519, 3).Public()); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeRole(ctx, AdminPrincipal); err != nil {
		t.Fatalf("revoke admin once boss is an Administrator too: %v", err)
	}
	wantCode(t, c.RevokeRole(ctx, "boss"), apierr.BadRequestStatus)
}

// TestMakeAdminCredentialAfterAdminWasRevoked: an operator retired the
// first credential (role revoke admin); a new admin credential, as a
// restore onto a new host makes, goes to admin-2 with every role.
func TestMakeAdminCredentialAfterAdminWasRevoked(t *testing.T) {
	dir := initDir(t)
	ctx := context.Background()
	cfg, err := dir.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, StoreOptions(dir, cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RevokePrincipal(ctx, AdminPrincipal); err != nil {
		t.Fatal(err)
	}
	if err := MakeAdminCredential(ctx, dir, db); err != nil {
		t.Fatalf("a new admin credential after admin was revoked: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	fresh, err := ca.ReadCredentialDir(dir.AdminDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := fresh.Cert.Subject.CommonName; got != AdminPrincipal+"-2" {
		t.Fatalf("the new credential is for %q, want %q", got, AdminPrincipal+"-2")
	}
	c := openCA(t, dir)
	roles, err := c.Authorize(ctx, AdminPrincipal+"-2", Fingerprint(fresh.Cert.Raw))
	if err != nil || !slices.Equal(roles, AllRoles()) {
		t.Errorf("admin-2: %v, %v", roles, err)
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

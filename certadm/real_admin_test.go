package certadm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/certadm/internal/wiretest"
)

func dialReal(t *testing.T) (*certadm.Client, string) {
	t.Helper()
	srv := startServer(t)
	c, err := certadm.Dial(context.Background(), srv.Addr, certadm.WithCredentials(srv.CredsDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, srv.Addr
}

func TestRealEnrollmentLifecycle(t *testing.T) {
	c, _ := dialReal(t)
	ctx := context.Background()
	caCert, chain, err := c.CACertificate(ctx)
	if err != nil || len(chain) != 0 || !caCert.IsCA {
		t.Fatalf("CA certificate: %v, chain %d", err, len(chain))
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)

	r, err := c.Submit(ctx, wiretest.NewCSR(t, "www.example.test"), "tls-server")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != certadm.StatusIssued || r.Certificate == nil || r.Requester != "admin" || r.SubmittedAt.IsZero() {
		t.Fatalf("submit %+v", r)
	}
	cert, err := r.Certificate.X509()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "www.example.test"}); err != nil {
		t.Fatalf("issued certificate does not verify: %v", err)
	}
	if want := strings.ToUpper(cert.SerialNumber.Text(16)); strings.TrimLeft(r.Certificate.Serial, "0") != want {
		t.Fatalf("serial %s, certificate has %s", r.Certificate.Serial, want)
	}
	if !r.Certificate.NotAfter.Equal(cert.NotAfter) || r.Certificate.RequestID != r.ID {
		t.Fatalf("certificate info %+v", r.Certificate)
	}

	// A pending request, approved.
	p, err := c.Submit(ctx, wiretest.NewCSR(t, "pending.example.test"), manualProfile)
	if err != nil || p.Status != certadm.StatusPending || p.Certificate != nil {
		t.Fatalf("manual submit %+v %v", p, err)
	}
	if g, err := c.GetRequest(ctx, p.ID); err != nil || g.Status != certadm.StatusPending || g.Profile != manualProfile {
		t.Fatalf("get pending %+v %v", g, err)
	}
	a, err := c.Approve(ctx, p.ID)
	if err != nil || a.Status != certadm.StatusIssued || a.Certificate == nil || a.ResolvedAt.IsZero() {
		t.Fatalf("approve %+v %v", a, err)
	}
	if _, err := c.Approve(ctx, p.ID); !errors.Is(err, certadm.ErrBadRequestStatus) || certadm.HRESULT(err) != 0x80094003 {
		t.Fatalf("approve twice: %v", err)
	}

	// A pending request, denied.
	d, err := c.Submit(ctx, wiretest.NewCSR(t, "denied.example.test"), manualProfile)
	if err != nil {
		t.Fatal(err)
	}
	d, err = c.Deny(ctx, d.ID, "not ours")
	if err != nil || d.Status != certadm.StatusDenied || d.DenyReason != "not ours" || d.Certificate != nil {
		t.Fatalf("deny %+v %v", d, err)
	}

	if _, err := c.GetRequest(ctx, 999999); !errors.Is(err, certadm.ErrNoRequest) || certadm.HRESULT(err) != 0x80094002 {
		t.Fatalf("unknown request: %v", err)
	}
	if _, err := c.Submit(ctx, []byte("not a request"), ""); !errors.Is(err, certadm.ErrBadRequest) && !errors.Is(err, certadm.ErrInvalidArg) {
		t.Fatalf("garbage request: %v", err)
	}
}

func TestRealRevocationAndCRLs(t *testing.T) {
	c, _ := dialReal(t)
	ctx := context.Background()
	reqs := issue(t, c, "rev-", 2)
	target, held := reqs[0].Certificate, reqs[1].Certificate

	// The serial as openssl prints it: lower case with colons.
	var colon []string
	for i := 0; i < len(target.Serial); i += 2 {
		colon = append(colon, strings.ToLower(target.Serial[i:i+2]))
	}
	got, err := c.Revoke(ctx, strings.Join(colon, ":"), "keyCompromise")
	if err != nil {
		t.Fatal(err)
	}
	if got.Serial != target.Serial || !got.Revoked || got.RevocationReason != 1 || got.RevokedAt.IsZero() {
		t.Fatalf("revoked %+v", got)
	}
	if _, err := c.Revoke(ctx, held.Serial, "certificateHold"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, held.Serial, "no-such-reason"); err == nil {
		t.Fatal("unknown reason accepted")
	}
	if _, err := c.Revoke(ctx, "00DEADBEEF", ""); !errors.Is(err, certadm.ErrNotFound) && !errors.Is(err, certadm.ErrNoRequest) {
		t.Fatalf("unknown serial: %v (0x%08X)", err, certadm.HRESULT(err))
	}

	crl, err := c.PublishCRL(ctx, false)
	if err != nil || crl.Delta || crl.Entries != 2 || crl.Number == "" || !crl.NextUpdate.After(crl.ThisUpdate) {
		t.Fatalf("full CRL %+v %v", crl, err)
	}
	list, err := x509.ParseRevocationList(fetch(t, crl.URL))
	if err != nil {
		t.Fatal(err)
	}
	if list.Number.String() != crl.Number || !listed(list, target.Serial) || !listed(list, held.Serial) {
		t.Fatalf("CRL number %v, entries %d", list.Number, len(list.RevokedCertificateEntries))
	}

	released, err := c.Unrevoke(ctx, held.Serial)
	if err != nil || released.Revoked {
		t.Fatalf("unrevoke %+v %v", released, err)
	}
	if _, err := c.Unrevoke(ctx, target.Serial); !errors.Is(err, certadm.ErrBadRequestStatus) && !errors.Is(err, certadm.ErrInvalidArg) {
		t.Fatalf("unrevoke a key compromise: %v", err)
	}
	delta, err := c.PublishCRL(ctx, true)
	if err != nil || !delta.Delta {
		t.Fatalf("delta CRL %+v %v", delta, err)
	}
	if n, _ := new(big.Int).SetString(delta.Number, 10); n == nil || n.String() == crl.Number {
		t.Fatalf("delta number %q after full %q", delta.Number, crl.Number)
	}
}

func listed(l *x509.RevocationList, serial string) bool {
	for _, e := range l.RevokedCertificateEntries {
		if strings.EqualFold(e.SerialNumber.Text(16), strings.TrimLeft(serial, "0")) {
			return true
		}
	}
	return false
}

func TestRealViewFilters(t *testing.T) {
	c, _ := dialReal(t)
	ctx := context.Background()
	issued := issue(t, c, "view-alpha-", 2)
	beta := issue(t, c, "view-beta-", 1)[0]
	pending, err := c.Submit(ctx, wiretest.NewCSR(t, "view-gamma.test"), manualProfile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, issued[1].Certificate.Serial, ""); err != nil {
		t.Fatal(err)
	}

	ids := func(f certadm.ViewFilter) []int64 {
		t.Helper()
		rs, err := c.View(ctx, f)
		if err != nil {
			t.Fatalf("view %+v: %v", f, err)
		}
		var out []int64
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	eq := func(name string, got []int64, want ...int64) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
			return
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: got %v, want %v", name, got, want)
				return
			}
		}
	}
	eq("all", ids(certadm.ViewFilter{}), issued[0].ID, issued[1].ID, beta.ID, pending.ID)
	eq("subject", ids(certadm.ViewFilter{SubjectContains: "view-beta"}), beta.ID)
	eq("pending", ids(certadm.ViewFilter{Status: certadm.StatusPending}), pending.ID)
	// As in AD CS, a revoked certificate leaves the issued view.
	eq("issued", ids(certadm.ViewFilter{Status: certadm.StatusIssued}), issued[0].ID, beta.ID)
	eq("revoked", ids(certadm.ViewFilter{RevokedOnly: true}), issued[1].ID)
	eq("id", ids(certadm.ViewFilter{RequestID: beta.ID}), beta.ID)
	eq("serial", ids(certadm.ViewFilter{Serial: strings.ToLower(issued[0].Certificate.Serial)}), issued[0].ID)
	eq("limit", ids(certadm.ViewFilter{Limit: 2}), issued[0].ID, issued[1].ID)
	eq("expired", ids(certadm.ViewFilter{ExpiresBefore: time.Now()}))
	eq("expires later", ids(certadm.ViewFilter{ExpiresAfter: time.Now(), Status: certadm.StatusIssued}), issued[0].ID, beta.ID)
}

func TestRealGrantAndRevokeRole(t *testing.T) {
	c, addr := dialReal(t)
	ctx := context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := c.GrantRole(ctx, "backup-bot", []string{certadm.RoleOperator}, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Certificate.Subject.CommonName != "backup-bot" || !key.PublicKey.Equal(cred.Certificate.PublicKey) {
		t.Fatalf("credential for %v", cred.Certificate.Subject)
	}
	dir := t.TempDir()
	wiretest.WriteCredential(t, dir, key, cred.Certificate, cred.TrustAnchor)
	bot, err := certadm.Dial(ctx, addr, certadm.WithCredentials(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer bot.Close()
	info, err := bot.Ping(ctx)
	if err != nil || info.Principal != "backup-bot" || len(info.Roles) != 1 || info.Roles[0] != certadm.RoleOperator {
		t.Fatalf("new principal: %+v %v", info, err)
	}
	if err := c.RevokeRole(ctx, "backup-bot"); err != nil {
		t.Fatal(err)
	}
	if _, err := bot.Ping(ctx); !errors.Is(err, certadm.ErrAccessDenied) {
		t.Fatalf("revoked principal: %v", err)
	}
	if _, err := c.GrantRole(ctx, "x", []string{"Janitor"}, &key.PublicKey); !errors.Is(err, certadm.ErrInvalidArg) {
		t.Fatalf("unknown role: %v", err)
	}
}

func TestRealBackupKey(t *testing.T) {
	c, _ := dialReal(t)
	ctx := context.Background()
	p12, name, err := c.BackupKey(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	caCert, _, err := c.CACertificate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if name != caCert.Subject.CommonName+".p12" {
		t.Fatalf("file name %q for CA %q", name, caCert.Subject.CommonName)
	}
	key, cert, _, err := pkcs12.DecodeChain(p12, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(caCert) {
		t.Fatal("PKCS#12 holds another certificate")
	}
	signer, ok := key.(crypto.Signer)
	if !ok || !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
		t.Fatal("PKCS#12 key does not match the CA certificate")
	}
	if _, _, _, err := pkcs12.DecodeChain(p12, "wrong"); err == nil {
		t.Fatal("wrong password accepted")
	}
}

func TestRealImportCertificate(t *testing.T) {
	c, _ := dialReal(t)
	ctx := context.Background()
	r := issue(t, c, "import-", 1)[0]
	if _, err := c.ImportCertificate(ctx, r.Certificate.PEM()); !errors.Is(err, certadm.ErrAlreadyExists) {
		t.Fatalf("import a known certificate: %v (0x%08X)", err, certadm.HRESULT(err))
	}
	foreign := wiretest.NewPKI(t, "not this CA").ServerCert
	if _, err := c.ImportCertificate(ctx, wiretest.PEM(foreign)); !errors.Is(err, certadm.ErrPolicyDenied) {
		t.Fatalf("import a foreign certificate: %v (0x%08X)", err, certadm.HRESULT(err))
	}
}

func TestRealClientCloseTwice(t *testing.T) {
	c, _ := dialReal(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := c.Ping(context.Background()); err == nil {
		t.Fatal("ping on a closed client succeeded")
	}
}

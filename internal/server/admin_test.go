package server_test

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/testserver"
)

// withPendingProfile adds a profile "manual" that waits for an officer.
func withPendingProfile(c *datadir.Config) {
	ps := ca.DefaultProfiles()
	manual := ps[0]
	manual.Name, manual.AutoIssue = "manual", false
	// Marshalling plain structs of strings, numbers and booleans cannot
	// fail; a broken fixture would show as a failed Init.
	c.Profiles, _ = json.Marshal(append(ps, manual))
}

// TestAdminRequestLifecycle drives pending requests through Approve and
// Deny, and checks how requests, certificates and times come out on the
// wire.
func TestAdminRequestLifecycle(t *testing.T) {
	s := testserver.Start(t, testserver.WithConfig(withPendingProfile))
	ctx := ctxT(t)
	c := dial(t, s, s.CredsDir)

	csr, _ := newCSR(t, "pending.example.test")
	before := time.Now().Add(-time.Second)
	p, err := c.admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr, Profile: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != certsrvv1.RequestStatus_REQUEST_STATUS_PENDING || p.Certificate != nil || p.Profile != "manual" ||
		p.Requester != "admin" || p.ResolvedAt != nil || p.SubmittedAt.AsTime().Before(before) {
		t.Fatalf("pending submit: %+v", p)
	}
	a, err := c.admin.Approve(ctx, &certsrvv1.ApproveRequest{RequestId: p.RequestId})
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != certsrvv1.RequestStatus_REQUEST_STATUS_ISSUED || a.Certificate == nil || a.ResolvedAt == nil {
		t.Fatalf("approve: %+v", a)
	}
	cert, err := x509.ParseCertificate(a.Certificate.Der)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(s.CA.Certificate()); err != nil {
		t.Fatalf("approved certificate: %v", err)
	}
	if ca.SerialString(cert.SerialNumber) != a.Certificate.Serial || !a.Certificate.NotAfter.AsTime().Equal(cert.NotAfter) ||
		a.Certificate.RequestId != p.RequestId || a.Certificate.Revoked {
		t.Fatalf("certificate info %+v does not match the certificate", a.Certificate)
	}
	if _, err := c.admin.Approve(ctx, &certsrvv1.ApproveRequest{RequestId: p.RequestId}); code(err) != apierr.BadRequestStatus {
		t.Fatalf("approve twice: %v, want BadRequestStatus", err)
	}

	csr2, _ := newCSR(t, "denied.example.test")
	p2, err := c.admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr2, Profile: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.admin.Deny(ctx, &certsrvv1.DenyRequest{RequestId: p2.RequestId, Reason: "not ours"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != certsrvv1.RequestStatus_REQUEST_STATUS_DENIED || d.DenyReason != "not ours" || d.Certificate != nil {
		t.Fatalf("deny: %+v", d)
	}

	// View filters.
	for name, tc := range map[string]struct {
		req  *certsrvv1.ViewRequest
		want []int64
	}{
		"all":        {&certsrvv1.ViewRequest{}, []int64{p.RequestId, p2.RequestId}},
		"issued":     {&certsrvv1.ViewRequest{Status: certsrvv1.RequestStatus_REQUEST_STATUS_ISSUED}, []int64{p.RequestId}},
		"denied":     {&certsrvv1.ViewRequest{Status: certsrvv1.RequestStatus_REQUEST_STATUS_DENIED}, []int64{p2.RequestId}},
		"by serial":  {&certsrvv1.ViewRequest{Serial: a.Certificate.Serial}, []int64{p.RequestId}},
		"by id":      {&certsrvv1.ViewRequest{RequestId: p2.RequestId}, []int64{p2.RequestId}},
		"subject":    {&certsrvv1.ViewRequest{SubjectContains: "denied.example"}, []int64{p2.RequestId}},
		"limit":      {&certsrvv1.ViewRequest{Limit: 1}, []int64{p.RequestId}},
		"after id":   {&certsrvv1.ViewRequest{AfterId: p.RequestId}, []int64{p2.RequestId}},
		"next page":  {&certsrvv1.ViewRequest{AfterId: p.RequestId, Limit: 1}, []int64{p2.RequestId}},
		"past end":   {&certsrvv1.ViewRequest{AfterId: p2.RequestId}, nil},
		"requester":  {&certsrvv1.ViewRequest{Requester: "admin"}, []int64{p.RequestId, p2.RequestId}},
		"other one":  {&certsrvv1.ViewRequest{Requester: "nobody"}, nil},
		"revoked":    {&certsrvv1.ViewRequest{RevokedOnly: true}, nil},
		"expires <":  {&certsrvv1.ViewRequest{ExpiresBefore: timestamppb.New(cert.NotAfter.Add(time.Hour))}, []int64{p.RequestId}},
		"expires > ": {&certsrvv1.ViewRequest{ExpiresAfter: timestamppb.New(cert.NotAfter.Add(time.Hour))}, nil},
	} {
		v, err := c.admin.View(ctx, tc.req)
		if err != nil {
			t.Fatalf("View %s: %v", name, err)
		}
		var got []int64
		for _, r := range v.Requests {
			got = append(got, r.RequestId)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && !equalIDs(got, tc.want)) {
			t.Errorf("View %s: ids %v, want %v", name, got, tc.want)
		}
	}
	for name, req := range map[string]*certsrvv1.ViewRequest{
		"negative limit":           {Limit: -1},
		"negative after_id":        {AfterId: -1},
		"revoked_only with denied": {RevokedOnly: true, Status: certsrvv1.RequestStatus_REQUEST_STATUS_DENIED},
		"unknown status":           {Status: 42},
		"bad serial":               {Serial: "xyz"},
	} {
		if _, err := c.admin.View(ctx, req); code(err) != apierr.InvalidArg {
			t.Errorf("View %s: %v, want InvalidArg", name, err)
		}
	}
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAdminRevocationAndCA covers hold and release, CRL numbering, the CA
// certificate, key backup and certificate import over the API.
func TestAdminRevocationAndCA(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	c := dial(t, s, s.CredsDir)

	csr, _ := newCSR(t, "hold.example.test")
	r, err := c.admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	rv, err := c.admin.Revoke(ctx, &certsrvv1.RevokeRequest{Serial: r.Certificate.Serial, Reason: "certificateHold", RevokedAt: timestamppb.New(at)})
	if err != nil {
		t.Fatal(err)
	}
	if !rv.Certificate.Revoked || rv.Certificate.RevocationReason != 6 || !rv.Certificate.RevokedAt.AsTime().Equal(at) {
		t.Fatalf("hold: %+v", rv.Certificate)
	}
	full, err := c.admin.PublishCRL(ctx, &certsrvv1.PublishCRLRequest{})
	if err != nil {
		t.Fatal(err)
	}
	un, err := c.admin.Unrevoke(ctx, &certsrvv1.UnrevokeRequest{Serial: r.Certificate.Serial})
	if err != nil {
		t.Fatal(err)
	}
	if un.Certificate.Revoked || un.Certificate.RevokedAt != nil || un.Certificate.RevocationReason != 0 {
		t.Fatalf("unrevoke: %+v", un.Certificate)
	}
	delta, err := c.admin.PublishCRL(ctx, &certsrvv1.PublishCRLRequest{Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	fullN, ok1 := new(big.Int).SetString(full.Number, 10)
	deltaN, ok2 := new(big.Int).SetString(delta.Number, 10)
	if !ok1 || !ok2 || deltaN.Cmp(fullN) <= 0 || full.Entries != 1 || full.Delta || !delta.Delta || delta.Entries != 1 {
		t.Fatalf("CRLs: full %+v delta %+v", full, delta)
	}
	if !delta.NextUpdate.AsTime().After(delta.ThisUpdate.AsTime()) || delta.Url != s.BaseURL()+"/CertEnroll/certsrv%20Test%20CA+.crl" {
		t.Fatalf("delta CRL times or URL: %+v", delta)
	}

	cac, err := c.admin.GetCACertificate(ctx, &certsrvv1.GetCACertificateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cac.Certificate, s.CA.Certificate().Raw) || len(cac.Chain) != 0 {
		t.Fatalf("GetCACertificate: %d bytes, chain %d", len(cac.Certificate), len(cac.Chain))
	}

	kb, err := c.admin.BackupKey(ctx, &certsrvv1.BackupKeyRequest{Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	key, cert, _, err := ca.ImportPKCS12(kb.Pkcs12, "correct horse battery")
	if err != nil {
		t.Fatalf("the key backup does not open: %v", err)
	}
	if kb.FileName != testserver.CAName+".p12" || !cert.Equal(s.CA.Certificate()) || ca.KeyMatchesCert(key, cert) != nil {
		t.Fatalf("key backup %q does not hold the CA key and certificate", kb.FileName)
	}

	if _, err := c.admin.ImportCertificate(ctx, &certsrvv1.ImportCertificateRequest{Certificate: r.Certificate.Der}); code(err) != apierr.AlreadyExists {
		t.Fatalf("import of a stored certificate: %v, want AlreadyExists", err)
	}
	if _, err := c.admin.GrantRole(ctx, &certsrvv1.GrantRoleRequest{Principal: "x", Roles: []string{"Reader"}, PublicKey: []byte("junk")}); code(err) != apierr.InvalidArg {
		t.Fatalf("GrantRole with a junk key: %v, want InvalidArg", err)
	}
	if _, err := c.admin.Revoke(ctx, &certsrvv1.RevokeRequest{Serial: r.Certificate.Serial, RevokedAt: &timestamppb.Timestamp{Seconds: -1 << 62}}); code(err) != apierr.InvalidArg {
		t.Fatalf("Revoke with an invalid time: %v, want InvalidArg", err)
	}
}

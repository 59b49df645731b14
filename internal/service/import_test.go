package service

import (
	"context"
	"crypto/x509"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

// issueOutside signs a certificate with c's key without recording it, as a
// CA whose log was lost after issuing would have.
func issueOutside(t *testing.T, c *CA, host string) *x509.Certificate {
	t.Helper()
	p, err := ca.FindProfile(c.Profiles(), ca.ProfileTLSServer)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.CheckCSR(serverCSR(t, host), p)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := ca.NewSerial()
	if err != nil {
		t.Fatal(err)
	}
	der, err := c.auth.Issue(csr, p, serial, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return parseCert(t, der)
}

func TestImportCertificate(t *testing.T) {
	c := newCA(t)
	ctx := context.Background()
	lost := issueOutside(t, c, "lost.example.test")
	serial := ca.SerialString(lost.SerialNumber)

	cert, err := c.ImportCertificate(ctx, ca.EncodeCertsPEM(lost))
	if err != nil {
		t.Fatal(err)
	}
	if cert.Serial != serial || !cert.NotAfter.Equal(lost.NotAfter) {
		t.Errorf("imported = %s until %v", cert.Serial, cert.NotAfter)
	}
	r, err := c.Request(ctx, cert.RequestID)
	if err != nil || !r.Imported || r.Status != store.StatusIssued {
		t.Fatalf("imported request = %+v, %v", r, err)
	}
	if stored, err := c.CertificateBySerial(ctx, serial); err != nil || !reflect.DeepEqual(stored, cert) {
		t.Errorf("ImportCertificate answered\n%+v\nthe database holds\n%+v (%v)", cert, stored, err)
	}
	// An imported certificate can be revoked and appears on the CRL.
	if _, err := c.Revoke(ctx, serial, "keyCompromise", time.Time{}); err != nil {
		t.Fatal(err)
	}
	info, err := c.PublishCRL(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	crl, _ := readCRL(t, info.Path)
	if _, ok := entries(crl)[serial]; !ok {
		t.Errorf("imported and revoked %s not on the CRL", serial)
	}

	before := lastLSN(c)
	_, err = c.ImportCertificate(ctx, lost.Raw)
	wantCode(t, err, apierr.AlreadyExists)
	if !errors.Is(err, store.ErrDuplicateSerial) {
		t.Errorf("duplicate import = %v, want store.ErrDuplicateSerial as cause", err)
	}

	// A certificate from another CA, one from another CA with the same name
	// (same issuer DN, other key), the CA's own certificate, and garbage.
	other := newCA(t, func(o *InitOptions) { o.Name = "Other CA" })
	twin := newCA(t)
	for name, tc := range map[string]struct {
		data []byte
		code apierr.Code
	}{
		"other CA":         {issueOutside(t, other, "x.example.test").Raw, apierr.PolicyDenied},
		"same-name CA":     {issueOutside(t, twin, "y.example.test").Raw, apierr.PolicyDenied},
		"the CA itself":    {c.Certificate().Raw, apierr.PolicyDenied},
		"garbage":          {[]byte("not a certificate"), apierr.BadRequest},
		"truncated":        {lost.Raw[:len(lost.Raw)-10], apierr.BadRequest},
		"two PEM blocks":   {append(ca.EncodeCertsPEM(lost), ca.EncodeCertsPEM(lost)...), apierr.BadRequest},
		"oversized import": {make([]byte, ca.MaxCSRSize+1), apierr.TooLarge},
	} {
		_, err := c.ImportCertificate(ctx, tc.data)
		if !isCode(err, tc.code) {
			t.Errorf("%s: ImportCertificate = %v, want %s", name, err, tc.code.Reason)
		}
	}
	if lastLSN(c) != before {
		t.Errorf("refused imports wrote %d log records", lastLSN(c)-before)
	}
}

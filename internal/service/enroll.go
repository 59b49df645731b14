package service

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

// Request is a request as the CA shows it: the stored request and, once
// issued, its certificate (Certificate is nil before). It is the store's
// type; the service adds no fields.
type Request = store.Request

// maxSerialAttempts bounds the retries when a fresh random serial number
// collides with a stored one (with 127 random bits this does not happen in
// practice; the bound keeps a broken random source from looping).
const maxSerialAttempts = 4

// profile returns the profile called name ("" means DefaultProfile), or a
// PolicyDenied error.
func (c *CA) profile(name string) (ca.Profile, error) {
	if name == "" {
		name = c.defaultProfile
	}
	p, ok := c.profileByName[name]
	if !ok {
		return ca.Profile{}, apierr.New(apierr.PolicyDenied, "profile %q: %w", name, ca.ErrUnknownProfile)
	}
	return p, nil
}

// newRequest describes a checked CSR for the store: its DER, subject,
// requested names (as "DNS:", "IP:", "email:" and "URI:" strings), the
// profile and the requester.
func newRequest(csr *x509.CertificateRequest, profile, principal string) store.NewRequest {
	sans := make([]string, 0, len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs))
	for _, d := range csr.DNSNames {
		sans = append(sans, "DNS:"+d)
	}
	for _, ip := range csr.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	for _, e := range csr.EmailAddresses {
		sans = append(sans, "email:"+e)
	}
	for _, u := range csr.URIs {
		sans = append(sans, "URI:"+u.String())
	}
	return store.NewRequest{
		CSR:       csr.Raw,
		Subject:   csr.Subject.String(),
		Profile:   profile,
		Requester: principal,
		SANs:      sans,
	}
}

// issue signs a certificate for a checked request with a fresh serial.
// The stored fields come from what the ca package encoded, so the new
// certificate is not parsed again.
func (c *CA) issue(csr *x509.CertificateRequest, p ca.Profile) (store.NewCertificate, error) {
	serial, err := ca.NewSerial()
	if err != nil {
		return store.NewCertificate{}, internal("issue certificate", err)
	}
	iss, err := c.auth.IssueCertificate(csr, p, serial, c.now())
	if err != nil {
		return store.NewCertificate{}, csrError(err)
	}
	return store.NewCertificate{
		Serial:    ca.SerialString(serial),
		DER:       iss.DER,
		Subject:   iss.Subject.String(),
		NotBefore: iss.NotBefore,
		NotAfter:  iss.NotAfter,
	}, nil
}

// Submit checks a PKCS#10 request (PEM or DER) from principal against
// profile ("" means DefaultProfile) and records it. Under an auto-issue
// profile the certificate is signed at once and request and certificate
// are written in one durable record; otherwise the request is recorded as
// pending for an officer. A request that fails a check writes nothing:
// too large is TooLarge; not a CSR, or a bad self-signature, BadRequest;
// an unknown profile, a key, subject or alternative name the profile
// refuses, or a name outside the name constraints of the CA certificate or
// its chain, PolicyDenied. The ca package's sentinel stays the cause
// (errors.Is(err, ca.ErrBadSignature) and so on).
func (c *CA) Submit(ctx context.Context, principal string, csrData []byte, profile string) (*Request, error) {
	if principal == "" {
		return nil, apierr.New(apierr.InvalidArg, "submit: no requester")
	}
	p, err := c.profile(profile)
	if err != nil {
		return nil, err
	}
	csr, err := ca.CheckCSR(csrData, p)
	if err != nil {
		return nil, csrError(err)
	}
	nr := newRequest(csr, p.Name, principal)
	if !p.AutoIssue {
		// Refused now rather than when an officer approves it: a name
		// outside the CA certificate's name constraints.
		if err := c.auth.CheckNameConstraints(csr, p); err != nil {
			return nil, csrError(err)
		}
		r, err := c.db.SubmitRequest(ctx, nr)
		if err != nil {
			return nil, storeError("submit request", err)
		}
		c.change(ctx, "request pending", "request", r.ID, "subject", r.Subject, "profile", r.Profile, "requester", r.Requester, "lsn", r.SubmittedLSN)
		return &r, nil
	}
	for attempt := 1; ; attempt++ {
		nc, err := c.issue(csr, p)
		if err != nil {
			return nil, err
		}
		r, cert, err := c.db.Enroll(ctx, nr, nc)
		if errors.Is(err, store.ErrDuplicateSerial) && attempt < maxSerialAttempts {
			c.logger.Warn("serial number collision; issuing again with a new serial", "serial", nc.Serial)
			continue
		}
		if err != nil {
			return nil, storeError("enroll", err)
		}
		if r.Certificate == nil {
			r.Certificate = &cert
		}
		c.logIssued(ctx, &r, cert, "enrolled")
		return &r, nil
	}
}

// Request returns request id with its certificate, or NoRequest.
func (c *CA) Request(ctx context.Context, id int64) (*Request, error) {
	r, err := c.db.Request(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.New(apierr.NoRequest, "request %d does not exist", id)
		}
		return nil, internal(fmt.Sprintf("read request %d", id), err)
	}
	return &r, nil
}

// pending returns request id if it is pending: NoRequest if it does not
// exist, BadRequestStatus if it was already issued or denied.
func (c *CA) pending(ctx context.Context, id int64) (*Request, error) {
	r, err := c.Request(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Status != store.StatusPending {
		return nil, apierr.New(apierr.BadRequestStatus, "request %d is %s, not pending", id, r.Status)
	}
	return r, nil
}

// Approve issues pending request id (an officer's resubmit). The stored
// request is checked again against its profile as configured now, so a
// request whose profile was removed or tightened since it was submitted is
// refused (PolicyDenied) and stays pending. NoRequest if id does not exist;
// BadRequestStatus if it is not pending (also when another officer
// resolved it a moment earlier).
func (c *CA) Approve(ctx context.Context, id int64) (*Request, error) {
	r, err := c.pending(ctx, id)
	if err != nil {
		return nil, err
	}
	p, err := c.profile(r.Profile)
	if err != nil {
		return nil, err
	}
	csr, err := ca.CheckCSR(r.CSR, p)
	if err != nil {
		return nil, csrError(err)
	}
	for attempt := 1; ; attempt++ {
		nc, err := c.issue(csr, p)
		if err != nil {
			return nil, err
		}
		cert, err := c.db.IssueRequest(ctx, id, nc)
		if errors.Is(err, store.ErrDuplicateSerial) && attempt < maxSerialAttempts {
			continue
		}
		if err != nil {
			return nil, storeError(fmt.Sprintf("approve request %d", id), err)
		}
		c.logIssued(ctx, r, cert, "approved")
		// The answer is built from what the issue wrote, not read back:
		// while the database is stalled on a full disk the record is durable
		// in the log but not yet in SQLite, and a read would say pending.
		out := *r
		out.Status, out.Resolved, out.ResolvedLSN, out.Certificate = store.StatusIssued, cert.Issued, cert.IssuedLSN, &cert
		return &out, nil
	}
}

// logIssued writes the log line of an issuance: request r's certificate
// cert, issued as how says ("enrolled" automatically, or "approved" by an
// officer). Every change to the database has such a line with its LSN, so
// that an operator can choose a point for certsrv restore --until.
func (c *CA) logIssued(ctx context.Context, r *Request, cert store.Certificate, how string) {
	c.change(ctx, "certificate issued", "request", r.ID, "serial", cert.Serial, "subject", cert.Subject,
		"profile", r.Profile, "requester", r.Requester, "how", how, "lsn", cert.IssuedLSN)
}

// Deny denies pending request id with reason (free text, may be empty).
// NoRequest if id does not exist; BadRequestStatus if it is not pending.
func (c *CA) Deny(ctx context.Context, id int64, reason string) (*Request, error) {
	r, err := c.pending(ctx, id)
	if err != nil {
		return nil, err
	}
	at, lsn, err := c.db.DenyRequest(ctx, id, reason)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.New(apierr.NoRequest, "request %d does not exist", id)
		}
		return nil, storeError(fmt.Sprintf("deny request %d", id), err)
	}
	c.change(ctx, "request denied", "request", id, "subject", r.Subject, "reason", reason, "lsn", lsn)
	// Answered from what the denial wrote, not read back (see Approve).
	out := *r
	out.Status, out.Resolved, out.ResolvedLSN, out.DenyReason = store.StatusDenied, at, lsn, reason
	return &out, nil
}

// View returns the requests f selects, ordered by request ID, each with
// its certificate once issued. f.Serial may be in any form ParseSerial
// reads; a malformed serial is InvalidArg.
func (c *CA) View(ctx context.Context, f store.Filter) ([]*Request, error) {
	if f.Serial != "" {
		n, err := ca.ParseSerial(f.Serial)
		if err != nil {
			return nil, apierr.New(apierr.InvalidArg, "%w", err)
		}
		f.Serial = ca.SerialString(n)
	}
	if f.Limit < 0 {
		return nil, apierr.New(apierr.InvalidArg, "negative limit %d", f.Limit)
	}
	rs, err := c.db.Requests(ctx, f)
	if err != nil {
		return nil, storeError("view", err)
	}
	out := make([]*Request, len(rs))
	for i := range rs {
		out[i] = &rs[i]
	}
	return out, nil
}

// CertificateBySerial returns the certificate with serial (any form ParseSerial
// reads): InvalidArg for a malformed serial, NotFound for an unknown one.
func (c *CA) CertificateBySerial(ctx context.Context, serial string) (*store.Certificate, error) {
	s, err := canonicalSerial(serial)
	if err != nil {
		return nil, err
	}
	cert, err := c.db.CertificateBySerial(ctx, s)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.New(apierr.NotFound, "certificate %s does not exist", s)
		}
		return nil, internal("read certificate "+s, err)
	}
	return &cert, nil
}

// canonicalSerial reads a serial in any form ParseSerial accepts and
// returns its canonical form, or an InvalidArg error.
func canonicalSerial(s string) (string, error) {
	n, err := ca.ParseSerial(s)
	if err != nil {
		return "", apierr.New(apierr.InvalidArg, "%w", err)
	}
	return ca.SerialString(n), nil
}

// ImportCertificate adds a certificate this CA issued but the database does
// not hold (certificates issued after the last backup when the logs were
// lost). data is one certificate, PEM or DER. A certificate that does not
// parse is BadRequest; one this CA's key did not sign, or a CA
// certificate, PolicyDenied; one whose serial is already stored,
// AlreadyExists. The imported certificate gets a new request ID and is
// marked imported.
func (c *CA) ImportCertificate(ctx context.Context, data []byte) (*store.Certificate, error) {
	if len(data) > ca.MaxCSRSize {
		return nil, apierr.New(apierr.TooLarge, "certificate of %d bytes exceeds %d", len(data), ca.MaxCSRSize)
	}
	// DER is taken exactly as given: trimming "white space" would cut a
	// DER encoding whose last byte happens to be 0x20 or 0x0A.
	der := data
	if t := bytes.TrimSpace(data); bytes.HasPrefix(t, []byte("-----BEGIN")) {
		block, rest := pem.Decode(t)
		if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
			return nil, apierr.New(apierr.BadRequest, "want exactly one CERTIFICATE PEM block: %w", ca.ErrMalformedCert)
		}
		der = block.Bytes
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, apierr.New(apierr.BadRequest, "not a certificate: %v: %w", err, ca.ErrMalformedCert)
	}
	if !bytes.Equal(cert.RawIssuer, c.auth.Cert.RawSubject) {
		return nil, apierr.New(apierr.PolicyDenied, "certificate %s was issued by %q, not by this CA", ca.SerialString(cert.SerialNumber), cert.Issuer.String())
	}
	if err := cert.CheckSignatureFrom(c.auth.Cert); err != nil {
		return nil, apierr.New(apierr.PolicyDenied, "certificate %s is not signed by this CA's key: %v", ca.SerialString(cert.SerialNumber), err)
	}
	if cert.IsCA {
		return nil, apierr.New(apierr.PolicyDenied, "certificate %s is a CA certificate; this CA issues only end-entity certificates", ca.SerialString(cert.SerialNumber))
	}
	if err := ca.CheckSerial(cert.SerialNumber); err != nil {
		return nil, apierr.New(apierr.BadRequest, "%w", err)
	}
	serial := ca.SerialString(cert.SerialNumber)
	imported, err := c.db.ImportCertificate(ctx, store.NewCertificate{
		Serial:    serial,
		DER:       cert.Raw,
		Subject:   cert.Subject.String(),
		NotBefore: cert.NotBefore,
		NotAfter:  cert.NotAfter,
	})
	if err != nil {
		if errors.Is(err, store.ErrDuplicateSerial) {
			return nil, apierr.New(apierr.AlreadyExists, "certificate %s is already in the database: %w", serial, store.ErrDuplicateSerial)
		}
		return nil, storeError("import certificate "+serial, err)
	}
	c.change(ctx, "certificate imported", "serial", serial, "subject", cert.Subject.String(), "lsn", imported.ResolvedLSN)
	// Answered from what the import wrote, not read back (see Approve).
	return imported.Certificate, nil
}

package certadm

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// The roles a principal can hold, as the server names them (SPEC §5).
const (
	RoleAdministrator = "Administrator" // configuration and roles
	RoleOfficer       = "Officer"       // approve, deny, revoke, CRLs
	RoleAuditor       = "Auditor"       // read audit data
	RoleOperator      = "Operator"      // backup and restore
	RoleEnrollee      = "Enrollee"      // submit, fetch own requests
	RoleReader        = "Reader"        // read requests and certificates
)

// RequestStatus is the disposition of a certificate request.
type RequestStatus int

// The request statuses. The zero value means "any" in a ViewFilter.
const (
	StatusAny     RequestStatus = 0
	StatusPending RequestStatus = 1
	StatusIssued  RequestStatus = 2
	StatusDenied  RequestStatus = 3
)

// String returns "pending", "issued", "denied", or "any" for the zero value.
func (s RequestStatus) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusIssued:
		return "issued"
	case StatusDenied:
		return "denied"
	case StatusAny:
		return "any"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// ParseRequestStatus reads "pending", "issued" or "denied" in any case, and
// "" or "any" as StatusAny. Other text gives ErrInvalidArg.
func ParseRequestStatus(s string) (RequestStatus, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "any":
		return StatusAny, nil
	case "pending":
		return StatusPending, nil
	case "issued":
		return StatusIssued, nil
	case "denied":
		return StatusDenied, nil
	}
	return 0, newError(condInvalidArg, "parse status", "unknown request status %q (want pending, issued or denied)", s)
}

// Request is a certificate request and, once issued, its certificate.
type Request struct {
	// ID is the request id the CA assigned.
	ID int64
	// Status is the request's disposition.
	Status RequestStatus
	// Profile is the name of the profile the request was submitted under.
	Profile string
	// Requester is the principal that submitted the request.
	Requester string
	// Subject is the requested subject, as a distinguished-name string.
	Subject string
	// SubmittedAt is when the request arrived.
	SubmittedAt time.Time
	// ResolvedAt is when the request was issued or denied; zero while
	// pending.
	ResolvedAt time.Time
	// DenyReason is the reason given when the request was denied.
	DenyReason string
	// Certificate is the issued certificate; nil unless Status is
	// StatusIssued.
	Certificate *Certificate
}

// Certificate is a certificate the CA issued.
type Certificate struct {
	// Serial is the serial number in canonical upper-case hex (the minimal
	// big-endian bytes, an even number of digits).
	Serial string
	// DER is the certificate.
	DER []byte
	// Subject is the subject distinguished name.
	Subject string
	// NotBefore and NotAfter bound the validity period.
	NotBefore, NotAfter time.Time
	// Revoked reports whether the certificate is revoked (including on hold).
	Revoked bool
	// RevokedAt is the revocation time; zero unless Revoked.
	RevokedAt time.Time
	// RevocationReason is the RFC 5280 reason code; meaningful only when
	// Revoked.
	RevocationReason int
	// RequestID is the id of the request the certificate was issued for;
	// 0 for an imported certificate the CA has no request for.
	RequestID int64
}

// PEM returns the certificate PEM-encoded.
func (c *Certificate) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
}

// X509 parses the certificate. It fails with ErrInvalidData when the
// server sent bytes that are not a certificate.
func (c *Certificate) X509() (*x509.Certificate, error) {
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return nil, newError(condInvalidData, "parse certificate", "certificate %s: %w", c.Serial, err)
	}
	return cert, nil
}

func requestFromWire(r *certsrvv1.RequestInfo) *Request {
	if r == nil {
		return nil
	}
	return &Request{
		ID:          r.GetRequestId(),
		Status:      RequestStatus(r.GetStatus()),
		Profile:     r.GetProfile(),
		Requester:   r.GetRequester(),
		Subject:     r.GetSubject(),
		SubmittedAt: timeOf(r.GetSubmittedAt()),
		ResolvedAt:  timeOf(r.GetResolvedAt()),
		DenyReason:  r.GetDenyReason(),
		Certificate: certificateFromWire(r.GetCertificate()),
	}
}

func certificateFromWire(c *certsrvv1.CertificateInfo) *Certificate {
	if c == nil {
		return nil
	}
	return &Certificate{
		Serial:           c.GetSerial(),
		DER:              c.GetDer(),
		Subject:          c.GetSubject(),
		NotBefore:        timeOf(c.GetNotBefore()),
		NotAfter:         timeOf(c.GetNotAfter()),
		Revoked:          c.GetRevoked(),
		RevokedAt:        timeOf(c.GetRevokedAt()),
		RevocationReason: int(c.GetRevocationReason()),
		RequestID:        c.GetRequestId(),
	}
}

// Submit sends a PKCS#10 certificate request, DER or PEM, under the named
// profile ("" means the server's default, "tls-server"). The CA's policy
// issues it at once (StatusIssued, with the certificate) or leaves it
// pending for an Officer. Role: Enrollee. A malformed request gives
// ErrBadRequest, one the policy refuses ErrPolicyDenied.
func (c *Client) Submit(ctx context.Context, csr []byte, profile string) (*Request, error) {
	r, err := c.admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr, Profile: profile})
	if err != nil {
		return nil, fromRPC(ctx, "submit", err)
	}
	return requestFromWire(r), nil
}

// GetRequest returns request id with its certificate once issued. Roles:
// Enrollee (own requests only), Officer, Auditor, Reader. An unknown id
// gives ErrNoRequest.
func (c *Client) GetRequest(ctx context.Context, id int64) (*Request, error) {
	r, err := c.admin.GetRequest(ctx, &certsrvv1.GetRequestRequest{RequestId: id})
	if err != nil {
		return nil, fromRPC(ctx, opf("get request %d", id), err)
	}
	return requestFromWire(r), nil
}

// Approve issues pending request id. Role: Officer. A request that is not
// pending gives ErrBadRequestStatus.
func (c *Client) Approve(ctx context.Context, id int64) (*Request, error) {
	r, err := c.admin.Approve(ctx, &certsrvv1.ApproveRequest{RequestId: id})
	if err != nil {
		return nil, fromRPC(ctx, opf("approve request %d", id), err)
	}
	return requestFromWire(r), nil
}

// Deny denies pending request id, recording reason (which may be empty).
// Role: Officer. A request that is not pending gives ErrBadRequestStatus.
func (c *Client) Deny(ctx context.Context, id int64, reason string) (*Request, error) {
	r, err := c.admin.Deny(ctx, &certsrvv1.DenyRequest{RequestId: id, Reason: reason})
	if err != nil {
		return nil, fromRPC(ctx, opf("deny request %d", id), err)
	}
	return requestFromWire(r), nil
}

// Revoke revokes the certificate with the given serial number (hex in any
// case, colons and leading zeros allowed, as openssl prints it) for reason,
// an RFC 5280 reason name ("keyCompromise") or number ("1"); an empty
// reason means unspecified. The revocation time is now. Role: Officer. It
// returns the certificate as revoked.
func (c *Client) Revoke(ctx context.Context, serial, reason string) (*Certificate, error) {
	r, err := c.admin.Revoke(ctx, &certsrvv1.RevokeRequest{Serial: serial, Reason: reason})
	if err != nil {
		return nil, fromRPC(ctx, opf("revoke %s", serial), err)
	}
	return certificateFromWire(r.GetCertificate()), nil
}

// Unrevoke releases the certificate with the given serial from
// certificateHold. Role: Officer. A certificate revoked for another reason
// gives ErrBadRequestStatus.
func (c *Client) Unrevoke(ctx context.Context, serial string) (*Certificate, error) {
	r, err := c.admin.Unrevoke(ctx, &certsrvv1.UnrevokeRequest{Serial: serial})
	if err != nil {
		return nil, fromRPC(ctx, opf("unrevoke %s", serial), err)
	}
	return certificateFromWire(r.GetCertificate()), nil
}

// CRLInfo describes a published CRL.
type CRLInfo struct {
	// Number is the CRL number in decimal.
	Number string
	// Delta reports whether this is a delta CRL.
	Delta bool
	// ThisUpdate and NextUpdate are the CRL's validity.
	ThisUpdate, NextUpdate time.Time
	// URL is where the CRL is published over HTTP.
	URL string
	// Entries is the number of revoked certificates listed.
	Entries int
}

// PublishCRL publishes a full CRL, or a delta CRL when delta is true, now.
// Role: Officer.
func (c *Client) PublishCRL(ctx context.Context, delta bool) (*CRLInfo, error) {
	r, err := c.admin.PublishCRL(ctx, &certsrvv1.PublishCRLRequest{Delta: delta})
	if err != nil {
		return nil, fromRPC(ctx, "publish crl", err)
	}
	return &CRLInfo{
		Number:     r.GetNumber(),
		Delta:      r.GetDelta(),
		ThisUpdate: timeOf(r.GetThisUpdate()),
		NextUpdate: timeOf(r.GetNextUpdate()),
		URL:        r.GetUrl(),
		Entries:    int(r.GetEntries()),
	}, nil
}

// ViewFilter selects requests for View. Every zero field means "no
// condition"; the conditions that are set must all hold.
type ViewFilter struct {
	// Status selects requests with this status; StatusAny selects all. The
	// server treats StatusIssued as AD CS's "Issued Certificates" view:
	// revoked certificates are not in it (select them with RevokedOnly).
	Status RequestStatus
	// Serial selects the request whose certificate has this serial (hex as
	// Revoke accepts it).
	Serial string
	// RequestID selects one request.
	RequestID int64
	// SubjectContains selects requests whose subject contains this text.
	SubjectContains string
	// ExpiresBefore and ExpiresAfter select certificates whose NotAfter is
	// before, respectively after, the given time.
	ExpiresBefore, ExpiresAfter time.Time
	// RevokedOnly selects revoked certificates.
	RevokedOnly bool
	// Requester selects requests submitted by this principal.
	Requester string
	// AfterID selects requests whose id is greater than AfterID. Results
	// come in id order, so passing the last id of one answer as the next
	// call's AfterID pages through any number of requests; a page that
	// comes back empty is the end. A negative AfterID gives ErrInvalidArg.
	// A server older than this field ignores it and returns the first page
	// again.
	AfterID int64
	// Limit caps the number of results; 0 means the server's default (1000
	// requests; the server returns at most 10000 whatever is asked, so a
	// caller that wants every match pages with AfterID). A negative Limit
	// gives ErrInvalidArg.
	Limit int
}

// View lists requests and their certificates that match f, in request-id
// order. Roles: Officer, Auditor, Reader.
func (c *Client) View(ctx context.Context, f ViewFilter) ([]*Request, error) {
	const op = "view"
	if f.Limit < 0 || f.Limit > 1<<31-1 {
		return nil, newError(condInvalidArg, op, "limit %d out of range", f.Limit)
	}
	if f.AfterID < 0 {
		return nil, newError(condInvalidArg, op, "after id %d out of range", f.AfterID)
	}
	req := &certsrvv1.ViewRequest{
		Status:          certsrvv1.RequestStatus(f.Status),
		Serial:          f.Serial,
		RequestId:       f.RequestID,
		SubjectContains: f.SubjectContains,
		RevokedOnly:     f.RevokedOnly,
		Requester:       f.Requester,
		AfterId:         f.AfterID,
		Limit:           int32(f.Limit),
	}
	if !f.ExpiresBefore.IsZero() {
		req.ExpiresBefore = timestamppb.New(f.ExpiresBefore)
	}
	if !f.ExpiresAfter.IsZero() {
		req.ExpiresAfter = timestamppb.New(f.ExpiresAfter)
	}
	r, err := c.admin.View(ctx, req)
	if err != nil {
		return nil, fromRPC(ctx, op, err)
	}
	out := make([]*Request, 0, len(r.GetRequests()))
	for _, q := range r.GetRequests() {
		out = append(out, requestFromWire(q))
	}
	return out, nil
}

// CACertificate returns the CA certificate and the chain of issuers above
// it (empty for a root CA). Any role may ask. Bytes that do not parse give
// ErrInvalidData.
func (c *Client) CACertificate(ctx context.Context) (cert *x509.Certificate, chain []*x509.Certificate, err error) {
	const op = "get ca certificate"
	r, err := c.admin.GetCACertificate(ctx, &certsrvv1.GetCACertificateRequest{})
	if err != nil {
		return nil, nil, fromRPC(ctx, op, err)
	}
	cert, err = x509.ParseCertificate(r.GetCertificate())
	if err != nil {
		return nil, nil, newError(condInvalidData, op, "CA certificate: %w", err)
	}
	for i, der := range r.GetChain() {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, newError(condInvalidData, op, "chain certificate %d: %w", i, err)
		}
		chain = append(chain, c)
	}
	return cert, chain, nil
}

// Credential is what GrantRole returns: a client certificate for the key
// the caller holds, and the trust anchor that verifies the server. Written
// next to the private key as client.crt, trust.crt and client.key, it forms
// a credentials directory for WithCredentials.
type Credential struct {
	// Certificate is the new client certificate.
	Certificate *x509.Certificate
	// TrustAnchor is the admin trust anchor.
	TrustAnchor *x509.Certificate
}

// GrantRole creates principal, or replaces its roles, and signs a client
// certificate for pub, the public key of a credential the caller generated
// (the private key never leaves the caller). roles are names such as
// RoleOfficer. Role: Administrator. A key type the server does not accept
// gives ErrInvalidArg.
func (c *Client) GrantRole(ctx context.Context, principal string, roles []string, pub crypto.PublicKey) (*Credential, error) {
	op := opf("grant roles to %s", principal)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, newError(condInvalidArg, op, "public key: %w", err)
	}
	r, err := c.admin.GrantRole(ctx, &certsrvv1.GrantRoleRequest{Principal: principal, Roles: roles, PublicKey: der})
	if err != nil {
		return nil, fromRPC(ctx, op, err)
	}
	cert, err := x509.ParseCertificate(r.GetCertificate())
	if err != nil {
		return nil, newError(condInvalidData, op, "client certificate: %w", err)
	}
	anchor, err := x509.ParseCertificate(r.GetTrustAnchor())
	if err != nil {
		return nil, newError(condInvalidData, op, "trust anchor: %w", err)
	}
	return &Credential{Certificate: cert, TrustAnchor: anchor}, nil
}

// RevokeRole removes principal; its credentials stop working at once. Role:
// Administrator. An unknown principal gives ErrNotFound.
func (c *Client) RevokeRole(ctx context.Context, principal string) error {
	_, err := c.admin.RevokeRole(ctx, &certsrvv1.RevokeRoleRequest{Principal: principal})
	return fromRPC(ctx, opf("revoke principal %s", principal), err)
}

// BackupKey returns the CA key and chain as a PKCS#12 file encrypted with
// password, and the file name the server suggests ("<CA name>.p12"). The
// name comes from the server: a caller that writes it to disk must check
// that it is a plain file name. Role: Operator. An empty password gives
// ErrInvalidArg without a call to the server.
func (c *Client) BackupKey(ctx context.Context, password string) (pkcs12 []byte, fileName string, err error) {
	const op = "backup key"
	if password == "" {
		return nil, "", newError(condInvalidArg, op, "empty password")
	}
	r, err := c.admin.BackupKey(ctx, &certsrvv1.BackupKeyRequest{Password: password})
	if err != nil {
		return nil, "", fromRPC(ctx, op, err)
	}
	return r.GetPkcs12(), r.GetFileName(), nil
}

// ImportCertificate re-adds a certificate this CA issued, DER or PEM
// (ImportCertificate), for example one issued after the last backup when
// the logs that recorded it were lost. Role: Officer. A certificate this CA
// did not issue is refused with ErrPolicyDenied, bytes that are not a
// certificate with ErrBadRequest, and a certificate the database holds
// already with ErrAlreadyExists.
func (c *Client) ImportCertificate(ctx context.Context, cert []byte) (*Certificate, error) {
	r, err := c.admin.ImportCertificate(ctx, &certsrvv1.ImportCertificateRequest{Certificate: cert})
	if err != nil {
		return nil, fromRPC(ctx, "import certificate", err)
	}
	return certificateFromWire(r.GetCertificate()), nil
}

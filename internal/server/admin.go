package server

import (
	"context"
	"crypto/x509"
	"errors"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/service"
)

// adminService implements the Admin service over the CA. The interceptors
// have authenticated the caller and checked its roles before any method
// runs; every method finds the caller with CallerFrom.
type adminService struct {
	certsrvv1.UnimplementedAdminServer
	s *Server
}

// caller returns the RPC's authenticated caller. The interceptors always
// set it; its absence means a handler was reached some other way, which is
// refused.
func caller(ctx context.Context) (*Caller, error) {
	c, ok := CallerFrom(ctx)
	if !ok {
		return nil, apierr.New(apierr.Unauthenticated, "no authenticated caller")
	}
	return c, nil
}

// Ping reports the server state, the CA name, and who the caller is.
func (a *adminService) Ping(ctx context.Context, _ *certsrvv1.PingRequest) (*certsrvv1.PingResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	state := certsrvv1.ServerState_SERVER_STATE_ONLINE
	if a.s.Suspended() {
		state = certsrvv1.ServerState_SERVER_STATE_SUSPENDED
	}
	r := &certsrvv1.PingResponse{
		State:     state,
		CaName:    a.s.ca.Name(),
		Principal: c.Principal,
		Roles:     c.Roles.Strings(),
		Version:   a.s.opts.Version,
	}
	if err := a.s.ca.WritesRefused(); err != nil {
		r.WritesRefused = err.Error()
	}
	return r, nil
}

// Submit sends a CSR on behalf of the caller, who becomes the requester.
func (a *adminService) Submit(ctx context.Context, req *certsrvv1.SubmitRequest) (*certsrvv1.RequestInfo, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	r, err := a.s.ca.Submit(ctx, c.Principal, req.GetCsr(), req.GetProfile())
	if err != nil {
		return nil, err
	}
	return requestInfo(r), nil
}

// GetRequest returns a request. A caller that holds only the Enrollee role
// among the roles GetRequest admits may read only requests it submitted;
// another's request gets the same NoRequest answer as a missing one.
func (a *adminService) GetRequest(ctx context.Context, req *certsrvv1.GetRequestRequest) (*certsrvv1.RequestInfo, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	readsAll := c.Roles.Has(service.RoleOfficer) || c.Roles.Has(service.RoleAuditor) || c.Roles.Has(service.RoleReader)
	r, err := a.s.ca.Request(ctx, req.GetRequestId())
	if !readsAll && (errors.Is(err, &apierr.Error{Code: apierr.NoRequest}) || (err == nil && r.Requester != c.Principal)) {
		// The same answer for another's request and a missing one, so
		// that an Enrollee cannot learn which request ids exist.
		return nil, apierr.New(apierr.NoRequest, "request %d does not exist or was not submitted by %s", req.GetRequestId(), c.Principal)
	}
	if err != nil {
		return nil, err
	}
	return requestInfo(r), nil
}

// Approve issues a pending request.
func (a *adminService) Approve(ctx context.Context, req *certsrvv1.ApproveRequest) (*certsrvv1.RequestInfo, error) {
	r, err := a.s.ca.Approve(ctx, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return requestInfo(r), nil
}

// Deny denies a pending request.
func (a *adminService) Deny(ctx context.Context, req *certsrvv1.DenyRequest) (*certsrvv1.RequestInfo, error) {
	r, err := a.s.ca.Deny(ctx, req.GetRequestId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return requestInfo(r), nil
}

// Revoke revokes an issued certificate.
func (a *adminService) Revoke(ctx context.Context, req *certsrvv1.RevokeRequest) (*certsrvv1.RevokeResponse, error) {
	at, err := fromTS(req.GetRevokedAt())
	if err != nil {
		return nil, err
	}
	cert, err := a.s.ca.Revoke(ctx, req.GetSerial(), req.GetReason(), at)
	if err != nil {
		return nil, err
	}
	return &certsrvv1.RevokeResponse{Certificate: certificateInfo(cert)}, nil
}

// Unrevoke releases a certificate from certificateHold.
func (a *adminService) Unrevoke(ctx context.Context, req *certsrvv1.UnrevokeRequest) (*certsrvv1.RevokeResponse, error) {
	cert, err := a.s.ca.Unrevoke(ctx, req.GetSerial())
	if err != nil {
		return nil, err
	}
	return &certsrvv1.RevokeResponse{Certificate: certificateInfo(cert)}, nil
}

// PublishCRL publishes a full or delta CRL now.
func (a *adminService) PublishCRL(ctx context.Context, req *certsrvv1.PublishCRLRequest) (*certsrvv1.PublishCRLResponse, error) {
	info, err := a.s.ca.PublishCRL(ctx, req.GetDelta())
	if err != nil {
		return nil, err
	}
	out := &certsrvv1.PublishCRLResponse{
		Delta:      info.Delta,
		ThisUpdate: ts(info.ThisUpdate),
		NextUpdate: ts(info.NextUpdate),
		Url:        info.URL,
		Entries:    int32(info.Entries),
	}
	if info.Number != nil {
		out.Number = info.Number.String()
	}
	return out, nil
}

// View lists requests and certificates; see viewFilter for the filter.
func (a *adminService) View(ctx context.Context, req *certsrvv1.ViewRequest) (*certsrvv1.ViewResponse, error) {
	f, err := viewFilter(req)
	if err != nil {
		return nil, err
	}
	rs, err := a.s.ca.View(ctx, f)
	if err != nil {
		return nil, err
	}
	out := &certsrvv1.ViewResponse{Requests: make([]*certsrvv1.RequestInfo, len(rs))}
	for i, r := range rs {
		out.Requests[i] = requestInfo(r)
	}
	return out, nil
}

// GetCACertificate returns the CA certificate and the chain above it.
func (a *adminService) GetCACertificate(ctx context.Context, _ *certsrvv1.GetCACertificateRequest) (*certsrvv1.GetCACertificateResponse, error) {
	out := &certsrvv1.GetCACertificateResponse{Certificate: a.s.ca.Certificate().Raw}
	for _, c := range a.s.ca.Chain() {
		out.Chain = append(out.Chain, c.Raw)
	}
	return out, nil
}

// GrantRole grants roles and signs a client credential for the public key.
// The server forgets cached authorizations afterwards.
func (a *adminService) GrantRole(ctx context.Context, req *certsrvv1.GrantRoleRequest) (*certsrvv1.GrantRoleResponse, error) {
	if len(req.GetPublicKey()) == 0 {
		return nil, apierr.New(apierr.InvalidArg, "no public key for the credential")
	}
	pub, err := x509.ParsePKIXPublicKey(req.GetPublicKey())
	if err != nil {
		return nil, apierr.New(apierr.InvalidArg, "public key is not PKIX DER: %v", err)
	}
	defer a.s.cache.invalidate()
	certDER, trustDER, err := a.s.ca.GrantRole(ctx, req.GetPrincipal(), req.GetRoles(), pub)
	if err != nil {
		return nil, err
	}
	return &certsrvv1.GrantRoleResponse{Certificate: certDER, TrustAnchor: trustDER}, nil
}

// RevokeRole removes a principal. The server forgets cached
// authorizations, so the principal's next call is refused.
func (a *adminService) RevokeRole(ctx context.Context, req *certsrvv1.RevokeRoleRequest) (*certsrvv1.RevokeRoleResponse, error) {
	defer a.s.cache.invalidate()
	if err := a.s.ca.RevokeRole(ctx, req.GetPrincipal()); err != nil {
		return nil, err
	}
	return &certsrvv1.RevokeRoleResponse{}, nil
}

// BackupKey exports the CA key and chain as PKCS#12.
func (a *adminService) BackupKey(ctx context.Context, req *certsrvv1.BackupKeyRequest) (*certsrvv1.BackupKeyResponse, error) {
	p12, name, err := a.s.ca.BackupKey(ctx, req.GetPassword())
	if err != nil {
		return nil, err
	}
	return &certsrvv1.BackupKeyResponse{Pkcs12: p12, FileName: name}, nil
}

// ImportCertificate re-adds a certificate this CA issued.
func (a *adminService) ImportCertificate(ctx context.Context, req *certsrvv1.ImportCertificateRequest) (*certsrvv1.ImportCertificateResponse, error) {
	cert, err := a.s.ca.ImportCertificate(ctx, req.GetCertificate())
	if err != nil {
		return nil, err
	}
	return &certsrvv1.ImportCertificateResponse{Certificate: certificateInfo(cert)}, nil
}

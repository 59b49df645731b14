package server

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/store"
)

// View limits.
const (
	// DefaultViewLimit is the number of requests View returns when the
	// request asks for none in particular.
	DefaultViewLimit = 1000
	// MaxViewLimit caps the number View returns, whatever is asked.
	MaxViewLimit = 10000
)

// ts converts a time to a protobuf timestamp; the zero time gives nil
// (the field is absent on the wire).
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// fromTS converts an optional protobuf timestamp; absent gives the zero
// time.
func fromTS(t *timestamppb.Timestamp) (time.Time, error) {
	if t == nil {
		return time.Time{}, nil
	}
	if err := t.CheckValid(); err != nil {
		return time.Time{}, apierr.New(apierr.InvalidArg, "timestamp: %v", err)
	}
	return t.AsTime(), nil
}

// requestStatus maps a stored request state to the wire. A revoked
// certificate's request is ISSUED on the wire; the certificate says it is
// revoked.
func requestStatus(s store.Status) certsrvv1.RequestStatus {
	switch s {
	case store.StatusPending:
		return certsrvv1.RequestStatus_REQUEST_STATUS_PENDING
	case store.StatusIssued, store.StatusRevoked:
		return certsrvv1.RequestStatus_REQUEST_STATUS_ISSUED
	case store.StatusDenied:
		return certsrvv1.RequestStatus_REQUEST_STATUS_DENIED
	}
	return certsrvv1.RequestStatus_REQUEST_STATUS_UNSPECIFIED
}

// requestInfo converts a request (and its certificate, once issued).
func requestInfo(r *service.Request) *certsrvv1.RequestInfo {
	if r == nil {
		return nil
	}
	return &certsrvv1.RequestInfo{
		RequestId:   r.ID,
		Status:      requestStatus(r.Status),
		Profile:     r.Profile,
		Requester:   r.Requester,
		Subject:     r.Subject,
		SubmittedAt: ts(r.Submitted),
		ResolvedAt:  ts(r.Resolved),
		DenyReason:  r.DenyReason,
		Certificate: certificateInfo(r.Certificate),
	}
}

// certificateInfo converts a stored certificate.
func certificateInfo(c *store.Certificate) *certsrvv1.CertificateInfo {
	if c == nil {
		return nil
	}
	out := &certsrvv1.CertificateInfo{
		Serial:    c.Serial,
		Der:       c.DER,
		Subject:   c.Subject,
		NotBefore: ts(c.NotBefore),
		NotAfter:  ts(c.NotAfter),
		Revoked:   c.Revoked,
		RequestId: c.RequestID,
	}
	if c.Revoked {
		out.RevokedAt = ts(c.RevokedAt)
		out.RevocationReason = int32(c.RevocationReason)
	}
	return out
}

// viewFilter converts a View request to a store filter. status ISSUED
// selects issued certificates that are not revoked; revoked_only selects
// revoked ones (holds included) and may be combined with status
// UNSPECIFIED or ISSUED only. after_id selects requests with a greater id,
// so a client pages through a long list by passing the last id it got;
// negative is InvalidArg. limit 0 means DefaultViewLimit; larger than
// MaxViewLimit means MaxViewLimit; negative is InvalidArg.
func viewFilter(req *certsrvv1.ViewRequest) (store.Filter, error) {
	var f store.Filter
	switch req.GetStatus() {
	case certsrvv1.RequestStatus_REQUEST_STATUS_UNSPECIFIED:
	case certsrvv1.RequestStatus_REQUEST_STATUS_PENDING:
		f.Status = store.StatusPending
	case certsrvv1.RequestStatus_REQUEST_STATUS_ISSUED:
		f.Status = store.StatusIssued
	case certsrvv1.RequestStatus_REQUEST_STATUS_DENIED:
		f.Status = store.StatusDenied
	default:
		return f, apierr.New(apierr.InvalidArg, "unknown request status %d", req.GetStatus())
	}
	if req.GetRevokedOnly() {
		if f.Status != 0 && f.Status != store.StatusIssued {
			return f, apierr.New(apierr.InvalidArg, "revoked_only cannot be combined with status %s", f.Status)
		}
		f.Status = store.StatusRevoked
	}
	if req.GetAfterId() < 0 {
		return f, apierr.New(apierr.InvalidArg, "negative after_id %d", req.GetAfterId())
	}
	f.Serial = req.GetSerial()
	f.RequestID = req.GetRequestId()
	f.SubjectContains = req.GetSubjectContains()
	f.Requester = req.GetRequester()
	f.AfterID = req.GetAfterId()
	var err error
	if f.ExpiresBefore, err = fromTS(req.GetExpiresBefore()); err != nil {
		return f, err
	}
	if f.ExpiresAfter, err = fromTS(req.GetExpiresAfter()); err != nil {
		return f, err
	}
	switch limit := req.GetLimit(); {
	case limit < 0:
		return f, apierr.New(apierr.InvalidArg, "negative limit %d", limit)
	case limit == 0:
		f.Limit = DefaultViewLimit
	case limit > MaxViewLimit:
		f.Limit = MaxViewLimit
	default:
		f.Limit = int(limit)
	}
	return f, nil
}

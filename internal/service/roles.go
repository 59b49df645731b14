package service

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

// Role is one of the AD CS roles a principal can hold. The string value is
// the canonical name, as stored and as shown.
type Role string

// The roles (SPEC §5).
const (
	// RoleAdministrator manages configuration and roles.
	RoleAdministrator Role = "Administrator"
	// RoleOfficer approves, denies and revokes, and publishes CRLs.
	RoleOfficer Role = "Officer"
	// RoleAuditor reads audit data.
	RoleAuditor Role = "Auditor"
	// RoleOperator backs up and restores (the backup and restore privileges).
	RoleOperator Role = "Operator"
	// RoleEnrollee submits requests and fetches its own.
	RoleEnrollee Role = "Enrollee"
	// RoleReader reads requests and certificates.
	RoleReader Role = "Reader"
)

// AllRoles returns every role in canonical order.
func AllRoles() Roles {
	return Roles{RoleAdministrator, RoleOfficer, RoleAuditor, RoleOperator, RoleEnrollee, RoleReader}
}

// AdminPrincipal is the principal Init creates, holding every role.
const AdminPrincipal = "admin"

// ParseRole returns the role named s, ignoring case and surrounding space.
// An unknown name gives an apierr InvalidArg error.
func ParseRole(s string) (Role, error) {
	t := strings.TrimSpace(s)
	for _, r := range AllRoles() {
		if strings.EqualFold(t, string(r)) {
			return r, nil
		}
	}
	return "", apierr.New(apierr.InvalidArg, "unknown role %q (want one of %s)", s, strings.Join(AllRoles().Strings(), ", "))
}

// ParseRoles parses every name with ParseRole and returns the roles sorted
// in canonical order without duplicates. No names is an InvalidArg error.
func ParseRoles(names []string) (Roles, error) {
	if len(names) == 0 {
		return nil, apierr.New(apierr.InvalidArg, "no role given (want one or more of %s)", strings.Join(AllRoles().Strings(), ", "))
	}
	var out Roles
	for _, n := range names {
		r, err := ParseRole(n)
		if err != nil {
			return nil, err
		}
		if !out.Has(r) {
			out = append(out, r)
		}
	}
	return out.sorted(), nil
}

// Roles is a set of roles, kept in canonical order by this package.
type Roles []Role

// Has reports whether r is in the set.
func (rs Roles) Has(r Role) bool { return slices.Contains(rs, r) }

// Strings returns the role names.
func (rs Roles) Strings() []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// sorted returns the roles in the order of AllRoles.
func (rs Roles) sorted() Roles {
	var out Roles
	for _, r := range AllRoles() {
		if rs.Has(r) {
			out = append(out, r)
		}
	}
	return out
}

// Fingerprint returns the identity of a client certificate as the role
// table stores it: the lower-case hex SHA-256 of its DER, without
// separators. The admin API computes the caller's fingerprint with this
// function.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// normFingerprint accepts a fingerprint in upper or lower case, with or
// without ':' separators.
func normFingerprint(fp string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(fp), ":", ""))
}

// GrantRole adds roles to principal (creating it if new) and signs a client
// credential for pub with the admin trust anchor in tls/. It returns the
// client certificate's DER and the trust anchor's DER. Role names are
// matched case-insensitively; unknown names, an invalid principal name or
// an unsupported key are InvalidArg errors and nothing is written. Roles
// accumulate over grants: a grant never removes a role. The new
// certificate's fingerprint is registered for the principal in the same
// durable record, so the credential works as soon as GrantRole returns.
// A principal removed by RevokeRole cannot be granted roles again
// (BadRequestStatus); choose a new name.
func (c *CA) GrantRole(ctx context.Context, principal string, roles []string, pub crypto.PublicKey) (certDER, trustDER []byte, err error) {
	if err := ca.CheckPrincipal(principal); err != nil {
		return nil, nil, apierr.New(apierr.InvalidArg, "%w", err)
	}
	rs, err := ParseRoles(roles)
	if err != nil {
		return nil, nil, err
	}
	if pub == nil {
		return nil, nil, apierr.New(apierr.InvalidArg, "no public key for the credential")
	}
	if _, _, err := ca.KeyTypeOf(pub); err != nil {
		return nil, nil, apierr.New(apierr.InvalidArg, "credential key: %w", err)
	}
	if c.anchor == nil || c.anchorKey == nil {
		return nil, nil, internal("sign credential", ErrNoTrustAnchor)
	}
	p, err := c.db.Principal(ctx, principal)
	switch {
	case err == nil && p.Revoked:
		return nil, nil, apierr.New(apierr.BadRequestStatus, "principal %q was revoked; grant roles to a new name", principal)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, nil, internal("read principal", err)
	}
	der, err := ca.IssueClientCert(c.anchor, c.anchorKey, principal, pub, CredentialValidity, c.now())
	if err != nil {
		return nil, nil, internal("sign credential", err)
	}
	if err := c.db.GrantRoles(ctx, principal, rs.Strings(), Fingerprint(der)); err != nil {
		return nil, nil, storeError("grant roles to "+principal, err)
	}
	c.change(ctx, "roles granted", "principal", principal, "roles", rs.Strings(), "fingerprint", Fingerprint(der))
	return der, c.anchor.Raw, nil
}

// RevokeRole removes principal: every credential registered for it stops
// working at once, and the name cannot be granted roles again. An unknown
// principal is NotFound; one already revoked is BadRequestStatus; the last
// principal holding the Administrator role is refused with
// BadRequestStatus (nobody could grant or revoke roles any more).
func (c *CA) RevokeRole(ctx context.Context, principal string) error {
	c.roleMu.Lock()
	defer c.roleMu.Unlock()
	admins, err := c.db.PrincipalsWithRole(ctx, string(RoleAdministrator))
	if err != nil {
		return internal("list administrators", err)
	}
	if len(admins) == 1 && admins[0] == principal {
		return apierr.New(apierr.BadRequestStatus,
			"principal %q is the last Administrator: grant the Administrator role to another principal first (certadm role grant NAME Administrator --out DIR)", principal)
	}
	if err := c.db.RevokePrincipal(ctx, principal); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "principal %q does not exist", principal)
		}
		return storeError("revoke principal "+principal, err)
	}
	c.change(ctx, "principal revoked", "principal", principal)
	return nil
}

// Authorize returns the roles of principal when certFingerprint (see
// Fingerprint; case and ':' separators are ignored) is registered for it
// and the principal is not revoked. A principal with a registered
// credential and no roles gets an empty Roles and no error. Every other
// case — unknown principal, unknown fingerprint, a fingerprint of another
// principal, a revoked principal — is an apierr AccessDenied error. A
// database failure is Unexpected, never a grant: Authorize fails closed.
func (c *CA) Authorize(ctx context.Context, principal string, certFingerprint string) (Roles, error) {
	fp := normFingerprint(certFingerprint)
	if principal == "" || fp == "" {
		return nil, apierr.New(apierr.AccessDenied, "no principal or credential")
	}
	p, err := c.db.Principal(ctx, principal)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.New(apierr.AccessDenied, "principal %q is not known", principal)
		}
		return nil, internal("read principal", err)
	}
	if p.Revoked {
		return nil, apierr.New(apierr.AccessDenied, "principal %q is revoked", principal)
	}
	if !slices.Contains(p.Fingerprints, fp) {
		return nil, apierr.New(apierr.AccessDenied, "credential %s is not registered for principal %q", fp, principal)
	}
	var out Roles
	for _, name := range p.Roles {
		if r, err := ParseRole(name); err == nil && !out.Has(r) {
			out = append(out, r)
		}
	}
	return out.sorted(), nil
}

package server

import (
	"strings"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/service"
)

// rule is what a method requires of its caller.
type rule struct {
	// anyone admits every authenticated principal, even one without roles.
	anyone bool
	// roles admits a principal holding any one of them.
	roles []service.Role
}

// allRoles lists every role; "any role" methods admit a principal that
// holds at least one of them.
var allRoles = []service.Role{
	service.RoleAdministrator, service.RoleOfficer, service.RoleAuditor,
	service.RoleOperator, service.RoleEnrollee, service.RoleReader,
}

func anyOf(roles ...service.Role) rule { return rule{roles: roles} }

// requiredRoles is the authorization table: full gRPC method name → the
// roles that may call it (SPEC §5 and the comments of certsrv.proto). The
// interceptors consult it before any handler runs; a method missing from
// it is refused, whatever the caller's roles. A test checks that it covers
// every method of the Admin and Backup service descriptors and nothing
// else.
//
// Handlers narrow further where the table cannot: GetRequest lets a caller
// who is only an Enrollee read its own requests only.
var requiredRoles = map[string]rule{
	certsrvv1.Admin_Ping_FullMethodName:              {anyone: true},
	certsrvv1.Admin_Submit_FullMethodName:            anyOf(service.RoleEnrollee),
	certsrvv1.Admin_GetRequest_FullMethodName:        anyOf(service.RoleEnrollee, service.RoleOfficer, service.RoleAuditor, service.RoleReader),
	certsrvv1.Admin_Approve_FullMethodName:           anyOf(service.RoleOfficer),
	certsrvv1.Admin_Deny_FullMethodName:              anyOf(service.RoleOfficer),
	certsrvv1.Admin_Revoke_FullMethodName:            anyOf(service.RoleOfficer),
	certsrvv1.Admin_Unrevoke_FullMethodName:          anyOf(service.RoleOfficer),
	certsrvv1.Admin_PublishCRL_FullMethodName:        anyOf(service.RoleOfficer),
	certsrvv1.Admin_View_FullMethodName:              anyOf(service.RoleOfficer, service.RoleAuditor, service.RoleReader),
	certsrvv1.Admin_GetCACertificate_FullMethodName:  anyOf(allRoles...),
	certsrvv1.Admin_GrantRole_FullMethodName:         anyOf(service.RoleAdministrator),
	certsrvv1.Admin_RevokeRole_FullMethodName:        anyOf(service.RoleAdministrator),
	certsrvv1.Admin_BackupKey_FullMethodName:         anyOf(service.RoleOperator),
	certsrvv1.Admin_ImportCertificate_FullMethodName: anyOf(service.RoleOfficer),

	certsrvv1.Backup_BackupPrepare_FullMethodName:        anyOf(service.RoleOperator),
	certsrvv1.Backup_GetDatabaseNames_FullMethodName:     anyOf(service.RoleOperator),
	certsrvv1.Backup_GetBackupLogs_FullMethodName:        anyOf(service.RoleOperator),
	certsrvv1.Backup_GetDynamicFiles_FullMethodName:      anyOf(service.RoleOperator),
	certsrvv1.Backup_GetDatabaseLocations_FullMethodName: anyOf(service.RoleOperator),
	certsrvv1.Backup_OpenFile_FullMethodName:             anyOf(service.RoleOperator),
	certsrvv1.Backup_ReadFile_FullMethodName:             anyOf(service.RoleOperator),
	certsrvv1.Backup_CloseFile_FullMethodName:            anyOf(service.RoleOperator),
	certsrvv1.Backup_TruncateLogs_FullMethodName:         anyOf(service.RoleOperator),
	certsrvv1.Backup_End_FullMethodName:                  anyOf(service.RoleOperator),
	certsrvv1.Backup_ServerControl_FullMethodName:        anyOf(service.RoleOperator, service.RoleAdministrator),
}

// describe says what the rule needs, against what a refused caller holds:
// "it needs the Operator role; the principal holds Auditor".
func (r rule) describe(held service.Roles) string {
	need := "the " + string(r.roles[0]) + " role"
	if len(r.roles) > 1 {
		need = "one of the roles " + strings.Join(service.Roles(r.roles).Strings(), ", ")
	}
	has := "no role"
	if len(held) > 0 {
		has = strings.Join(held.Strings(), ", ")
	}
	return "it needs " + need + "; the principal holds " + has
}

// allows reports whether a principal holding roles may call a method with
// this rule.
func (r rule) allows(roles service.Roles) bool {
	if r.anyone {
		return true
	}
	for _, want := range r.roles {
		if roles.Has(want) {
			return true
		}
	}
	return false
}

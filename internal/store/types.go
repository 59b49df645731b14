package store

import (
	"fmt"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// DBSignature identifies one database: random, made by Create, kept in the
// meta table, the checkpoint file and every snapshot.
type DBSignature [16]byte

// Signatures are the identities a database, its checkpoint and its logs
// must share.
type Signatures struct {
	Database DBSignature   // made by Create, stored in meta and the checkpoint
	Log      wal.Signature // log-set signature, in every generation header
}

// Status is the state of a request as the view shows it.
type Status int

// Request states. StatusRevoked is an issued request whose certificate is
// revoked (on hold included); it is derived, never stored.
const (
	StatusPending Status = 1
	StatusIssued  Status = 2
	StatusDenied  Status = 3
	StatusRevoked Status = 4
)

func (s Status) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusIssued:
		return "issued"
	case StatusDenied:
		return "denied"
	case StatusRevoked:
		return "revoked"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// ReasonCertificateHold is the RFC 5280 reason code of a revocation that
// Unrevoke can lift.
const ReasonCertificateHold = 6

// NewRequest is a request as the CA submits it. The store keeps the bytes
// and strings as given; it does not parse the CSR.
type NewRequest struct {
	CSR       []byte
	Subject   string
	Profile   string
	Requester string
	SANs      []string
}

// NewCertificate is a certificate the CA has made (or imports). Serial is
// canonical upper-case hexadecimal with an even number of digits; DER is
// stored as given. Times are stored with microsecond precision in UTC.
type NewCertificate struct {
	Serial    string
	DER       []byte
	Subject   string
	NotBefore time.Time
	NotAfter  time.Time
}

// Request is a stored request, with its certificate once issued.
type Request struct {
	ID           int64
	Status       Status
	CSR          []byte // nil for imported certificates
	Subject      string
	Profile      string
	Requester    string
	SANs         []string
	Submitted    time.Time
	Resolved     time.Time // when issued or denied; zero while pending
	DenyReason   string
	Imported     bool   // made by ImportCertificate
	SubmittedLSN uint64 // LSN of the record that created the request
	ResolvedLSN  uint64 // LSN of the record that issued or denied it; 0 while pending
	Certificate  *Certificate
}

// Certificate is a stored certificate and its revocation state.
type Certificate struct {
	Serial           string
	RequestID        int64
	DER              []byte
	Subject          string
	NotBefore        time.Time
	NotAfter         time.Time
	Issued           time.Time
	IssuedLSN        uint64
	Revoked          bool
	RevocationReason int       // RFC 5280 CRLReason; meaningful when Revoked
	RevokedAt        time.Time // revocation date; zero unless Revoked
	RevokedLSN       uint64    // LSN of the last revoke or unrevoke record; 0 if never revoked
}

// CRL is a published CRL. Numbers of full and delta CRLs share one sequence
// (RFC 5280 §5.2.3) and must not exceed math.MaxInt64.
type CRL struct {
	Number     uint64
	Delta      bool
	BaseNumber uint64 // for a delta CRL, the number of its base CRL; else 0
	ThisUpdate time.Time
	NextUpdate time.Time
	DER        []byte
	LSN        uint64 // LSN of the record that recorded it (set by the store)
}

// Principal is an identity known to the role table.
type Principal struct {
	Name         string
	Roles        []string // sorted
	Fingerprints []string // certificate fingerprints bound to the principal, sorted
	Revoked      bool
}

// BackupType is the type of a recorded backup; values are certbcli.h's
// CSBACKUP_TYPE_FULL and CSBACKUP_TYPE_LOGS_ONLY.
type BackupType uint8

// Backup types.
const (
	BackupFull     BackupType = 1
	BackupLogsOnly BackupType = 2
)

func (t BackupType) String() string {
	switch t {
	case BackupFull:
		return "full"
	case BackupLogsOnly:
		return "logs-only"
	}
	return fmt.Sprintf("backup-type(%d)", uint8(t))
}

// BackupRecord describes a completed backup: its type, the log generations
// and LSNs it holds, and when it ended.
type BackupRecord struct {
	Type              BackupType
	FirstGen, LastGen uint32
	FirstLSN, LastLSN uint64
	Time              time.Time
}

// Filter selects requests. Zero fields do not filter. Results are ordered by
// request ID; Limit 0 means no limit.
type Filter struct {
	Status          Status
	RequestID       int64
	Serial          string
	Requester       string
	SubjectContains string    // case-sensitive substring of the request or certificate subject
	ExpiresBefore   time.Time // certificate NotAfter < ExpiresBefore
	ExpiresAfter    time.Time // certificate NotAfter > ExpiresAfter
	AfterID         int64     // only requests with ID > AfterID (paging)
	Limit           int
}

// Counts are row counts by kind.
type Counts struct {
	Requests     int64
	Pending      int64
	Issued       int64 // issued and not revoked
	Denied       int64
	Revoked      int64
	Certificates int64
	CRLs         int64
	Principals   int64
	Backups      int64
}

// Meta is the identity and position of a database.
type Meta struct {
	Signatures
	AppliedLSN     uint64 // LSN of the last log record the database reflects
	NeedFullBackup bool
}

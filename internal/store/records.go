package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// Record types. The values are part of the log format (see doc.go) and
// never change meaning; new kinds get new numbers.
const (
	RecordSubmit          wal.RecordType = 1  // request submitted (pending)
	RecordIssue           wal.RecordType = 2  // pending request issued with a certificate
	RecordEnroll          wal.RecordType = 3  // request submitted and issued at once
	RecordDeny            wal.RecordType = 4  // pending request denied
	RecordRevoke          wal.RecordType = 5  // certificate revoked
	RecordUnrevoke        wal.RecordType = 6  // certificate released from hold
	RecordCRL             wal.RecordType = 7  // CRL published
	RecordGrantRoles      wal.RecordType = 8  // roles (and a certificate fingerprint) granted to a principal
	RecordRevokePrincipal wal.RecordType = 9  // principal revoked
	RecordBackup          wal.RecordType = 10 // backup completed
	RecordImport          wal.RecordType = 11 // certificate imported
	RecordNeedFullBackup  wal.RecordType = 12 // need-full-backup flag set or cleared
	RecordNoop            wal.RecordType = 13 // no state change (tests and benchmarks)
)

// payloadVersion is the first byte of every payload this code writes.
const payloadVersion = 1

// TypeName returns a readable name for a record type.
func TypeName(t wal.RecordType) string {
	switch t {
	case RecordSubmit:
		return "submit"
	case RecordIssue:
		return "issue"
	case RecordEnroll:
		return "enroll"
	case RecordDeny:
		return "deny"
	case RecordRevoke:
		return "revoke"
	case RecordUnrevoke:
		return "unrevoke"
	case RecordCRL:
		return "crl"
	case RecordGrantRoles:
		return "grant-roles"
	case RecordRevokePrincipal:
		return "revoke-principal"
	case RecordBackup:
		return "backup"
	case RecordImport:
		return "import"
	case RecordNeedFullBackup:
		return "need-full-backup"
	case RecordNoop:
		return "noop"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// op is a decoded record: everything its apply needs.
type op interface {
	recordType() wal.RecordType
	encode(e *encoder)
	decode(d *decoder)
}

type submitOp struct {
	ID        int64
	CSR       []byte
	Subject   string
	Profile   string
	Requester string
	SANs      []string
	Submitted time.Time
}

type certFields struct {
	Serial    string
	DER       []byte
	Subject   string
	NotBefore time.Time
	NotAfter  time.Time
}

type issueOp struct {
	RequestID int64
	Cert      certFields
	Issued    time.Time
}

type enrollOp struct {
	Req    submitOp
	Cert   certFields
	Issued time.Time
}

type denyOp struct {
	RequestID int64
	Reason    string
	At        time.Time
}

type revokeOp struct {
	Serial string
	Reason int
	At     time.Time
}

type unrevokeOp struct {
	Serial string
	At     time.Time
}

type crlOp struct{ CRL CRL }

type grantOp struct {
	Principal   string
	Roles       []string
	Fingerprint string
}

type revokePrincipalOp struct {
	Principal string
	At        time.Time
}

type backupOp struct{ B BackupRecord }

type importOp struct {
	RequestID int64
	Cert      certFields
	At        time.Time
}

type needFullOp struct{ On bool }

type noopOp struct{ Data []byte }

// newRequest is implemented by the records that create a request: commit
// gives them the next request ID once the write is admitted, so that a
// refused write leaves no gap in the IDs.
type newRequest interface{ setID(id int64) }

func (o *submitOp) setID(id int64) { o.ID = id }
func (o *enrollOp) setID(id int64) { o.Req.ID = id }
func (o *importOp) setID(id int64) { o.RequestID = id }

func (*submitOp) recordType() wal.RecordType          { return RecordSubmit }
func (*issueOp) recordType() wal.RecordType           { return RecordIssue }
func (*enrollOp) recordType() wal.RecordType          { return RecordEnroll }
func (*denyOp) recordType() wal.RecordType            { return RecordDeny }
func (*revokeOp) recordType() wal.RecordType          { return RecordRevoke }
func (*unrevokeOp) recordType() wal.RecordType        { return RecordUnrevoke }
func (*crlOp) recordType() wal.RecordType             { return RecordCRL }
func (*grantOp) recordType() wal.RecordType           { return RecordGrantRoles }
func (*revokePrincipalOp) recordType() wal.RecordType { return RecordRevokePrincipal }
func (*backupOp) recordType() wal.RecordType          { return RecordBackup }
func (*importOp) recordType() wal.RecordType          { return RecordImport }
func (*needFullOp) recordType() wal.RecordType        { return RecordNeedFullBackup }
func (*noopOp) recordType() wal.RecordType            { return RecordNoop }

func (o *submitOp) encode(e *encoder) {
	e.varint(o.ID)
	e.bytes(o.CSR)
	e.str(o.Subject)
	e.str(o.Profile)
	e.str(o.Requester)
	e.strs(o.SANs)
	e.time(o.Submitted)
}

func (o *submitOp) decode(d *decoder) {
	o.ID = d.varint()
	o.CSR = d.bytes()
	o.Subject = d.str()
	o.Profile = d.str()
	o.Requester = d.str()
	o.SANs = d.strs()
	o.Submitted = d.time()
}

func (c *certFields) encode(e *encoder) {
	e.str(c.Serial)
	e.bytes(c.DER)
	e.str(c.Subject)
	e.time(c.NotBefore)
	e.time(c.NotAfter)
}

func (c *certFields) decode(d *decoder) {
	c.Serial = d.str()
	c.DER = d.bytes()
	c.Subject = d.str()
	c.NotBefore = d.time()
	c.NotAfter = d.time()
}

func (o *issueOp) encode(e *encoder) {
	e.varint(o.RequestID)
	o.Cert.encode(e)
	e.time(o.Issued)
}

func (o *issueOp) decode(d *decoder) {
	o.RequestID = d.varint()
	o.Cert.decode(d)
	o.Issued = d.time()
}

func (o *enrollOp) encode(e *encoder) {
	o.Req.encode(e)
	o.Cert.encode(e)
	e.time(o.Issued)
}

func (o *enrollOp) decode(d *decoder) {
	o.Req.decode(d)
	o.Cert.decode(d)
	o.Issued = d.time()
}

func (o *denyOp) encode(e *encoder) {
	e.varint(o.RequestID)
	e.str(o.Reason)
	e.time(o.At)
}

func (o *denyOp) decode(d *decoder) {
	o.RequestID = d.varint()
	o.Reason = d.str()
	o.At = d.time()
}

func (o *revokeOp) encode(e *encoder) {
	e.str(o.Serial)
	e.uvarint(uint64(o.Reason))
	e.time(o.At)
}

func (o *revokeOp) decode(d *decoder) {
	o.Serial = d.str()
	o.Reason = int(d.small(255))
	o.At = d.time()
}

func (o *unrevokeOp) encode(e *encoder) {
	e.str(o.Serial)
	e.time(o.At)
}

func (o *unrevokeOp) decode(d *decoder) {
	o.Serial = d.str()
	o.At = d.time()
}

func (o *crlOp) encode(e *encoder) {
	e.uvarint(o.CRL.Number)
	e.boolean(o.CRL.Delta)
	e.uvarint(o.CRL.BaseNumber)
	e.time(o.CRL.ThisUpdate)
	e.time(o.CRL.NextUpdate)
	e.bytes(o.CRL.DER)
}

func (o *crlOp) decode(d *decoder) {
	o.CRL.Number = d.small(math.MaxInt64)
	o.CRL.Delta = d.boolean()
	o.CRL.BaseNumber = d.small(math.MaxInt64)
	o.CRL.ThisUpdate = d.time()
	o.CRL.NextUpdate = d.time()
	o.CRL.DER = d.bytes()
}

func (o *grantOp) encode(e *encoder) {
	e.str(o.Principal)
	e.strs(o.Roles)
	e.str(o.Fingerprint)
}

func (o *grantOp) decode(d *decoder) {
	o.Principal = d.str()
	o.Roles = d.strs()
	o.Fingerprint = d.str()
}

func (o *revokePrincipalOp) encode(e *encoder) {
	e.str(o.Principal)
	e.time(o.At)
}

func (o *revokePrincipalOp) decode(d *decoder) {
	o.Principal = d.str()
	o.At = d.time()
}

func (o *backupOp) encode(e *encoder) {
	e.uvarint(uint64(o.B.Type))
	e.uvarint(uint64(o.B.FirstGen))
	e.uvarint(uint64(o.B.LastGen))
	e.uvarint(o.B.FirstLSN)
	e.uvarint(o.B.LastLSN)
	e.time(o.B.Time)
}

func (o *backupOp) decode(d *decoder) {
	o.B.Type = BackupType(d.small(255))
	o.B.FirstGen = uint32(d.small(math.MaxUint32))
	o.B.LastGen = uint32(d.small(math.MaxUint32))
	o.B.FirstLSN = d.small(math.MaxInt64)
	o.B.LastLSN = d.small(math.MaxInt64)
	o.B.Time = d.time()
}

func (o *importOp) encode(e *encoder) {
	e.varint(o.RequestID)
	o.Cert.encode(e)
	e.time(o.At)
}

func (o *importOp) decode(d *decoder) {
	o.RequestID = d.varint()
	o.Cert.decode(d)
	o.At = d.time()
}

func (o *needFullOp) encode(e *encoder) { e.boolean(o.On) }
func (o *needFullOp) decode(d *decoder) { o.On = d.boolean() }

func (o *noopOp) encode(e *encoder) { e.b = append(e.b, o.Data...) }
func (o *noopOp) decode(d *decoder) { o.Data = d.rest() }

// encodeOp returns the payload of o: the version byte and o's fields.
func encodeOp(o op) []byte {
	e := encoder{b: make([]byte, 0, 256)}
	e.b = append(e.b, payloadVersion)
	o.encode(&e)
	return e.b
}

// decodeOp decodes the payload of a record of type t. Byte slices in the
// result alias payload.
func decodeOp(t wal.RecordType, payload []byte) (op, error) {
	var o op
	switch t {
	case RecordSubmit:
		o = &submitOp{}
	case RecordIssue:
		o = &issueOp{}
	case RecordEnroll:
		o = &enrollOp{}
	case RecordDeny:
		o = &denyOp{}
	case RecordRevoke:
		o = &revokeOp{}
	case RecordUnrevoke:
		o = &unrevokeOp{}
	case RecordCRL:
		o = &crlOp{}
	case RecordGrantRoles:
		o = &grantOp{}
	case RecordRevokePrincipal:
		o = &revokePrincipalOp{}
	case RecordBackup:
		o = &backupOp{}
	case RecordImport:
		o = &importOp{}
	case RecordNeedFullBackup:
		o = &needFullOp{}
	case RecordNoop:
		o = &noopOp{}
	default:
		return nil, fmt.Errorf("unknown record type %d: %w", uint8(t), ErrRecord)
	}
	if len(payload) == 0 {
		return nil, fmt.Errorf("%s record: empty payload: %w", TypeName(t), ErrRecord)
	}
	if payload[0] != payloadVersion {
		return nil, fmt.Errorf("%s record: payload version %d, want %d: %w", TypeName(t), payload[0], payloadVersion, ErrRecord)
	}
	d := decoder{b: payload[1:]}
	o.decode(&d)
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the last field", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%s record: %v: %w", TypeName(t), d.err, ErrRecord)
	}
	return o, nil
}

// encoder appends fields to b.
type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *encoder) bytes(p []byte) {
	e.uvarint(uint64(len(p)))
	e.b = append(e.b, p...)
}

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) strs(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) boolean(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) time(t time.Time) { e.varint(timeMicros(t)) }

// decoder reads fields from b; the first error sticks and later reads
// return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad unsigned varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad signed varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// small reads an unsigned varint that must not exceed max.
func (d *decoder) small(max uint64) uint64 {
	v := d.uvarint()
	if v > max {
		d.fail("value %d above %d", v, max)
		return 0
	}
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("field of %d bytes, %d left", n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	if n == 0 {
		return nil
	}
	return p
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) strs() []string {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) { // every string takes at least one byte
		d.fail("list of %d strings, %d bytes left", n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}

func (d *decoder) boolean() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.fail("missing boolean")
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	if v > 1 {
		d.fail("boolean byte %d", v)
	}
	return v == 1
}

func (d *decoder) time() time.Time { return fromMicros(d.varint()) }

func (d *decoder) rest() []byte {
	p := d.b
	d.b = nil
	return p
}

// zeroMicros is the microsecond count of the zero time.Time.
var zeroMicros = time.Time{}.UnixMicro()

// timeMicros is the stored form of a time: microseconds since the Unix
// epoch. The zero time maps to its own (very negative) value, so it round
// trips.
func timeMicros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros is the inverse of timeMicros; times come back in UTC.
func fromMicros(us int64) time.Time {
	if us == zeroMicros {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// normTime returns t as the store keeps it: UTC, truncated to microseconds.
func normTime(t time.Time) time.Time { return fromMicros(timeMicros(t)) }

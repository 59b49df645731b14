package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestSubmitIssueAndRead(t *testing.T) {
	ctx := context.Background()
	d := createDB(t, testOptions(t))
	nr := testRequest("host1")
	req, err := d.SubmitRequest(ctx, nr)
	mustf(t, err, "submit")
	if req.ID != 1 || req.Status != StatusPending || req.SubmittedLSN == 0 {
		t.Fatalf("submitted request = %+v", req)
	}
	got, err := d.Request(ctx, req.ID)
	mustf(t, err, "read request")
	if !reflect.DeepEqual(got, req) {
		t.Fatalf("read back %+v\nwant %+v", got, req)
	}
	nc := testCert("host1")
	cert, err := d.IssueRequest(ctx, req.ID, nc)
	mustf(t, err, "issue")
	if cert.Serial != nc.Serial || cert.RequestID != req.ID || cert.IssuedLSN <= req.SubmittedLSN {
		t.Fatalf("issued certificate = %+v", cert)
	}
	got, err = d.Request(ctx, req.ID)
	mustf(t, err, "read request")
	if got.Status != StatusIssued || got.Certificate == nil || !reflect.DeepEqual(*got.Certificate, cert) {
		t.Fatalf("request after issue = %+v", got)
	}
	if !got.Certificate.NotAfter.Equal(nc.NotAfter.Truncate(time.Microsecond)) {
		t.Fatalf("NotAfter %v, want %v", got.Certificate.NotAfter, nc.NotAfter)
	}
	byS, err := d.CertificateBySerial(ctx, nc.Serial)
	mustf(t, err, "by serial")
	if !reflect.DeepEqual(byS, cert) {
		t.Fatalf("by serial %+v, want %+v", byS, cert)
	}
	if m := d.Meta(); m.AppliedLSN != cert.IssuedLSN || m.AppliedLSN != d.LastLSN() {
		t.Fatalf("meta applied %d, issued LSN %d, log %d", m.AppliedLSN, cert.IssuedLSN, d.LastLSN())
	}
}

func TestEnrollDenyRevokeUnrevoke(t *testing.T) {
	ctx := context.Background()
	d := createDB(t, testOptions(t))
	req, cert, err := d.Enroll(ctx, testRequest("a"), testCert("a"))
	mustf(t, err, "enroll")
	if req.Status != StatusIssued || req.Certificate == nil || req.Certificate.Serial != cert.Serial {
		t.Fatalf("enroll = %+v", req)
	}
	back, err := d.Request(ctx, req.ID)
	mustf(t, err, "read")
	if !reflect.DeepEqual(back, req) {
		t.Fatalf("read back %+v\nwant %+v", back, req)
	}

	pend, err := d.SubmitRequest(ctx, testRequest("b"))
	mustf(t, err, "submit")
	_, _, err = d.DenyRequest(ctx, pend.ID, "policy says no")
	mustf(t, err, "deny")
	denied, err := d.Request(ctx, pend.ID)
	mustf(t, err, "read")
	if denied.Status != StatusDenied || denied.DenyReason != "policy says no" || denied.Resolved.IsZero() {
		t.Fatalf("denied = %+v", denied)
	}

	at := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	answer, err := d.Revoke(ctx, cert.Serial, ReasonCertificateHold, at)
	mustf(t, err, "hold")
	c, _ := d.CertificateBySerial(ctx, cert.Serial)
	if !c.Revoked || c.RevocationReason != 6 || !c.RevokedAt.Equal(at) {
		t.Fatalf("held = %+v", c)
	}
	// Revoke and Unrevoke answer with the certificate as stored.
	if !reflect.DeepEqual(answer, c) {
		t.Fatalf("Revoke answered %+v, the database holds %+v", answer, c)
	}
	r, _ := d.Request(ctx, req.ID)
	if r.Status != StatusRevoked {
		t.Fatalf("status of held request = %v", r.Status)
	}
	holdLSN := c.RevokedLSN
	answer, err = d.Unrevoke(ctx, cert.Serial)
	mustf(t, err, "unrevoke")
	c, _ = d.CertificateBySerial(ctx, cert.Serial)
	if c.Revoked || !c.RevokedAt.IsZero() || c.RevokedLSN <= holdLSN {
		t.Fatalf("released = %+v", c)
	}
	if !reflect.DeepEqual(answer, c) {
		t.Fatalf("Unrevoke answered %+v, the database holds %+v", answer, c)
	}
	changes, err := d.RevocationChangesSince(ctx, holdLSN-1)
	mustf(t, err, "changes")
	if len(changes) != 1 || changes[0].Revoked || changes[0].Serial != cert.Serial || changes[0].LSN != c.RevokedLSN {
		t.Fatalf("changes since before hold = %+v", changes)
	}
	mustf(t, errOnly(d.Revoke(ctx, cert.Serial, 6, time.Time{})), "hold again")
	mustf(t, errOnly(d.Revoke(ctx, cert.Serial, 1, time.Time{})), "hold to keyCompromise")
	revoked, err := d.RevokedCertificates(ctx, time.Now())
	mustf(t, err, "revoked list")
	if len(revoked) != 1 || revoked[0].Reason != 1 || !revoked[0].Revoked {
		t.Fatalf("revoked = %+v", revoked)
	}
	if gone, _ := d.RevokedCertificates(ctx, time.Now().Add(10*365*24*time.Hour)); len(gone) != 0 {
		t.Fatalf("expired certificates listed: %+v", gone)
	}
	cnt, err := d.Counts(ctx)
	mustf(t, err, "counts")
	want := Counts{Requests: 2, Denied: 1, Revoked: 1, Certificates: 1}
	if cnt != want {
		t.Fatalf("counts %+v, want %+v", cnt, want)
	}
}

// TestBadTransitionsWriteNothing checks every refused write: the right
// error, and not a byte in the log.
func TestBadTransitionsWriteNothing(t *testing.T) {
	ctx := context.Background()
	d := createDB(t, testOptions(t))
	issued, cert, err := d.Enroll(ctx, testRequest("x"), testCert("x"))
	mustf(t, err, "enroll")
	pend, err := d.SubmitRequest(ctx, testRequest("p"))
	mustf(t, err, "submit")
	_, err = d.RecordCRL(ctx, CRL{Number: 5, ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour), DER: []byte{1}})
	mustf(t, err, "crl")
	mustf(t, d.GrantRoles(ctx, "bob", []string{"Officer"}, "FP1"), "grant")
	mustf(t, d.GrantRoles(ctx, "eve", []string{"Reader"}, ""), "grant")
	mustf(t, d.RevokePrincipal(ctx, "eve"), "revoke principal")

	cases := []struct {
		name string
		want error
		do   func() error
	}{
		{"issue issued request", ErrNotPending, func() error { _, err := d.IssueRequest(ctx, issued.ID, testCert("y")); return err }},
		{"issue unknown request", ErrNotFound, func() error { _, err := d.IssueRequest(ctx, 999, testCert("y")); return err }},
		{"issue duplicate serial", ErrDuplicateSerial, func() error {
			c := testCert("y")
			c.Serial = cert.Serial
			_, err := d.IssueRequest(ctx, pend.ID, c)
			return err
		}},
		{"enroll duplicate serial", ErrDuplicateSerial, func() error {
			c := testCert("y")
			c.Serial = cert.Serial
			_, _, err := d.Enroll(ctx, testRequest("y"), c)
			return err
		}},
		{"import duplicate serial", ErrDuplicateSerial, func() error {
			c := testCert("y")
			c.Serial = cert.Serial
			_, err := d.ImportCertificate(ctx, c)
			return err
		}},
		{"deny issued", ErrNotPending, func() error { _, _, err := d.DenyRequest(ctx, issued.ID, ""); return err }},
		{"deny unknown", ErrNotFound, func() error { _, _, err := d.DenyRequest(ctx, 12345, ""); return err }},
		{"revoke unknown", ErrNotFound, func() error { return errOnly(d.Revoke(ctx, "0A0B", 1, time.Time{})) }},
		{"unrevoke not revoked", ErrNotOnHold, func() error { return errOnly(d.Unrevoke(ctx, cert.Serial)) }},
		{"unrevoke unknown", ErrNotFound, func() error { return errOnly(d.Unrevoke(ctx, "0A0B")) }},
		{"bad reason", ErrInvalidArgument, func() error { return errOnly(d.Revoke(ctx, cert.Serial, 7, time.Time{})) }},
		{"bad serial", ErrInvalidArgument, func() error { return errOnly(d.Revoke(ctx, "abc", 1, time.Time{})) }},
		{"crl number not above", ErrCRLNumber, func() error {
			_, err := d.RecordCRL(ctx, CRL{Number: 5, DER: []byte{1}})
			return err
		}},
		{"delta base not below", ErrInvalidArgument, func() error {
			_, err := d.RecordCRL(ctx, CRL{Number: 9, Delta: true, BaseNumber: 9, DER: []byte{1}})
			return err
		}},
		{"grant to revoked", ErrPrincipalRevoked, func() error { return d.GrantRoles(ctx, "eve", []string{"Officer"}, "") }},
		{"fingerprint of another", ErrInvalidArgument, func() error { return d.GrantRoles(ctx, "carol", []string{"Reader"}, "FP1") }},
		{"revoke unknown principal", ErrNotFound, func() error { return d.RevokePrincipal(ctx, "nobody") }},
		{"revoke revoked principal", ErrAlreadyRevoked, func() error { return d.RevokePrincipal(ctx, "eve") }},
		{"bad backup type", ErrInvalidArgument, func() error { return d.RecordBackup(ctx, BackupRecord{Type: 3}) }},
	}
	for _, c := range cases {
		before := d.LastLSN()
		err := c.do()
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
		if after := d.LastLSN(); after != before {
			t.Errorf("%s: log LSN moved from %d to %d", c.name, before, after)
		}
	}
	// And the already-revoked case, after a real revocation.
	mustf(t, errOnly(d.Revoke(ctx, cert.Serial, 4, time.Time{})), "revoke")
	before := d.LastLSN()
	if err := errOnly(d.Revoke(ctx, cert.Serial, 1, time.Time{})); !errors.Is(err, ErrAlreadyRevoked) {
		t.Errorf("revoke revoked: %v", err)
	}
	if err := errOnly(d.Revoke(ctx, cert.Serial, 6, time.Time{})); !errors.Is(err, ErrAlreadyRevoked) {
		t.Errorf("hold revoked: %v", err)
	}
	if err := errOnly(d.Unrevoke(ctx, cert.Serial)); !errors.Is(err, ErrNotOnHold) {
		t.Errorf("unrevoke revoked (not on hold): %v", err)
	}
	if d.LastLSN() != before {
		t.Errorf("log LSN moved from %d to %d", before, d.LastLSN())
	}
}

func TestCRLsRolesBackupsImport(t *testing.T) {
	ctx := context.Background()
	d := createDB(t, testOptions(t))
	now := time.Now().UTC().Truncate(time.Microsecond)
	full, err := d.RecordCRL(ctx, CRL{Number: 1, ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: []byte("full")})
	mustf(t, err, "full CRL")
	delta, err := d.RecordCRL(ctx, CRL{Number: 2, Delta: true, BaseNumber: 1, ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: []byte("delta")})
	mustf(t, err, "delta CRL")
	gotFull, err := d.LastCRL(ctx, false)
	mustf(t, err, "last full")
	gotDelta, err := d.LastCRL(ctx, true)
	mustf(t, err, "last delta")
	if !reflect.DeepEqual(gotFull, full) || !reflect.DeepEqual(gotDelta, delta) || full.LSN == 0 {
		t.Fatalf("last CRLs %+v %+v, want %+v %+v", gotFull, gotDelta, full, delta)
	}
	if _, err := d.RecordCRL(ctx, CRL{Number: 2, DER: []byte("x")}); !errors.Is(err, ErrCRLNumber) {
		t.Fatalf("full CRL reusing the delta's number: %v", err)
	}

	mustf(t, d.GrantRoles(ctx, "alice", []string{"Officer", "Auditor", "Officer"}, "AB12"), "grant")
	mustf(t, d.GrantRoles(ctx, "alice", []string{"Reader"}, "CD34"), "grant")
	p, err := d.Principal(ctx, "alice")
	mustf(t, err, "principal")
	want := Principal{Name: "alice", Roles: []string{"Auditor", "Officer", "Reader"}, Fingerprints: []string{"AB12", "CD34"}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("principal %+v, want %+v", p, want)
	}
	byFP, err := d.PrincipalByFingerprint(ctx, "CD34")
	mustf(t, err, "by fingerprint")
	if byFP.Name != "alice" {
		t.Fatalf("by fingerprint: %+v", byFP)
	}
	mustf(t, d.RevokePrincipal(ctx, "alice"), "revoke principal")
	if p, _ := d.Principal(ctx, "alice"); !p.Revoked {
		t.Fatal("principal not revoked")
	}
	if _, err := d.Principal(ctx, "zed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown principal: %v", err)
	}

	mustf(t, d.SetNeedFullBackup(ctx, true), "set need full")
	if !d.NeedFullBackup() {
		t.Fatal("need-full not set")
	}
	inc := BackupRecord{Type: BackupLogsOnly, FirstGen: 1, LastGen: 1, FirstLSN: 1, LastLSN: 3, Time: now}
	mustf(t, d.RecordBackup(ctx, inc), "record incremental")
	if !d.NeedFullBackup() {
		t.Fatal("a logs-only backup cleared need-full")
	}
	fb := BackupRecord{Type: BackupFull, FirstGen: 1, LastGen: 2, FirstLSN: 1, LastLSN: 9, Time: now}
	mustf(t, d.RecordBackup(ctx, fb), "record full")
	if d.NeedFullBackup() {
		t.Fatal("a full backup did not clear need-full")
	}
	f, i := d.LastBackups()
	if f == nil || i == nil || *f != fb || *i != inc {
		t.Fatalf("last backups %+v %+v", f, i)
	}
	ck := d.CheckpointInfo()
	if ck.LastFull == nil || *ck.LastFull != fb || ck.LastIncremental == nil || *ck.LastIncremental != inc {
		t.Fatalf("checkpoint backups %+v %+v", ck.LastFull, ck.LastIncremental)
	}
	onDisk, err := readCheckpoint(d.opts.CheckpointPath())
	mustf(t, err, "read checkpoint")
	if onDisk.LastFull == nil || *onDisk.LastFull != fb {
		t.Fatalf("checkpoint file's last full = %+v", onDisk.LastFull)
	}

	imp, err := d.ImportCertificate(ctx, testCert("imported"))
	mustf(t, err, "import")
	back, err := d.Request(ctx, imp.ID)
	mustf(t, err, "read import")
	if !back.Imported || back.Status != StatusIssued || !reflect.DeepEqual(back, imp) {
		t.Fatalf("imported %+v\nread back %+v", imp, back)
	}
}

func TestRequestsFilter(t *testing.T) {
	ctx := context.Background()
	d := createDB(t, testOptions(t))
	soon := testCert("soon")
	soon.NotAfter = time.Now().Add(24 * time.Hour)
	_, cs, err := d.Enroll(ctx, testRequest("soon"), soon)
	mustf(t, err, "enroll")
	_, cl, err := d.Enroll(ctx, testRequest("later"), testCert("later"))
	mustf(t, err, "enroll")
	p, err := d.SubmitRequest(ctx, testRequest("pending"))
	mustf(t, err, "submit")
	mustf(t, errOnly(d.Revoke(ctx, cl.Serial, 1, time.Time{})), "revoke")

	ids := func(f Filter) []int64 {
		rs, err := d.Requests(ctx, f)
		mustf(t, err, "requests %+v", f)
		var out []int64
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	check := func(name string, f Filter, want ...int64) {
		if got := ids(f); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ids %v, want %v", name, got, want)
		}
	}
	check("all", Filter{}, 1, 2, 3)
	check("pending", Filter{Status: StatusPending}, p.ID)
	check("issued", Filter{Status: StatusIssued}, cs.RequestID)
	check("revoked", Filter{Status: StatusRevoked}, cl.RequestID)
	check("serial", Filter{Serial: cl.Serial}, cl.RequestID)
	check("subject", Filter{SubjectContains: "late"}, cl.RequestID)
	check("expires before", Filter{ExpiresBefore: time.Now().Add(48 * time.Hour)}, cs.RequestID)
	check("expires after", Filter{ExpiresAfter: time.Now().Add(48 * time.Hour)}, cl.RequestID)
	check("paging", Filter{AfterID: 1, Limit: 1}, 2)
	if _, err := d.Requests(ctx, Filter{Status: 9}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad status filter: %v", err)
	}
}

func TestClosedAndDoubleClose(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	d, err := Create(ctx, opts)
	mustf(t, err, "create")
	mustf(t, d.Close(), "close")
	if err := d.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	if _, err := d.SubmitRequest(ctx, testRequest("z")); !errors.Is(err, ErrClosed) {
		t.Fatalf("submit after close: %v", err)
	}
	if _, err := Create(ctx, opts); !errors.Is(err, ErrExists) {
		t.Fatalf("create over an existing database: %v", err)
	}
}

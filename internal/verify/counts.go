package verify

import (
	"fmt"

	"github.com/certsrv/certsrv/internal/store"
)

// checkCounts counts what the restored database holds and checks that it
// agrees with itself and with the set: the database carries the set's
// signatures and position; requests are issued with a certificate or
// pending or denied without one; each certificate belongs to its request
// and has a serial of its own; each certificate's revocation state is the
// one its revocation events lead to, and every event names a known
// certificate; CRL numbers grow with their log records and a delta CRL's
// base is an earlier full CRL.
func checkCounts(info *setInfo, d *store.Dump, cs *checks) Counts {
	var n Counts
	bad := func(format string, args ...any) { cs.add(problemf(CheckCounts, "", ErrInconsistent, format, args...)) }

	switch {
	case d.Meta.Database != store.DBSignature(info.dbSig) || d.Meta.Log != info.logSig:
		bad("the restored database carries signature %x and log set %x, the set's are %x and %x",
			d.Meta.Database[:], d.Meta.Log[:], info.dbSig[:], info.logSig[:])
	case d.Meta.AppliedLSN != info.lastLSN:
		bad("the restored database reflects LSN %d, the set's logs end at LSN %d", d.Meta.AppliedLSN, info.lastLSN)
	}

	serials := map[string]*store.Certificate{}
	for i := range d.Requests {
		r := &d.Requests[i]
		n.Requests++
		c := r.Certificate
		switch r.Status {
		case store.StatusPending:
			n.Pending++
		case store.StatusDenied:
			n.Denied++
		case store.StatusIssued, store.StatusRevoked:
			if c == nil {
				bad("request %d is %s but has no certificate", r.ID, r.Status)
			}
		default:
			bad("request %d has status %d", r.ID, int(r.Status))
		}
		if r.SubmittedLSN > d.Meta.AppliedLSN || r.ResolvedLSN > d.Meta.AppliedLSN {
			bad("request %d was recorded at LSN %d/%d, after the database's position %d", r.ID, r.SubmittedLSN, r.ResolvedLSN, d.Meta.AppliedLSN)
		}
		if c == nil {
			continue
		}
		if r.Status != store.StatusIssued && r.Status != store.StatusRevoked {
			bad("request %d is %s but has certificate %s", r.ID, r.Status, c.Serial)
		}
		n.Certificates++
		if c.Revoked {
			n.Revoked++
		} else {
			n.Issued++
		}
		if c.RequestID != r.ID {
			bad("certificate %s is stored with request %d but belongs to request %d", c.Serial, r.ID, c.RequestID)
		}
		if other, dup := serials[c.Serial]; dup {
			bad("serial %s belongs to requests %d and %d", c.Serial, other.RequestID, r.ID)
		}
		serials[c.Serial] = c
	}

	for _, e := range d.RevocationEvents {
		if serials[e.Serial] == nil {
			bad("revocation event at LSN %d names serial %s, which no certificate has", e.LSN, e.Serial)
		}
	}
	final := statesBefore(d.RevocationEvents, 0)
	for serial, c := range serials {
		st, ok := final[serial]
		switch {
		case !ok && (c.Revoked || c.RevokedLSN != 0):
			bad("certificate %s is marked revoked (LSN %d) but no revocation event names it", serial, c.RevokedLSN)
		case !ok:
		case st.revoked != c.Revoked || st.lsn != c.RevokedLSN:
			bad("certificate %s: revoked=%t at LSN %d, but its last revocation event (LSN %d) says revoked=%t",
				serial, c.Revoked, c.RevokedLSN, st.lsn, st.revoked)
		case c.Revoked && (st.reason != c.RevocationReason || !st.at.Equal(c.RevokedAt)):
			bad("certificate %s: revoked with reason %d at %s, but its last revocation event says reason %d at %s",
				serial, c.RevocationReason, c.RevokedAt.UTC().Format(timeFmt), st.reason, st.at.UTC().Format(timeFmt))
		}
	}

	var prev *store.CRL
	fulls := map[uint64]bool{}
	for i := range d.CRLs {
		c := &d.CRLs[i]
		n.CRLs++
		if prev != nil && c.LSN <= prev.LSN {
			bad("%s was recorded at LSN %d, not after %s (LSN %d)", crlName(*c), c.LSN, crlName(*prev), prev.LSN)
		}
		if c.Delta && !fulls[c.BaseNumber] {
			bad("%s is based on CRL %d, which is not an earlier full CRL", crlName(*c), c.BaseNumber)
		}
		if !c.Delta {
			fulls[c.Number] = true
		}
		prev = c
	}
	n.Principals = int64(len(d.Principals))
	n.Backups = int64(len(d.Backups))
	cs.pass(CheckCounts, fmt.Sprintf("%s: %d issued, %d revoked, %d pending, %d denied; %s, %s, %s; consistent",
		countOf(n.Requests, "request", "requests"), n.Issued, n.Revoked, n.Pending, n.Denied, countOf(n.CRLs, "CRL", "CRLs"),
		countOf(n.Principals, "principal", "principals"), countOf(n.Backups, "recorded backup", "recorded backups")))
	return n
}

package verify

import (
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

// revState is a certificate's revocation state after some revocation
// event.
type revState struct {
	revoked bool
	reason  int
	at      time.Time
	lsn     uint64
}

// statesBefore replays the revocation events with LSN below before (all of
// them when before is 0) and returns each certificate's resulting state.
// The events come ordered by LSN.
func statesBefore(events []store.RevocationEvent, before uint64) map[string]revState {
	out := map[string]revState{}
	for _, e := range events {
		if before != 0 && e.LSN >= before {
			break
		}
		out[e.Serial] = revState{revoked: e.Revoked, reason: e.Reason, at: e.At, lsn: e.LSN}
	}
	return out
}

// crlEntry is one entry of a CRL as the checks compare it.
type crlEntry struct {
	reason int
	at     time.Time
}

// checkCRLs checks every CRL recorded in the restored database: each
// parses, carries the recorded number and thisUpdate, and verifies
// against the CA certificate. The latest full CRL must list exactly the
// certificates that were revoked (holds included) and not expired when it
// was published, with their reasons and revocation times; "when it was
// published" is the CRL's own log record, so a revocation recorded after
// it is not expected on it. The latest delta CRL must list exactly the
// certificates whose revocation state changed after its base CRL was
// recorded and before it was: revoked ones with their reason, released
// holds as removeFromCRL. Published CRL files must equal the recorded CRL
// of their number.
func checkCRLs(caCert *x509.Certificate, d *store.Dump, dyn []dynamicFile, cs *checks) {
	certs := map[string]*store.Certificate{}
	for i := range d.Requests {
		if c := d.Requests[i].Certificate; c != nil {
			certs[c.Serial] = c
		}
	}
	var lastFull, lastDelta *store.CRL
	byNumber := map[uint64]*store.CRL{}
	parsed := map[uint64]*x509.RevocationList{}
	for i := range d.CRLs {
		c := &d.CRLs[i]
		byNumber[c.Number] = c
		l, ok := checkCRLSignature(caCert, c, cs)
		if !ok {
			continue
		}
		parsed[c.Number] = l
		if c.Delta {
			lastDelta = c
		} else {
			lastFull = c
		}
	}
	checkPublished(d, dyn, cs)
	if len(d.CRLs) == 0 {
		cs.pass(CheckCRLs, "no CRL recorded yet")
		return
	}
	detail := fmt.Sprintf("%d recorded CRLs verify against the CA certificate", len(d.CRLs))
	if len(d.CRLs) == 1 {
		detail = "1 recorded CRL verifies against the CA certificate"
	}
	if lastFull != nil {
		want := map[string]crlEntry{}
		for serial, st := range statesBefore(d.RevocationEvents, lastFull.LSN) {
			c := certs[serial]
			if st.revoked && c != nil && !c.NotAfter.Before(lastFull.ThisUpdate) {
				want[serial] = crlEntry{reason: st.reason, at: st.at}
			}
		}
		compareEntries(lastFull, parsed[lastFull.Number], want, certs, cs)
		detail += fmt.Sprintf("; %s (%s) lists exactly the %d revoked, unexpired certificate%s known when it was recorded",
			crlName(*lastFull), lastFull.ThisUpdate.UTC().Format(timeFmt), len(want), plural(len(want)))
	}
	if lastDelta != nil {
		base, ok := byNumber[lastDelta.BaseNumber]
		switch {
		case !ok || base.Delta:
			cs.add(problemf(CheckCRLs, "", ErrCRL, "%s is based on CRL %d, which the database does not hold as a full CRL",
				crlName(*lastDelta), lastDelta.BaseNumber))
		default:
			now := statesBefore(d.RevocationEvents, lastDelta.LSN)
			want := map[string]crlEntry{}
			for _, e := range d.RevocationEvents {
				if e.LSN <= base.LSN || e.LSN >= lastDelta.LSN {
					continue
				}
				st := now[e.Serial]
				if st.revoked {
					want[e.Serial] = crlEntry{reason: st.reason, at: st.at}
				} else {
					want[e.Serial] = crlEntry{reason: ca.ReasonRemoveFromCRL}
				}
			}
			compareEntries(lastDelta, parsed[lastDelta.Number], want, certs, cs)
			detail += fmt.Sprintf("; %s lists exactly the %d change%s since CRL %d", crlName(*lastDelta), len(want), plural(len(want)), base.Number)
		}
	}
	cs.pass(CheckCRLs, detail)
}

// checkCRLSignature parses a recorded CRL and checks its number,
// thisUpdate and signature. ok is false when it does not parse.
func checkCRLSignature(caCert *x509.Certificate, c *store.CRL, cs *checks) (*x509.RevocationList, bool) {
	l, err := x509.ParseRevocationList(c.DER)
	if err != nil {
		cs.add(problemf(CheckCRLs, "", ErrCRL, "%s does not parse: %v", crlName(*c), err))
		return nil, false
	}
	if err := l.CheckSignatureFrom(caCert); err != nil {
		cs.add(problemf(CheckCRLs, "", ErrCRL, "%s does not verify against the CA certificate: %v", crlName(*c), err))
	}
	if !sameCRLNumber(l, c.Number) {
		cs.add(problemf(CheckCRLs, "", ErrCRL, "%s carries CRL number %v", crlName(*c), l.Number))
	}
	if want := c.ThisUpdate.UTC().Truncate(time.Second); !l.ThisUpdate.Equal(want) {
		cs.add(problemf(CheckCRLs, "", ErrCRL, "%s has thisUpdate %s, the database records %s",
			crlName(*c), l.ThisUpdate.UTC().Format(timeFmt), want.Format(timeFmt)))
	}
	return l, true
}

// compareEntries compares a CRL's entries with the ones expected.
func compareEntries(c *store.CRL, l *x509.RevocationList, want map[string]crlEntry, certs map[string]*store.Certificate, cs *checks) {
	name := crlName(*c)
	got := map[string]crlEntry{}
	for _, e := range l.RevokedCertificateEntries {
		got[ca.SerialString(e.SerialNumber)] = crlEntry{reason: e.ReasonCode, at: e.RevocationTime}
	}
	serials := make([]string, 0, len(got)+len(want))
	for s := range got {
		serials = append(serials, s)
	}
	for s := range want {
		if _, ok := got[s]; !ok {
			serials = append(serials, s)
		}
	}
	slices.Sort(serials)
	for _, s := range serials {
		g, listed := got[s]
		w, expected := want[s]
		switch {
		case listed && !expected:
			why := "it was not revoked when the CRL was recorded"
			if c.Delta {
				why = "its revocation state did not change between the base CRL and this one"
			}
			if cert := certs[s]; cert == nil {
				why = "the database holds no certificate with that serial"
			} else if !c.Delta && cert.NotAfter.Before(c.ThisUpdate) {
				why = "it had expired (" + cert.NotAfter.UTC().Format(timeFmt) + ") by thisUpdate"
			}
			cs.add(problemf(CheckCRLs, "", ErrCRL, "%s lists serial %s, but %s", name, s, why))
		case expected && !listed:
			cs.add(problemf(CheckCRLs, "", ErrCRL, "%s does not list serial %s (%s), a revocation change the database recorded before the CRL",
				name, s, ca.ReasonName(w.reason)))
		case g.reason != w.reason:
			cs.add(problemf(CheckCRLs, "", ErrCRL, "%s lists serial %s with reason %s, the database has %s",
				name, s, ca.ReasonName(g.reason), ca.ReasonName(w.reason)))
		case w.reason != ca.ReasonRemoveFromCRL && !g.at.Equal(w.at.UTC().Truncate(time.Second)):
			cs.add(problemf(CheckCRLs, "", ErrCRL, "%s lists serial %s as revoked at %s, the database has %s",
				name, s, g.at.UTC().Format(timeFmt), w.at.UTC().Format(timeFmt)))
		}
	}
}

package ca

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// RevokedEntry is one certificate on a CRL.
type RevokedEntry struct {
	Serial    *big.Int
	RevokedAt time.Time
	// Reason is an RFC 5280 reason code. ReasonUnspecified is written as
	// an entry without a reasonCode extension (RFC 5280 §5.3.1).
	// ReasonRemoveFromCRL is allowed only on a delta CRL, where it marks
	// a certificate whose hold was released since the base CRL.
	Reason int
}

// CRL signs a CRL and returns its DER.
//
// With baseNumber nil it is a full CRL listing entries; with baseNumber set
// it is a delta CRL (RFC 5280 §5.2.4) listing the changes since the full
// CRL numbered baseNumber, and carries a critical Delta CRL Indicator
// extension holding baseNumber. Full and delta CRLs share one sequence of
// CRL numbers: the caller must give each CRL a number greater than every
// number used before, and a delta's baseNumber must be less than its
// number. Numbers are positive and at most 20 octets.
//
// Every CRL is a v2 CRL with authorityKeyIdentifier and cRLNumber; a full
// CRL also carries a Freshest CRL extension pointing at CRLURL(true) when
// BaseURL is set and NoDeltaCRLs is not, which is how relying parties
// (openssl -use_deltas, for one) find the delta CRL. Entries are written in ascending serial order.
//
// Times are written in UTC, truncated to the second. Bad parameters
// (numbers, thisUpdate not before nextUpdate, a nil or duplicate serial, a
// zero revocation time or one after thisUpdate, an unknown reason, or
// removeFromCRL on a full CRL) give ErrBadCRL, ErrBadSerial or
// ErrBadReason.
func (a *Authority) CRL(entries []RevokedEntry, number, baseNumber *big.Int, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	if a == nil || a.Cert == nil || a.Key == nil {
		return nil, fmt.Errorf("sign CRL: authority has no certificate or key: %w", ErrNotCA)
	}
	delta := baseNumber != nil
	if err := checkCRLNumber("CRL number", number); err != nil {
		return nil, err
	}
	if delta {
		if err := checkCRLNumber("base CRL number", baseNumber); err != nil {
			return nil, err
		}
		if baseNumber.Cmp(number) >= 0 {
			return nil, fmt.Errorf("delta CRL number %s is not greater than its base %s: %w", number, baseNumber, ErrBadCRL)
		}
	}
	thisUpdate, nextUpdate = thisUpdate.UTC().Truncate(time.Second), nextUpdate.UTC().Truncate(time.Second)
	if !thisUpdate.Before(nextUpdate) {
		return nil, fmt.Errorf("CRL thisUpdate %s is not before nextUpdate %s: %w", thisUpdate.UTC().Format(time.RFC3339), nextUpdate.UTC().Format(time.RFC3339), ErrBadCRL)
	}
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(x, y RevokedEntry) int {
		if x.Serial == nil || y.Serial == nil {
			return 0
		}
		return x.Serial.Cmp(y.Serial)
	})
	list := make([]x509.RevocationListEntry, 0, len(sorted))
	for i, e := range sorted {
		if err := CheckSerial(e.Serial); err != nil {
			return nil, fmt.Errorf("CRL entry: %w", err)
		}
		if i > 0 && sorted[i-1].Serial.Cmp(e.Serial) == 0 {
			return nil, fmt.Errorf("CRL entry %s listed twice: %w", SerialString(e.Serial), ErrBadCRL)
		}
		if e.RevokedAt.IsZero() {
			return nil, fmt.Errorf("CRL entry %s has no revocation time: %w", SerialString(e.Serial), ErrBadCRL)
		}
		if _, ok := reasonNames[e.Reason]; !ok {
			return nil, fmt.Errorf("CRL entry %s reason code %d: %w", SerialString(e.Serial), e.Reason, ErrBadReason)
		}
		if e.RevokedAt.UTC().Truncate(time.Second).After(thisUpdate) {
			return nil, fmt.Errorf("CRL entry %s revoked at %s, after thisUpdate %s: %w", SerialString(e.Serial), e.RevokedAt.UTC().Format(time.RFC3339), thisUpdate.UTC().Format(time.RFC3339), ErrBadCRL)
		}
		if e.Reason == ReasonRemoveFromCRL && !delta {
			return nil, fmt.Errorf("CRL entry %s: removeFromCRL only belongs on a delta CRL: %w", SerialString(e.Serial), ErrBadReason)
		}
		list = append(list, x509.RevocationListEntry{SerialNumber: e.Serial, RevocationTime: e.RevokedAt.UTC().Truncate(time.Second), ReasonCode: e.Reason})
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: list,
		Number:                    number,
		ThisUpdate:                thisUpdate,
		NextUpdate:                nextUpdate,
	}
	if delta {
		v, err := asn1.Marshal(baseNumber)
		if err != nil {
			return nil, fmt.Errorf("encode delta CRL indicator: %w", err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidExtDeltaCRLIndicator, Critical: true, Value: v})
	} else if a.BaseURL != "" && !a.NoDeltaCRLs {
		v, err := marshalDistributionPoints(a.CRLURL(true))
		if err != nil {
			return nil, fmt.Errorf("encode freshest CRL: %w", err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidExtFreshestCRL, Value: v})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, a.Cert, a.Key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL %s: %w", number, err)
	}
	return der, nil
}

func checkCRLNumber(what string, n *big.Int) error {
	if n == nil || n.Sign() <= 0 {
		return fmt.Errorf("%s %v is not positive: %w", what, n, ErrBadCRL)
	}
	b := n.Bytes()
	if len(b) > 20 || len(b) == 20 && b[0]&0x80 != 0 {
		return fmt.Errorf("%s is longer than 20 octets: %w", what, ErrBadCRL)
	}
	return nil
}

// CRLWindow returns thisUpdate and nextUpdate for a CRL published at now
// that is meant to be replaced after validity, with overlap of extra
// lifetime so relying parties never hold an expired CRL while the next one
// propagates (AD CS's "CRL period" and "CRL overlap"). thisUpdate is now
// itself, not backdated: a CRL may not list a revocation later than its
// thisUpdate, and a revocation made a moment ago must be on it.
func CRLWindow(now time.Time, validity, overlap time.Duration) (thisUpdate, nextUpdate time.Time) {
	return now, now.Add(validity + overlap)
}

// distributionPoint and distributionPointName mirror RFC 5280
// DistributionPoint for the one form used here: a fullName of URIs.
type distributionPoint struct {
	DistributionPoint distributionPointName `asn1:"optional,tag:0"`
}

type distributionPointName struct {
	FullName []asn1.RawValue `asn1:"optional,tag:0"`
}

// marshalDistributionPoints encodes CRLDistributionPoints (the syntax of
// the Freshest CRL extension too) with one distribution point per URL.
func marshalDistributionPoints(urls ...string) ([]byte, error) {
	dps := make([]distributionPoint, 0, len(urls))
	for _, u := range urls {
		dps = append(dps, distributionPoint{DistributionPoint: distributionPointName{
			FullName: []asn1.RawValue{{Tag: 6, Class: asn1.ClassContextSpecific, Bytes: []byte(u)}},
		}})
	}
	return asn1.Marshal(dps)
}

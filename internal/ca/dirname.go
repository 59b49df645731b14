package ca

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Directory-name constraints (RFC 5280 §4.2.1.10, GeneralName
// directoryName) bind the subject of every certificate below the
// constraining CA certificate when that subject is not empty: a permitted
// subtree O=Example admits only subjects whose first RDNs are O=Example.
// crypto/x509 does not parse these subtrees (it lists a critical
// nameConstraints extension holding one among the unhandled critical
// extensions), so certsrv reads them from the extension itself.
//
// The CA writes subjects with a common name only; under a permitted
// directoryName subtree it writes the subtree's RDNs, copied byte for
// byte from the constraint, followed by the common name, so the subject
// lies in the subtree however a validator compares names (OpenSSL compares
// a canonical encoding, RFC 5280 §7.1 a normalized one). With several
// constraining certificates the subtree chosen is the longest permitted
// base that lies in a permitted subtree of every one of them; when there is
// none the CA refuses to issue a subject at all. Excluded subtrees are
// compared widely: RDN by RDN, attribute values case-insensitive with white
// space collapsed.

var oidNameConstraints = asn1.ObjectIdentifier{2, 5, 29, 30}

// dirSubtrees holds a certificate's directoryName subtrees, each the RDNs
// of its base Name (each RDN the full DER of its SET).
type dirSubtrees struct {
	permitted, excluded [][][]byte
}

func (d dirSubtrees) empty() bool { return len(d.permitted)+len(d.excluded) == 0 }

// dirNameConstraints returns the directoryName subtrees of c's
// nameConstraints extension (none when it has no such extension).
func dirNameConstraints(c *x509.Certificate) (dirSubtrees, error) {
	var d dirSubtrees
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidNameConstraints) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) > 0 || seq.Tag != asn1.TagSequence {
			return d, fmt.Errorf("name constraints of %q: not a SEQUENCE", c.Subject.CommonName)
		}
		for b := seq.Bytes; len(b) > 0; {
			var part asn1.RawValue
			var err error
			if b, err = asn1.Unmarshal(b, &part); err != nil || part.Class != asn1.ClassContextSpecific || part.Tag > 1 {
				return d, fmt.Errorf("name constraints of %q: malformed subtrees", c.Subject.CommonName)
			}
			names, err := dirNamesIn(part.Bytes)
			if err != nil {
				return d, fmt.Errorf("name constraints of %q: %w", c.Subject.CommonName, err)
			}
			if part.Tag == 0 {
				d.permitted = append(d.permitted, names...)
			} else {
				d.excluded = append(d.excluded, names...)
			}
		}
	}
	return d, nil
}

// dirNamesIn returns the RDNs of the directoryName bases among the
// GeneralSubtree elements in b (the contents of permittedSubtrees or
// excludedSubtrees); subtrees of other name forms are skipped.
func dirNamesIn(b []byte) ([][][]byte, error) {
	var names [][][]byte
	for len(b) > 0 {
		var sub, base asn1.RawValue
		var err error
		if b, err = asn1.Unmarshal(b, &sub); err != nil || sub.Tag != asn1.TagSequence {
			return nil, errors.New("malformed subtree")
		}
		if _, err = asn1.Unmarshal(sub.Bytes, &base); err != nil {
			return nil, errors.New("malformed subtree base")
		}
		if base.Class != asn1.ClassContextSpecific || base.Tag != 4 {
			continue // another name form
		}
		rdns, err := nameRDNs(base.Bytes)
		if err != nil {
			return nil, fmt.Errorf("directory name: %w", err)
		}
		names = append(names, rdns)
	}
	return names, nil
}

// nameRDNs splits the DER of a Name into the DER of its RDNs.
func nameRDNs(der []byte) ([][]byte, error) {
	var name asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &name); err != nil || len(rest) > 0 || name.Tag != asn1.TagSequence {
		return nil, errors.New("not a Name")
	}
	rdns := [][]byte{}
	for b := name.Bytes; len(b) > 0; {
		var rdn asn1.RawValue
		var err error
		if b, err = asn1.Unmarshal(b, &rdn); err != nil || rdn.Tag != asn1.TagSet {
			return nil, errors.New("not a Name: an RDN is not a SET")
		}
		rdns = append(rdns, rdn.FullBytes)
	}
	return rdns, nil
}

// rdnsPrefix reports whether base is the first RDNs of rdns, byte for byte.
func rdnsPrefix(base, rdns [][]byte) bool {
	return len(base) <= len(rdns) && slices.EqualFunc(base, rdns[:len(base)], bytes.Equal)
}

// rdnsWithin reports whether base is the first RDNs of rdns compared
// widely: the same attribute types, values equal ignoring case and runs of
// white space (an excluded subtree).
func rdnsWithin(base, rdns [][]byte) bool {
	if len(base) > len(rdns) {
		return false
	}
	for i := range base {
		a, b := rdnKey(base[i]), rdnKey(rdns[i])
		if a == "" || a != b {
			return false
		}
	}
	return true
}

// rdnKey is an RDN's comparison key: its attributes as "oid=value", values
// lower-cased with white space collapsed, sorted ("" when it cannot be
// parsed, which matches nothing).
func rdnKey(der []byte) string {
	var set pkix.RelativeDistinguishedNameSET
	if rest, err := asn1.UnmarshalWithParams(der, &set, "set"); err != nil || len(rest) > 0 || len(set) == 0 {
		return ""
	}
	keys := make([]string, len(set))
	for i, atv := range set {
		v := fmt.Sprint(atv.Value)
		keys[i] = atv.Type.String() + "=" + strings.ToLower(strings.Join(strings.Fields(v), " "))
	}
	slices.Sort(keys)
	return strings.Join(keys, "+")
}

// rdnsString shows RDNs as a distinguished name ("O=Example,OU=Web").
func rdnsString(rdns [][]byte) string {
	if len(rdns) == 0 {
		return "(the empty name: every subject)"
	}
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(wrapName(rdns), &seq); err != nil {
		return "(unreadable name)"
	}
	return seq.String()
}

// wrapName returns the DER Name of the given RDNs.
func wrapName(rdns [][]byte) []byte {
	b, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: bytes.Join(rdns, nil)})
	return b
}

// subjectFor returns the DER subject the CA writes for common name cn
// under the directoryName constraints of its certificate and chain, and
// the same as a pkix.Name. An empty cn gives the empty subject, which
// directoryName constraints do not bind.
func (a *Authority) subjectFor(cn, profile string) ([]byte, pkix.Name, error) {
	cnDER, err := subjectName(cn)
	if err != nil {
		return nil, pkix.Name{}, fmt.Errorf("encode subject %q: %w", cn, err)
	}
	if cn == "" {
		return cnDER, pkix.Name{}, nil
	}
	cs, err := dirConstraintsOf(a.Cert, a.Chain)
	if err != nil {
		return nil, pkix.Name{}, err
	}
	if len(cs) == 0 {
		return cnDER, pkix.Name{CommonName: cn}, nil
	}
	base, why := subjectBase(cs)
	if why != "" {
		return nil, pkix.Name{}, &SANError{Profile: profile, Kind: "subject", Value: "CN=" + cn, Reason: why}
	}
	var cnRDN asn1.RawValue
	if _, err := asn1.Unmarshal(cnDER, &cnRDN); err != nil {
		return nil, pkix.Name{}, fmt.Errorf("encode subject %q: %w", cn, err)
	}
	rdns := append(slices.Clone(base), cnRDN.Bytes)
	for _, c := range cs {
		for _, e := range c.excluded {
			if rdnsWithin(e, rdns) {
				return nil, pkix.Name{}, &SANError{Profile: profile, Kind: "subject", Value: rdnsString(rdns),
					Reason: fmt.Sprintf("outside the name constraints of CA certificate %q (excluded: directory name %s)", c.cert.Subject.CommonName, rdnsString(e))}
			}
		}
	}
	der := wrapName(rdns)
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(der, &seq); err != nil {
		return nil, pkix.Name{}, fmt.Errorf("encode subject %q: %w", cn, err)
	}
	var name pkix.Name
	name.FillFromRDNSequence(&seq)
	return der, name, nil
}

// constraining is a certificate with directory-name subtrees.
type constraining struct {
	cert *x509.Certificate
	dirSubtrees
}

// dirConstraintsOf returns the certificates among cert and chain that
// carry directory-name subtrees.
func dirConstraintsOf(cert *x509.Certificate, chain []*x509.Certificate) ([]constraining, error) {
	var cs []constraining
	for c := range withChain(cert, chain) {
		d, err := dirNameConstraints(c)
		if err != nil {
			return nil, err
		}
		if !d.empty() {
			cs = append(cs, constraining{c, d})
		}
	}
	return cs, nil
}

// subjectBase chooses the RDNs subjects begin with: the longest permitted
// subtree inside a permitted subtree of every certificate that has any
// (none when no certificate permits a subtree). why says, when there is
// no such subtree, why no subject can be issued.
func subjectBase(cs []constraining) (base [][]byte, why string) {
	found, anyPermitted := false, false
	for _, c := range cs {
		for _, p := range c.permitted {
			anyPermitted = true
			if (!found || len(p) > len(base)) && slices.IndexFunc(cs, func(o constraining) bool {
				return len(o.permitted) > 0 && !slices.ContainsFunc(o.permitted, func(q [][]byte) bool { return rdnsPrefix(q, p) })
			}) < 0 {
				base, found = p, true
			}
		}
	}
	if !anyPermitted || found {
		return base, ""
	}
	var s []string
	for _, c := range cs {
		for _, p := range c.permitted {
			s = append(s, fmt.Sprintf("%s in %q", rdnsString(p), c.cert.Subject.CommonName))
		}
	}
	return nil, "no subject satisfies the directory-name constraints of the CA certificates together (permitted: " + strings.Join(s, "; ") + ")"
}

// CheckSubjectConstraints reports whether the directory-name constraints
// of a CA certificate and the chain above it leave a subject for the
// certificates the CA issues: an error saying why not when every request
// with a common name would be refused, nil otherwise (install-cert warns
// with it).
func CheckSubjectConstraints(cert *x509.Certificate, chain []*x509.Certificate) error {
	cs, err := dirConstraintsOf(cert, chain)
	if err != nil {
		return err
	}
	if _, why := subjectBase(cs); why != "" {
		return fmt.Errorf("%s: every request with a common name will be refused: %w", why, ErrSANNotAllowed)
	}
	return nil
}

// describeDirNames returns the directoryName part of c's constraints for
// DescribeNameConstraints: permitted and excluded lists, "" for none.
func describeDirNames(c *x509.Certificate) (permitted, excluded string) {
	d, err := dirNameConstraints(c)
	if err != nil {
		return "directory name (unreadable: " + err.Error() + ")", ""
	}
	show := func(subtrees [][][]byte) string {
		if len(subtrees) == 0 {
			return ""
		}
		s := make([]string, len(subtrees))
		for i, t := range subtrees {
			s[i] = rdnsString(t)
		}
		return "directory name " + strings.Join(s, "; ")
	}
	return show(d.permitted), show(d.excluded)
}

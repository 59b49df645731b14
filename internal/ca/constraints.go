package ca

import (
	"crypto/x509"
	"fmt"
	"iter"
	"net"
	"net/url"
	"strings"
)

// Name constraints (RFC 5280 §4.2.1.10) in the CA certificate or a
// certificate above it bind every certificate the CA issues: a relying
// party refuses a certificate with a name outside them. The CA so refuses
// to issue one, naming the name and the certificate whose constraint it
// breaks, instead of handing out a certificate nobody will accept.
//
// Validators read some forms differently (an rfc822Name or URI constraint
// "example.com": RFC 5280 and OpenSSL mean that host only, Go's crypto/x509
// that host and its subdomains; a wildcard name under an excluded host).
// certsrv takes the narrowest reading of a permitted subtree and the
// widest of an excluded one, so that what it issues passes every reading.
// The name forms checked are those certsrv issues: DNS names, IP
// addresses, email addresses and URIs here, the subject against
// directoryName subtrees in dirname.go.

// checkNameConstraints returns a *SANError (ErrSANNotAllowed) for the
// first name in n that the name constraints of a.Cert or a.Chain forbid.
func (a *Authority) checkNameConstraints(n issuedNames, profile string) error {
	for c := range withChain(a.Cert, a.Chain) {
		if !hasNameConstraints(c) {
			continue
		}
		refuse := func(kind, value, why string) error {
			return &SANError{Profile: profile, Kind: kind, Value: value,
				Reason: fmt.Sprintf("outside the name constraints of CA certificate %q (%s)", c.Subject.CommonName, why)}
		}
		for _, d := range n.DNS {
			if why, ok := dnsAllowed(d, c.PermittedDNSDomains, c.ExcludedDNSDomains); !ok {
				return refuse("dns", d, why)
			}
		}
		for _, ip := range n.IPs {
			if why, ok := ipAllowed(ip, c.PermittedIPRanges, c.ExcludedIPRanges); !ok {
				return refuse("ip", ip.String(), why)
			}
		}
		for _, e := range n.Emails {
			if why, ok := emailAllowed(e, c.PermittedEmailAddresses, c.ExcludedEmailAddresses); !ok {
				return refuse("email", e, why)
			}
		}
		for _, u := range n.URIs {
			if why, ok := uriAllowed(u, c.PermittedURIDomains, c.ExcludedURIDomains); !ok {
				return refuse("uri", u.String(), why)
			}
		}
	}
	return nil
}

// CheckNameConstraints returns a *SANError (ErrSANNotAllowed) when a
// certificate issued for csr under profile p would carry a name outside
// the name constraints of the CA certificate or a certificate above it,
// and the profile's own name errors as IssueCertificate would. Submit
// checks a request with it before recording it as pending, so that the
// requester learns at once rather than when an officer approves.
func (a *Authority) CheckNameConstraints(csr *x509.CertificateRequest, p Profile) error {
	names, err := namesFor(csr, p)
	if err != nil {
		return err
	}
	if err := a.checkNameConstraints(names, p.Name); err != nil {
		return err
	}
	_, _, err = a.subjectFor(names.CN, p.Name)
	return err
}

// withChain yields cert, then each certificate of chain, skipping nil
// ones: the certificates whose name constraints bind what the CA issues.
func withChain(cert *x509.Certificate, chain []*x509.Certificate) iter.Seq[*x509.Certificate] {
	return func(yield func(*x509.Certificate) bool) {
		for i := -1; i < len(chain); i++ {
			c := cert
			if i >= 0 {
				c = chain[i]
			}
			if c != nil && !yield(c) {
				return
			}
		}
	}
}

func hasNameConstraints(c *x509.Certificate) bool {
	return len(c.PermittedDNSDomains)+len(c.ExcludedDNSDomains)+
		len(c.PermittedIPRanges)+len(c.ExcludedIPRanges)+
		len(c.PermittedEmailAddresses)+len(c.ExcludedEmailAddresses)+
		len(c.PermittedURIDomains)+len(c.ExcludedURIDomains) > 0
}

// subtrees applies one name form's permitted and excluded subtrees to a
// name: within(c, wide) reports whether the name lies in constraint c,
// wide for an excluded subtree (read widely), narrow for a permitted one.
// It returns why the name is refused, or ok.
func subtrees[C any](permitted, excluded []C, within func(c C, wide bool) bool, show func(C) string) (string, bool) {
	for _, c := range excluded {
		if within(c, true) {
			return "excluded: " + show(c), false
		}
	}
	if len(permitted) == 0 {
		return "", true
	}
	for _, c := range permitted {
		if within(c, false) {
			return "", true
		}
	}
	s := make([]string, len(permitted))
	for i, c := range permitted {
		s[i] = show(c)
	}
	return "permitted: " + strings.Join(s, ", "), false
}

func same(s string) string { return s }

// dnsAllowed applies DNS constraints to name (which may be a wildcard,
// "*.example.com"). A constraint "example.com" covers that name and every
// name below it; ".example.com" only the names below it. A wildcard is
// also excluded when one of the names it stands for is.
func dnsAllowed(name string, permitted, excluded []string) (string, bool) {
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		for _, c := range excluded {
			// "*.example.com" stands for "bad.example.com".
			if _, parent, found := strings.Cut(c, "."); found && !strings.HasPrefix(c, ".") && strings.EqualFold(parent, rest) {
				return "excluded: " + c + ", which the wildcard covers", false
			}
		}
	}
	return subtrees(permitted, excluded, func(c string, wide bool) bool { return dnsWithin(name, c, wide) }, same)
}

// dnsWithin reports whether host lies in the subtree of constraint c. A
// leading dot means strictly below c; wide (for an excluded subtree) also
// counts c's own host as within ".c".
func dnsWithin(host, c string, wide bool) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	c = strings.ToLower(c)
	if c == "" || c == "." {
		return true
	}
	if d, below := strings.CutPrefix(c, "."); below {
		return strings.HasSuffix(host, "."+d) || (wide && host == d)
	}
	return host == c || strings.HasSuffix(host, "."+c)
}

func ipAllowed(ip net.IP, permitted, excluded []*net.IPNet) (string, bool) {
	return subtrees(permitted, excluded, func(n *net.IPNet, _ bool) bool { return ipIn(ip, n) }, (*net.IPNet).String)
}

// ipIn reports whether ip is in n, both of the same family (an IPv4
// address is not within an IPv6 range, as in crypto/x509 and OpenSSL).
func ipIn(ip net.IP, n *net.IPNet) bool {
	if v4 := ip.To4(); v4 != nil && len(n.IP) == net.IPv4len {
		ip = v4
	}
	return len(ip) == len(n.IP) && len(n.Mask) == len(n.IP) && n.Contains(ip)
}

func joinNets(ns []*net.IPNet) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.String()
	}
	return strings.Join(s, ", ")
}

// emailAllowed applies rfc822Name constraints: "user@host" is that
// mailbox, ".example.com" any host below example.com, "example.com" the
// host example.com (and, read widely for an excluded subtree, the hosts
// below it too).
func emailAllowed(addr string, permitted, excluded []string) (string, bool) {
	local, host, ok := strings.Cut(addr, "@")
	if !ok {
		return "not an email address", false
	}
	return subtrees(permitted, excluded, func(c string, wide bool) bool {
		if cl, ch, mailbox := strings.Cut(c, "@"); mailbox {
			return local == cl && strings.EqualFold(host, ch)
		}
		return hostWithin(host, c, wide)
	}, same)
}

// uriAllowed applies URI constraints to the URI's host, read like email
// host constraints. A URI whose host is an IP address or empty matches no
// constraint (crypto/x509 refuses such a URI under any URI constraint).
func uriAllowed(u *url.URL, permitted, excluded []string) (string, bool) {
	if len(permitted)+len(excluded) == 0 {
		return "", true
	}
	host := u.Hostname()
	if host == "" || net.ParseIP(host) != nil {
		return "a URI constraint applies and the URI's host is not a domain name", false
	}
	return subtrees(permitted, excluded, func(c string, wide bool) bool { return hostWithin(host, c, wide) }, same)
}

// hostWithin is the host rule of rfc822Name and URI constraints: a leading
// dot means strictly below the domain; no dot means that host exactly, or
// when wide that host and the hosts below it.
func hostWithin(host, c string, wide bool) bool {
	if strings.HasPrefix(c, ".") {
		return dnsWithin(host, c, wide)
	}
	host, c = strings.ToLower(host), strings.ToLower(c)
	return host == c || (wide && strings.HasSuffix(host, "."+c))
}

// DescribeNameConstraints returns the name constraints of c in one line
// ("permitted DNS example.com, IP 10.0.0.0/8; excluded DNS
// secret.example.com"), or "" when it has none.
func DescribeNameConstraints(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	dirPermitted, dirExcluded := describeDirNames(c)
	if !hasNameConstraints(c) && dirPermitted == "" && dirExcluded == "" {
		return ""
	}
	part := func(dns []string, ips []*net.IPNet, emails, uris []string) string {
		var s []string
		add := func(kind string, vs []string) {
			if len(vs) > 0 {
				s = append(s, kind+" "+strings.Join(vs, ", "))
			}
		}
		add("DNS", dns)
		if len(ips) > 0 {
			s = append(s, "IP "+joinNets(ips))
		}
		add("email", emails)
		add("URI", uris)
		return strings.Join(s, ", ")
	}
	join := func(a, b string) string {
		if a == "" || b == "" {
			return a + b
		}
		return a + ", " + b
	}
	var out []string
	if p := join(part(c.PermittedDNSDomains, c.PermittedIPRanges, c.PermittedEmailAddresses, c.PermittedURIDomains), dirPermitted); p != "" {
		out = append(out, "permitted "+p)
	}
	if e := join(part(c.ExcludedDNSDomains, c.ExcludedIPRanges, c.ExcludedEmailAddresses, c.ExcludedURIDomains), dirExcluded); e != "" {
		out = append(out, "excluded "+e)
	}
	return strings.Join(out, "; ")
}

package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/store"
)

// maxDynamicFile bounds a file of Dynamic/ that is read into memory (CA
// certificates and CRLs are far smaller).
const maxDynamicFile = 256 << 20

// dynamicFile is a file of Dynamic/ parsed: certificates or a CRL.
type dynamicFile struct {
	rel   string
	certs []*x509.Certificate
	crl   *x509.RevocationList
	err   error // neither could be parsed, or the file could not be read
}

// readDynamic reads and parses every file of Dynamic/: DER or PEM
// certificates, or a DER or PEM CRL.
func readDynamic(info *setInfo) []dynamicFile {
	out := make([]dynamicFile, 0, len(info.dynamic))
	for _, rel := range info.dynamic {
		df := dynamicFile{rel: rel}
		b, err := readLimited(info.local(rel), maxDynamicFile)
		if err != nil {
			df.err = err
			out = append(out, df)
			continue
		}
		df.certs, df.crl, df.err = parseCertsOrCRL(b)
		out = append(out, df)
	}
	return out
}

// readLimited reads a file of at most limit bytes.
func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// parseCertsOrCRL parses b as one DER certificate, one DER CRL, or PEM
// holding certificates or one CRL.
func parseCertsOrCRL(b []byte) ([]*x509.Certificate, *x509.RevocationList, error) {
	if c, err := x509.ParseCertificate(b); err == nil {
		return []*x509.Certificate{c}, nil, nil
	}
	if l, err := x509.ParseRevocationList(b); err == nil {
		return nil, l, nil
	}
	var certs []*x509.Certificate
	var crl *x509.RevocationList
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM certificate: %w", err)
			}
			certs = append(certs, c)
		case "X509 CRL":
			l, err := x509.ParseRevocationList(blk.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM CRL: %w", err)
			}
			crl = l
		}
	}
	if len(certs) == 0 && crl == nil {
		return nil, nil, fmt.Errorf("neither a certificate nor a CRL, in DER or PEM")
	}
	return certs, crl, nil
}

// findCACert picks the CA certificate among the dynamic files: the one
// whose SHA-256 the set records, that is the manifest's, or without a
// manifest the one internal/backupset's Derive chose (a CA certificate
// whose common name is the set's CA name, Dynamic/<CA>.crt first). It
// prefers the copy in Dynamic/<CA>.crt. It checks that the certificate is a CA
// certificate for the set's CA name, and that every dynamic CRL verifies
// against it.
func findCACert(info *setInfo, dyn []dynamicFile, cs *checks) *x509.Certificate {
	var (
		cert    *x509.Certificate
		certRel string
	)
	wantName := backupset.DynamicDir + "/" + info.caName + ".crt"
	for _, df := range dyn {
		if df.err != nil {
			cs.add(problemf(CheckCACert, df.rel, ErrCACertificate, "%v", df.err))
			continue
		}
		for _, c := range df.certs {
			sum := sha256.Sum256(c.Raw)
			match := info.certSHA256 != "" && hex.EncodeToString(sum[:]) == info.certSHA256
			if match && (cert == nil || df.rel == wantName) {
				cert, certRel = c, df.rel
			}
		}
	}
	if cert == nil {
		if info.hasManifest {
			cs.add(problemf(CheckCACert, wantName, ErrCACertificate,
				"no file in %s/ holds the CA certificate the manifest names (SHA-256 %s)", backupset.DynamicDir, info.certSHA256))
		} else {
			cs.add(problemf(CheckCACert, wantName, ErrCACertificate,
				"no file in %s/ holds a CA certificate with common name %q", backupset.DynamicDir, info.caName))
		}
		return nil
	}
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		cs.add(problemf(CheckCACert, certRel, ErrCACertificate, "the certificate is not a CA certificate (basic constraints)"))
	case cert.Subject.CommonName != info.caName:
		cs.add(problemf(CheckCACert, certRel, ErrCACertificate, "the certificate's common name is %q, the set's CA is %q",
			cert.Subject.CommonName, info.caName))
	}
	for _, df := range dyn {
		if df.crl == nil {
			continue
		}
		if err := df.crl.CheckSignatureFrom(cert); err != nil {
			cs.add(problemf(CheckCACert, df.rel, ErrCRL, "the published CRL does not verify against the CA certificate: %v", err))
		}
	}
	how := "the manifest's"
	if !info.hasManifest {
		how = "a CA certificate for " + fmt.Sprintf("%q", info.caName)
	}
	cs.pass(CheckCACert, fmt.Sprintf("%s is %s (%s, valid until %s); the published CRLs verify against it",
		certRel, how, cert.Subject.CommonName, cert.NotAfter.UTC().Format("2006-01-02")))
	return cert
}

// checkCertificates verifies every issued certificate in the restored
// database at dbPath against the CA certificate, reading them one at a
// time (store.EachCertificate) so that memory does not grow with the
// database, and spreading the signature checks over the CPUs: each must
// parse, carry the serial number and validity the database records, name
// the CA as issuer, and its signature must verify. want is the number of
// certificates the dump counted; progress counts them as they are checked.
// It returns the number checked.
func checkCertificates(ctx context.Context, caCert *x509.Certificate, dbPath string, want int64, progress *Progress, cs *checks) (int, error) {
	progress.expectCerts(want)
	type item struct {
		i int
		c store.Certificate
	}
	work := make(chan item, 256)
	var (
		mu    sync.Mutex
		found = map[int]*Problem{}
		wg    sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if p := checkCertificate(caCert, &it.c); p != nil {
					mu.Lock()
					found[it.i] = p
					mu.Unlock()
				}
				progress.certChecked()
			}
		}()
	}
	n := 0
	err := store.EachCertificate(ctx, dbPath, func(c *store.Certificate) error {
		select {
		case work <- item{n, *c}:
			n++
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(work)
	wg.Wait()
	if cerr := ctx.Err(); cerr != nil {
		return 0, cerr
	}
	if err != nil {
		if environmental(err, filepath.Dir(dbPath)) {
			return 0, &EnvironmentError{Op: "read the certificates of the restored copy", Path: dbPath, Err: err}
		}
		cs.add(problemf(CheckCerts, "", ErrCertificate, "read the restored database's certificates: %v", err))
		return n, nil
	}
	for i := range n {
		if p := found[i]; p != nil {
			cs.add(p)
		}
	}
	if int64(n) != want {
		cs.add(problemf(CheckCerts, "", ErrInconsistent, "the restored database yielded %d certificates one by one and %d in its dump", n, want))
	}
	if n == 1 {
		cs.pass(CheckCerts, "1 issued certificate verifies against the CA certificate and matches its database record")
	} else {
		cs.pass(CheckCerts, fmt.Sprintf("%d issued certificates verify against the CA certificate and match their database records", n))
	}
	return n, nil
}

// checkCertificate checks one issued certificate; nil means it is good.
func checkCertificate(caCert *x509.Certificate, c *store.Certificate) *Problem {
	bad := func(format string, args ...any) *Problem {
		return problemf(CheckCerts, "", ErrCertificate, "request %d, serial %s: %s", c.RequestID, c.Serial, fmt.Sprintf(format, args...))
	}
	x, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return bad("the stored certificate does not parse: %v", err)
	}
	if s := ca.SerialString(x.SerialNumber); s != c.Serial {
		return bad("the certificate's serial number is %s", s)
	}
	if !bytes.Equal(x.RawIssuer, caCert.RawSubject) {
		return bad("issued by %q, not by the CA %q", x.Issuer.String(), caCert.Subject.String())
	}
	if err := x.CheckSignatureFrom(caCert); err != nil {
		return bad("the signature does not verify against the CA certificate: %v", err)
	}
	if !x.NotBefore.Equal(c.NotBefore) || !x.NotAfter.Equal(c.NotAfter) {
		return bad("the certificate is valid %s..%s, the database records %s..%s",
			x.NotBefore.UTC().Format(timeFmt), x.NotAfter.UTC().Format(timeFmt), c.NotBefore.UTC().Format(timeFmt), c.NotAfter.UTC().Format(timeFmt))
	}
	return nil
}

// timeFmt is how times appear in problems and reports.
const timeFmt = "2006-01-02T15:04:05Z07:00"

// crlName names a recorded CRL in problems.
func crlName(c store.CRL) string {
	if c.Delta {
		return fmt.Sprintf("delta CRL %d", c.Number)
	}
	return fmt.Sprintf("CRL %d", c.Number)
}

// dynamicCRLs returns the CRLs published in Dynamic/ by path.
func dynamicCRLs(dyn []dynamicFile) map[string]*x509.RevocationList {
	out := map[string]*x509.RevocationList{}
	for _, df := range dyn {
		if df.crl != nil {
			out[df.rel] = df.crl
		}
	}
	return out
}

// sameCRLNumber reports whether a published CRL has the number n.
func sameCRLNumber(l *x509.RevocationList, n uint64) bool {
	return l.Number != nil && l.Number.IsUint64() && l.Number.Uint64() == n
}

// checkPublished compares each CRL in Dynamic/ with the recorded CRL of
// the same number, when the restored database has one: a published file
// must be exactly what was recorded. (A CRL published after the set's last
// log record is not in the database, and is only checked against the CA
// certificate.)
func checkPublished(d *store.Dump, dyn []dynamicFile, cs *checks) {
	for rel, l := range dynamicCRLs(dyn) {
		for _, c := range d.CRLs {
			if sameCRLNumber(l, c.Number) && !bytes.Equal(l.Raw, c.DER) {
				cs.add(problemf(CheckCRLs, rel, ErrCRL, "the published file has number %d but differs from %s recorded in the database",
					c.Number, crlName(c)))
			}
		}
	}
}

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certsrv/certsrv/certadm"
)

// makeCSRs returns n DER PKCS#10 requests, each with a fresh ECDSA P-256
// key, CN=<prefix>-<i>.e2e.test and that name plus extra more DNS names
// as subject alternative names. They are made on every core.
func makeCSRs(tb testing.TB, n, extra int, prefix string) [][]byte {
	tb.Helper()
	out := make([][]byte, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 4 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				der, err := newCSR(fmt.Sprintf("%s-%d.e2e.test", prefix, i), extra)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				out[i] = der
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		tb.Fatal(err)
	default:
	}
	return out
}

// newCSR makes one request for CN=name with DNS SANs name and extra more
// names under it.
func newCSR(name string, extra int) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	names := []string{name}
	for i := range extra {
		names = append(names, fmt.Sprintf("host%03d.%s", i, name))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: name, Organization: []string{"certsrv end-to-end tests"}},
		DNSNames: names,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create request: %w", err)
	}
	return der, nil
}

// percentile returns the q-quantile (0 < q <= 1) of sorted by the
// nearest-rank method (as certadm bench issue computes it), or 0 for an
// empty slice.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted))+0.999999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

// issueResult is what one issuance run measured.
type issueResult struct {
	Issued   int             // requests answered with an issued certificate
	Other    int             // requests answered, but not issued
	Errors   int             // failed submissions
	FirstErr error           // the first failure
	Lat      []time.Duration // latency of every answered submission, sorted
	Elapsed  time.Duration   // from the first submission to the last answer
}

// Rate is issued certificates per second.
func (r issueResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Issued) / r.Elapsed.Seconds()
}

// P50 and P99 are latency percentiles.
func (r issueResult) P50() time.Duration { return percentile(r.Lat, 0.50) }
func (r issueResult) P99() time.Duration { return percentile(r.Lat, 0.99) }

// issueSpec says how runIssue submits.
type issueSpec struct {
	Clients []*certadm.Client // worker w uses Clients[w % len]
	Workers int
	CSRs    [][]byte // submitted in order, round-robin when N exceeds them
	// N is the number of submissions; 0 means until Stop is closed.
	N int
	// Stop, when not nil, ends the run: workers finish the submission in
	// flight and stop.
	Stop <-chan struct{}
	// OnIssued, when not nil, is called (from the workers) with every
	// issued request and the time its answer arrived.
	OnIssued func(r *certadm.Request, at time.Time)
}

// runIssue submits requests over gRPC from s.Workers goroutines as
// certadm bench issue does, and measures them.
func runIssue(ctx context.Context, s issueSpec) issueResult {
	var (
		next atomic.Int64
		mu   sync.Mutex
		res  issueResult
		wg   sync.WaitGroup
	)
	stopped := func() bool {
		if s.Stop == nil {
			return false
		}
		select {
		case <-s.Stop:
			return true
		default:
			return false
		}
	}
	start := time.Now()
	for w := range s.Workers {
		client := s.Clients[w%len(s.Clients)]
		wg.Go(func() {
			var lat []time.Duration
			defer func() {
				mu.Lock()
				res.Lat = append(res.Lat, lat...)
				mu.Unlock()
			}()
			for !stopped() && ctx.Err() == nil {
				i := next.Add(1) - 1
				if s.N > 0 && i >= int64(s.N) {
					return
				}
				t0 := time.Now()
				r, err := client.Submit(ctx, s.CSRs[i%int64(len(s.CSRs))], "")
				t1 := time.Now()
				if err != nil {
					mu.Lock()
					res.Errors++
					if res.FirstErr == nil {
						res.FirstErr = err
					}
					mu.Unlock()
					continue
				}
				lat = append(lat, t1.Sub(t0))
				issued := r.Status == certadm.StatusIssued && r.Certificate != nil
				if issued && s.OnIssued != nil {
					s.OnIssued(r, t1)
				}
				mu.Lock()
				if issued {
					res.Issued++
				} else {
					res.Other++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Lat)
	return res
}

// acked is a certificate the server returned as issued.
type acked struct {
	Serial string
	DER    []byte
	At     time.Time // when the answer arrived
}

// revAck is a revocation or release from hold the server acknowledged.
type revAck struct {
	Serial  string
	Reason  int  // RFC 5280 reason; meaningful when Release is false
	Release bool // an Unrevoke of a certificate on hold
	At      time.Time
}

// crlAck is a CRL the server published on request.
type crlAck struct {
	Number string
	Delta  bool
	At     time.Time
}

// caLoad is the traffic of a working CA: issuance from several workers,
// an officer revoking some of what was issued (and releasing some
// holds), and CRLs published every few hundred milliseconds. Everything
// the server acknowledged is recorded with the time of the answer.
type caLoad struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	serials chan string // issued serials for the revoker

	mu     sync.Mutex
	certs  []acked
	revs   []revAck
	crls   []crlAck
	errs   []error
	issued issueResult
}

// revocationReasons are the reasons the load uses, in turn.
var revocationReasons = []struct {
	name string
	code int
}{{"keyCompromise", 1}, {"superseded", 4}, {"certificateHold", 6}, {"cessationOfOperation", 5}}

// startLoad starts the load against s; stopLoad ends it.
func startLoad(ctx context.Context, tb testing.TB, s *caServer, workers int, csrs [][]byte) *caLoad {
	l := &caLoad{stop: make(chan struct{}), serials: make(chan string, 1<<16)}
	clients := s.dialN(tb, workers)
	officer := s.dial(tb)
	l.wg.Go(func() {
		res := runIssue(ctx, issueSpec{
			Clients: clients, Workers: workers, CSRs: csrs, Stop: l.stop,
			OnIssued: func(r *certadm.Request, at time.Time) {
				l.mu.Lock()
				l.certs = append(l.certs, acked{Serial: r.Certificate.Serial, DER: r.Certificate.DER, At: at})
				l.mu.Unlock()
				select {
				case l.serials <- r.Certificate.Serial:
				default:
				}
			},
		})
		l.mu.Lock()
		l.issued = res
		if res.Errors > 0 {
			l.errs = append(l.errs, fmt.Errorf("%d submissions failed, first: %w", res.Errors, res.FirstErr))
		}
		l.mu.Unlock()
	})
	l.wg.Go(func() { l.revoker(ctx, officer) })
	l.wg.Go(func() { l.publisher(ctx, officer) })
	return l
}

// fail records an error of the load.
func (l *caLoad) fail(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

// revoker revokes one issued certificate in four, cycling through
// revocationReasons, and releases every second certificate it put on hold.
func (l *caLoad) revoker(ctx context.Context, c *certadm.Client) {
	var n, holds int
	for {
		var serial string
		select {
		case <-l.stop:
			return
		case serial = <-l.serials:
		}
		n++
		if n%4 != 0 {
			continue
		}
		reason := revocationReasons[(n/4)%len(revocationReasons)]
		if _, err := c.Revoke(ctx, serial, reason.name); err != nil {
			l.fail(fmt.Errorf("revoke %s: %w", serial, err))
			continue
		}
		l.mu.Lock()
		l.revs = append(l.revs, revAck{Serial: serial, Reason: reason.code, At: time.Now()})
		l.mu.Unlock()
		if reason.code != 6 {
			continue
		}
		if holds++; holds%2 == 0 {
			if _, err := c.Unrevoke(ctx, serial); err != nil {
				l.fail(fmt.Errorf("unrevoke %s: %w", serial, err))
				continue
			}
			l.mu.Lock()
			l.revs = append(l.revs, revAck{Serial: serial, Release: true, At: time.Now()})
			l.mu.Unlock()
		}
	}
}

// publisher publishes a full CRL, then a delta CRL, in turn, every 150 ms.
func (l *caLoad) publisher(ctx context.Context, c *certadm.Client) {
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		delta := i%2 == 1
		info, err := c.PublishCRL(ctx, delta)
		if err != nil {
			l.fail(fmt.Errorf("publish CRL (delta %v): %w", delta, err))
			continue
		}
		l.mu.Lock()
		l.crls = append(l.crls, crlAck{Number: info.Number, Delta: info.Delta, At: time.Now()})
		l.mu.Unlock()
	}
}

// counts returns how many certificates, revocations and CRLs were
// acknowledged so far.
func (l *caLoad) counts() (certs, revs, crls int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.certs), len(l.revs), len(l.crls)
}

// waitCounts waits until at least the given numbers were acknowledged.
func (l *caLoad) waitCounts(d time.Duration, certs, revs, crls int) error {
	deadline := time.Now().Add(d)
	for {
		c, r, n := l.counts()
		if c >= certs && r >= revs && n >= crls {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %d certificates, %d revocations, %d CRLs; want %d, %d, %d", d, c, r, n, certs, revs, crls)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopLoad ends the load, waits for every worker, and returns the load's
// errors joined.
func (l *caLoad) stopLoad() error {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.errs...)
}

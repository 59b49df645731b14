package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newBenchCmd(a *app) *cobra.Command {
	return group("bench", "Measure the server", newBenchIssueCmd(a))
}

// benchOptions are the bench issue flags.
type benchOptions struct {
	n, c        int
	profile     string
	connections string // "shared", "per-worker", "both" or a number
}

func newBenchIssueCmd(a *app) *cobra.Command {
	o := benchOptions{}
	cmd := &cobra.Command{
		Use:   "issue -n N -c C",
		Short: "Submit N generated requests from C concurrent workers and report certificates/s",
		Long: `Submit N ECDSA P-256 certificate requests from C concurrent workers and
report issued certificates per second, the median (p50) and 99th
percentile (p99) submission latency, the number of errors, and the CPU
time this client used per request. Each worker generates its requests
before the clock starts; the clock runs from the first submission to the
last answer, and a latency is the time from sending a request to its
answer.

--connections shared (the default) runs every worker over one HTTP/2
connection, as a gRPC client normally does; per-worker gives each worker
its own connection; a number N spreads the workers over N connections;
both measures shared and per-worker one after the other and says which
was faster. On two cores, 64 workers over one connection cost the client
about half the CPU of 64 connections and the server about 15 % less
(docs/BENCHMARKS.md), because each connection's writer batches the
answers of all its streams into fewer system calls and TLS records.
The profile must issue at once (certificates left pending are counted
apart, not as issued).`,
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, args []string) error {
			if o.n <= 0 || o.c <= 0 {
				return usagef("-n and -c must be positive")
			}
			if o.c > o.n {
				o.c = o.n
			}
			modes, err := connectionCounts(o.connections, o.c)
			if err != nil {
				return err
			}
			var results []benchResult
			for _, conns := range modes {
				r, err := a.benchIssue(ctx, o, conns)
				if err != nil {
					return err
				}
				r.print(a.stdout)
				results = append(results, r)
			}
			if len(results) == 2 {
				best := results[0]
				if results[1].rate() > best.rate() {
					best = results[1]
				}
				a.printf("faster: %s\n", best.mode())
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.IntVarP(&o.n, "n", "n", 1000, "number of requests to submit")
	f.IntVarP(&o.c, "c", "c", 8, "number of concurrent workers")
	f.StringVar(&o.profile, "profile", "", "certificate profile (default: the server's)")
	f.StringVar(&o.connections, "connections", "shared", "shared, per-worker, both or a number of connections")
	return cmd
}

// benchResult is one measured run.
type benchResult struct {
	n, workers, conns int
	elapsed           time.Duration
	issued, pending   int
	errors            int
	firstErr          error
	latencies         []time.Duration // successful submissions
	cpu               time.Duration   // this process's CPU time while the clock ran
}

func (r benchResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.issued) / r.elapsed.Seconds()
}

func (r benchResult) mode() string {
	if r.conns == 1 {
		return "one shared connection"
	}
	return fmt.Sprintf("%d connections", r.conns)
}

// percentile returns the q-quantile (0 < q <= 1) of sorted by the
// nearest-rank method, or 0 for an empty slice.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted))+0.999999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

func (r benchResult) print(w io.Writer) {
	slices.Sort(r.latencies)
	fmt.Fprintf(w, "%s, %s, %s: %d issued in %s\n", count(r.n, "request", "requests"), count(r.workers, "worker", "workers"), r.mode(), r.issued, r.elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "certificates/s: %.1f\n", r.rate())
	fmt.Fprintf(w, "p50: %s  p99: %s\n", percentile(r.latencies, 0.50).Round(10*time.Microsecond), percentile(r.latencies, 0.99).Round(10*time.Microsecond))
	fmt.Fprintf(w, "errors: %d  pending: %d\n", r.errors, r.pending)
	if done := r.issued + r.pending; done > 0 && r.cpu > 0 {
		fmt.Fprintf(w, "client CPU: %s per request\n", (r.cpu / time.Duration(done)).Round(time.Microsecond))
	}
	if r.firstErr != nil {
		fmt.Fprintf(w, "first error: %v\n", r.firstErr)
	}
}

// connectionCounts reads --connections for c workers: the number of
// connections of each run.
func connectionCounts(flag string, c int) ([]int, error) {
	switch flag {
	case "shared":
		return []int{1}, nil
	case "per-worker":
		return []int{c}, nil
	case "both":
		return []int{1, c}, nil
	}
	n, err := strconv.Atoi(flag)
	if err != nil || n <= 0 {
		return nil, usagef("--connections %q: want shared, per-worker, both or a positive number", flag)
	}
	return []int{min(n, c)}, nil
}

// benchIssue runs one measurement with the workers spread over conns
// connections.
func (a *app) benchIssue(ctx context.Context, o benchOptions, conns int) (benchResult, error) {
	res := benchResult{n: o.n, workers: o.c, conns: conns}
	clients := make([]*certadm.Client, res.conns)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range clients {
		c, err := a.dial(ctx)
		if err != nil {
			return res, err
		}
		clients[i] = c
	}

	// Each worker makes its share of the requests before the clock starts.
	shares := make([][][]byte, o.c)
	var wg sync.WaitGroup
	errs := make([]error, o.c)
	for w := range o.c {
		count := o.n / o.c
		if w < o.n%o.c {
			count++
		}
		wg.Go(func() {
			for i := range count {
				csr, err := benchCSR(fmt.Sprintf("bench-%d-%d.test", w, i))
				if err != nil {
					errs[w] = err
					return
				}
				shares[w] = append(shares[w], csr)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}

	var mu sync.Mutex
	cpu0 := processCPU()
	start := time.Now()
	for w := range o.c {
		client := clients[w%len(clients)]
		wg.Go(func() {
			for _, csr := range shares[w] {
				t0 := time.Now()
				r, err := client.Submit(ctx, csr, o.profile)
				d := time.Since(t0)
				mu.Lock()
				switch {
				case err != nil:
					res.errors++
					if res.firstErr == nil {
						res.firstErr = err
					}
				case r.Status == certadm.StatusIssued:
					res.issued++
					res.latencies = append(res.latencies, d)
				default:
					res.pending++
					res.latencies = append(res.latencies, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if cpu0 > 0 {
		res.cpu = processCPU() - cpu0
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("bench interrupted: %w", err)
	}
	return res, nil
}

// benchCSR makes a DER PKCS#10 request for CN=name with DNS SAN
// name and a fresh ECDSA P-256 key.
func benchCSR(name string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: name},
		DNSNames: []string{name},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create request: %w", err)
	}
	return der, nil
}

// processCPU returns the user and system CPU time this process has used,
// or 0 if the system does not say.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

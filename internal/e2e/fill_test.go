package e2e

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/store"
)

// fillSANs is the number of DNS names beyond the common name in the
// requests the benchmark databases are filled with: a multi-domain
// certificate, about 4.5 KiB per row with its request.
const fillSANs = 40

// filler writes real CA records in bulk through the store's public write
// API: every record is a store.Enroll of a real PKCS#10 request with
// fillSANs DNS names and a real certificate the CA's key signs for it,
// exactly the record automatic issuance writes, without the gRPC and CSR
// checks in front of it.
type filler struct {
	db   *store.DB
	auth *ca.Authority
	prof ca.Profile
	csrs []*x509.CertificateRequest
	reqs []store.NewRequest
}

// newFiller loads the CA's key and certificate from dir and makes 64
// requests to sign certificates for.
func newFiller(tb testing.TB, s *caServer) *filler {
	tb.Helper()
	keyPEM, err := os.ReadFile(s.Dir.CAKeyPath())
	if err != nil {
		tb.Fatal(err)
	}
	key, err := ca.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		tb.Fatal(err)
	}
	certPEM, err := os.ReadFile(s.Dir.CACertPath())
	if err != nil {
		tb.Fatal(err)
	}
	certs, err := ca.ParseCertsPEM(certPEM)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := s.CA.Config()
	auth, err := ca.NewAuthority(cfg.CAName, certs[0], key, nil, cfg.BaseURL)
	if err != nil {
		tb.Fatal(err)
	}
	prof, err := ca.FindProfile(s.CA.Profiles(), s.CA.DefaultProfile())
	if err != nil {
		tb.Fatal(err)
	}
	f := &filler{db: s.CA.Store(), auth: auth, prof: prof}
	for _, der := range makeCSRs(tb, 64, fillSANs, "fill") {
		csr, err := ca.CheckCSR(der, prof)
		if err != nil {
			tb.Fatal(err)
		}
		sans := make([]string, len(csr.DNSNames))
		for i, d := range csr.DNSNames {
			sans[i] = "DNS:" + d
		}
		f.csrs = append(f.csrs, csr)
		f.reqs = append(f.reqs, store.NewRequest{CSR: csr.Raw, Subject: csr.Subject.String(), Profile: prof.Name, Requester: "admin", SANs: sans})
	}
	return f
}

// fillWorkers is the number of goroutines a fill writes from. The fill
// waits on fsync far more than it computes: many writers make each group
// commit carry many records.
const fillWorkers = 256

// errFillDone ends a fill.
var errFillDone = errors.New("fill done")

// fill enrolls from fillWorkers goroutines until done reports true (it
// is polled every 256 records) and returns the number of records written.
func (f *filler) fill(ctx context.Context, done func() bool) (int64, error) {
	var (
		n       atomic.Int64
		stop    atomic.Bool
		errOnce sync.Once
		ferr    error
		wg      sync.WaitGroup
	)
	setErr := func(err error) {
		errOnce.Do(func() { ferr = err })
		stop.Store(true)
	}
	for w := range fillWorkers {
		wg.Go(func() {
			for i := w; !stop.Load(); i++ {
				k := n.Add(1)
				if k%256 == 0 && done() {
					setErr(errFillDone)
					return
				}
				if err := f.enroll(ctx, i%len(f.csrs)); err != nil {
					setErr(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if errors.Is(ferr, errFillDone) {
		ferr = nil
	}
	return n.Load(), ferr
}

// enroll signs a certificate for request i and writes the enroll record.
func (f *filler) enroll(ctx context.Context, i int) error {
	serial, err := ca.NewSerial()
	if err != nil {
		return err
	}
	der, err := f.auth.Issue(f.csrs[i], f.prof, serial, time.Now())
	if err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	_, _, err = f.db.Enroll(ctx, f.reqs[i], store.NewCertificate{
		Serial: ca.SerialString(serial), DER: der, Subject: cert.Subject.String(), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
	})
	if errors.Is(err, store.ErrDuplicateSerial) {
		return nil // a 64-bit collision: skip, as the CA would issue again
	}
	return err
}

// fileSize is the size of path, 0 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logBytes is the size of every log generation the store has.
func logBytes(db *store.DB) int64 {
	var n int64
	for _, g := range db.Generations() {
		n += g.Size
	}
	return n
}

// growDatabase fills the served CA's database until its file holds at
// least size bytes, then takes a checkpoint and deletes the log
// generations the fill wrote (no backup will ever need them: every
// benchmark starts with a full backup).
func growDatabase(ctx context.Context, tb testing.TB, s *caServer, size int64) {
	tb.Helper()
	db := s.CA.Store()
	path := s.Dir.DBPath(caName)
	if fileSize(path) >= size {
		return
	}
	f := newFiller(tb, s)
	start := time.Now()
	n, err := f.fill(ctx, func() bool { return fileSize(path) >= size })
	if err != nil {
		tb.Fatalf("fill database: %v", err)
	}
	if err := db.Checkpoint(ctx); err != nil {
		tb.Fatal(err)
	}
	ck := db.CheckpointInfo()
	if ck.Gen > 1 {
		if _, err := db.TruncateLogs(ctx, ck.Gen-1); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Logf("filled %s to %d MiB with %d enroll records in %s", path, fileSize(path)>>20, n, time.Since(start).Round(time.Second))
}

// benchDirs are the data directories of benchmark databases made by this
// process, by size in MiB, so that -count runs reuse them.
var (
	benchDirsMu sync.Mutex
	benchDirs   = map[int64]datadir.Dir{}
	benchTemp   string // removed by TestMain unless CERTSRV_BENCH_DIR is set
)

// benchCA serves a CA whose database file is at least mb MiB. The data
// directory is $CERTSRV_BENCH_DIR/e2e-<mb>MiB when that variable is set (kept
// and reused by later runs), else a temporary directory this process
// reuses and removes at its end.
func benchCA(b *testing.B, mb int64) *caServer {
	b.Helper()
	benchDirsMu.Lock()
	defer benchDirsMu.Unlock()
	dir, ok := benchDirs[mb]
	if !ok {
		root := os.Getenv("CERTSRV_BENCH_DIR")
		if root == "" {
			if benchTemp == "" {
				t, err := os.MkdirTemp("", "certsrv-e2e-bench")
				if err != nil {
					b.Fatal(err)
				}
				benchTemp = t
			}
			root = benchTemp
		}
		d, err := datadir.New(fmt.Sprintf("%s/e2e-%dMiB", root, mb))
		if err != nil {
			b.Fatal(err)
		}
		if !d.Initialized() {
			initCA(b, d.Root, nil)
		}
		dir = d
		benchDirs[mb] = d
	}
	s := startCA(b, dir)
	growDatabase(context.Background(), b, s, mb<<20)
	return s
}

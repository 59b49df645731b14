// Package e2e holds certsrv's end-to-end tests and benchmarks. It has no
// library code and owns no file format.
//
// Everything runs for real: a CA created with service.Init in a temporary
// data directory and served in the test process as certsrv serve serves it
// (the CA, the backup service, the gRPC admin API over TLS 1.3 with client
// certificates and the HTTP publication endpoint, on 127.0.0.1 ports the
// kernel picks); clients that speak to it through the public certadm
// library; and backups taken by the certadm executable itself, which
// TestMain builds from ./cmd/certadm with the running toolchain before any
// test starts (a build failure fails the package).
//
// # Tests
//
// TestBackupConsistencyUnderLoad is the consistency acceptance test: a
// full backup and then an incremental one are taken while certificates are
// issued, revoked and released from hold and CRLs are published; the set,
// restored with store.Replay, must dump equal (store.Dump, compared with
// reflect.DeepEqual) to the source database at the incremental backup's
// last LSN, which the test rebuilds independently from the database as
// Init left it and the CA's own log directory. It takes a few seconds.
//
// # Benchmarks
//
// The benchmarks run only with -bench; docs/BENCHMARKS.md gives the
// commands and the figures. BenchmarkFullBackup, BenchmarkIssueDuringBackup
// and BenchmarkIncrementalBackup need large databases, which they build
// through the store's public write API (store.Enroll of real requests
// with 40 DNS names and real certificates signed by the CA's key, about
// 4.5 KiB a row, from 256 goroutines so that group commits carry many
// records), then delete the log generations the fill wrote. Environment:
//
//	CERTSRV_BENCH_DIR     keep the benchmark databases in this directory
//	                      (data directories e2e-<size>MiB) and reuse them in
//	                      later runs; without it they are made in a
//	                      temporary directory, reused by -count runs of one
//	                      process and removed at its end. A 1 GiB database
//	                      takes about two minutes to build on two cores.
//	CERTSRV_E2E_BENCH_MB  comma-separated database sizes in MiB instead of
//	                      the defaults (1024 for the full-backup benchmarks,
//	                      100 and 1024 for the incremental one), for quick
//	                      runs.
//
// Disk: a 1 GiB database needs about 3 GiB free while its benchmarks run
// (the database, a backup set, the cp copy, the SQLite WAL that grows while
// a snapshot is pinned); the 100 MiB one a tenth of that.
package e2e

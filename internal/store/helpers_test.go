package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testLayout returns a layout under dir.
func testLayout(dir string) Options {
	return Options{
		Layout: Layout{
			DBPath: filepath.Join(dir, "db", "Test CA.db"),
			LogDir: filepath.Join(dir, "log"),
			SysDir: filepath.Join(dir, "sys"),
		},
		CheckpointInterval: -1,
	}
}

// testOptions returns options under a fresh temporary directory, with a
// logger that writes to the test log when -v is given.
func testOptions(t testing.TB) Options {
	t.Helper()
	o := testLayout(t.TempDir())
	o.Logger = testLogger(t)
	return o
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// createDB creates a database with opts and closes it when the test ends
// (unless the test closed it).
func createDB(t testing.TB, opts Options) *DB {
	t.Helper()
	d, err := Create(context.Background(), opts)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func openDB(t testing.TB, opts Options) *DB {
	t.Helper()
	d, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

var serialCounter atomic.Uint64

// newSerial returns a unique canonical serial.
func newSerial() string {
	var b [10]byte
	rand.Read(b[:8])
	n := serialCounter.Add(1)
	b[8], b[9] = byte(n>>8), byte(n)
	b[0] |= 0x10 // no leading zero byte
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// fakeDER returns n bytes of noise standing in for DER.
func fakeDER(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func testRequest(subject string) NewRequest {
	return NewRequest{CSR: fakeDER(300), Subject: subject, Profile: "server", Requester: "alice", SANs: []string{subject + ".example", "www." + subject + ".example"}}
}

func testCert(subject string) NewCertificate {
	now := time.Now()
	return NewCertificate{Serial: newSerial(), DER: fakeDER(700), Subject: "CN=" + subject,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour)}
}

// integrityCheck runs PRAGMA integrity_check on the database file at path
// through the Go driver and returns its first line.
func integrityCheck(t testing.TB, path string) string {
	t.Helper()
	pool, err := openPool(path, connRead, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var res string
	if err := pool.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatalf("integrity_check %s: %v", path, err)
	}
	return res
}

// queryInt runs a query returning one integer on the database file at path.
func queryInt(t testing.TB, path, q string, args ...any) int64 {
	t.Helper()
	pool, err := openPool(path, connRead, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int64
	if err := pool.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// execFile runs a statement on the database file at path (for corrupting
// state in tests).
func execFile(t testing.TB, path, q string, args ...any) {
	t.Helper()
	pool, err := sql.Open("sqlite", dsn(path, connWrite))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// copyFile copies src to dst.
func copyFile(t testing.TB, dst, src string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies the regular files of src into dst.
func copyDir(t testing.TB, dst, src string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			copyFile(t, filepath.Join(dst, e.Name()), filepath.Join(src, e.Name()))
		}
	}
}

func mustf(t testing.TB, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

func sleepMS(n int) { time.Sleep(time.Duration(n) * time.Millisecond) }

func deepEqual(a, b any) bool { return reflect.DeepEqual(a, b) }

// errOnly returns the error of a call that also returns a value.
func errOnly[T any](_ T, err error) error { return err }

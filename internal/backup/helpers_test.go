package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/store"
)

const (
	op1 = "operator-one"
	op2 = "operator-two"
)

// testSegment is the log segment size of test databases: small, so a few
// hundred records span several generations.
const testSegment = 64 << 10

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

// newDB creates a real database under t.TempDir() and closes it when the
// test ends. edit may adjust the options.
func newDB(t testing.TB, edit ...func(*store.Options)) *store.DB {
	t.Helper()
	dir := t.TempDir()
	o := store.Options{
		Layout: store.Layout{
			DBPath: filepath.Join(dir, "db", "Backup Test CA.db"),
			LogDir: filepath.Join(dir, "log"),
			SysDir: filepath.Join(dir, "sys"),
		},
		SegmentSize:        testSegment,
		CheckpointInterval: -1,
		Logger:             testLogger(t),
	}
	for _, e := range edit {
		e(&o)
	}
	db, err := store.Create(context.Background(), o)
	if err != nil {
		t.Fatalf("store.Create: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var reqCounter atomic.Int64

// write submits n requests of about 1 KiB each; every one is durable and
// applied when write returns.
func write(t testing.TB, db *store.DB, n int) {
	t.Helper()
	for range n {
		if err := submit(db); err != nil {
			t.Fatalf("SubmitRequest: %v", err)
		}
	}
}

func submit(db *store.DB) error {
	csr := make([]byte, 1000)
	rand.Read(csr)
	id := reqCounter.Add(1)
	_, err := db.SubmitRequest(context.Background(), store.NewRequest{
		CSR:       csr,
		Subject:   fmt.Sprintf("CN=host%d.example.test", id),
		Profile:   "tls-server",
		Requester: "tester",
	})
	return err
}

// writer submits requests in the background until the returned stop
// function is called; stop returns how many were written.
func writer(t testing.TB, db *store.DB) (stop func() int) {
	t.Helper()
	var (
		n    atomic.Int64
		wg   sync.WaitGroup
		done = make(chan struct{})
		fail atomic.Value
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := submit(db); err != nil {
				fail.Store(err)
				return
			}
			n.Add(1)
		}
	}()
	return func() int {
		close(done)
		wg.Wait()
		if err, _ := fail.Load().(error); err != nil {
			t.Fatalf("background writer: %v", err)
		}
		return int(n.Load())
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// countingEngine is the real store's engine, counting the snapshots it
// hands out and those closed, so tests can see a snapshot released.
type countingEngine struct {
	Engine
	taken, closed atomic.Int64
}

func (e *countingEngine) Snapshot(ctx context.Context) (Snapshot, error) {
	s, err := e.Engine.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	e.taken.Add(1)
	return &countedSnapshot{Snapshot: s, e: e}, nil
}

func (e *countingEngine) open() int64 { return e.taken.Load() - e.closed.Load() }

type countedSnapshot struct {
	Snapshot
	e    *countingEngine
	once sync.Once
}

func (s *countedSnapshot) Close() error {
	s.once.Do(func() { s.e.closed.Add(1) })
	return s.Snapshot.Close()
}

// newManager returns a Manager over db's real engine (wrapped to count
// snapshots), closed when the test ends.
func newManager(t testing.TB, db *store.DB, edit ...func(*Options)) (*Manager, *countingEngine) {
	t.Helper()
	eng := &countingEngine{Engine: StoreEngine(db)}
	o := Options{Logger: testLogger(t)}
	for _, e := range edit {
		e(&o)
	}
	m, err := NewManager(eng, o)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m, eng
}

// read streams the open file to its end and returns its bytes, checking
// that chunks arrive in order with the right offsets.
func read(t testing.TB, m *Manager, principal, id string, chunk int) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	err := m.Read(context.Background(), principal, id, chunk, func(off int64, p []byte) error {
		if off != int64(buf.Len()) {
			return fmt.Errorf("chunk at offset %d, want %d", off, buf.Len())
		}
		buf.Write(p)
		return nil
	})
	return buf.Bytes(), err
}

// fetch opens, reads and closes one file.
func fetch(t testing.TB, m *Manager, principal, id, name string) []byte {
	t.Helper()
	ctx := context.Background()
	size, err := m.OpenFile(ctx, principal, id, name)
	if err != nil {
		t.Fatalf("OpenFile(%s): %v", name, err)
	}
	b, err := read(t, m, principal, id, 0)
	if err != nil {
		t.Fatalf("Read(%s): %v", name, err)
	}
	if int64(len(b)) != size {
		t.Fatalf("read %d bytes of %s, OpenFile said %d", len(b), name, size)
	}
	if err := m.CloseFile(ctx, principal, id, size); err != nil {
		t.Fatalf("CloseFile(%s): %v", name, err)
	}
	return b
}

// copied is what a complete backup session served.
type copied struct {
	id    string
	db    []byte            // the snapshot (full backups)
	dbLSN uint64            // S, as recorded in the snapshot's meta table
	logs  []File            // the listed logs
	data  map[string][]byte // listed name -> bytes served
}

// backupFiles runs a session of type typ up to (not including) End: it
// lists and reads every file.
func backupFiles(t testing.TB, m *Manager, principal string, typ Type) copied {
	t.Helper()
	ctx := context.Background()
	id, err := m.Prepare(ctx, principal, typ)
	if err != nil {
		t.Fatalf("Prepare(%s): %v", typ, err)
	}
	c := copied{id: id, data: map[string][]byte{}}
	names, err := m.DatabaseNames(ctx, principal, id)
	if err != nil {
		t.Fatalf("DatabaseNames: %v", err)
	}
	for _, f := range names {
		c.db = fetch(t, m, principal, id, f.Name)
		c.data[f.Name] = c.db
	}
	if c.logs, err = m.BackupLogs(ctx, principal, id); err != nil {
		t.Fatalf("BackupLogs: %v", err)
	}
	for _, f := range c.logs {
		c.data[f.Name] = fetch(t, m, principal, id, f.Name)
	}
	return c
}

// wantCode fails the test unless err is an *apierr.Error with code c.
func wantCode(t testing.TB, err error, c apierr.Code, what string) *apierr.Error {
	t.Helper()
	if !errors.Is(err, &apierr.Error{Code: c}) {
		t.Fatalf("%s: got error %v (code %s), want %s", what, err, apierr.Of(err).Reason, c.Reason)
	}
	var e *apierr.Error
	errors.As(err, &e)
	return e
}

// sqliteMeta writes b to a file, opens it with the SQLite driver and
// returns its integrity_check result, applied_lsn and number of requests.
func sqliteMeta(t testing.TB, b []byte) (integrity string, applied uint64, requests int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if err := db.QueryRow("SELECT applied_lsn FROM meta WHERE id = 1").Scan(&applied); err != nil {
		t.Fatalf("read applied_lsn: %v", err)
	}
	if err := db.QueryRow("SELECT count(*) FROM requests").Scan(&requests); err != nil {
		t.Fatalf("count requests: %v", err)
	}
	return integrity, applied, requests
}

// logFiles returns the names of the generation files in dir.
func logFiles(t testing.TB, dir string) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			out[e.Name()] = true
		}
	}
	return out
}

// prepareFull prepares a full backup session for principal and returns its
// id and the database file it lists.
func prepareFull(t testing.TB, m *Manager, principal string) (string, []File) {
	t.Helper()
	ctx := context.Background()
	id, err := m.Prepare(ctx, principal, Full)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	names, err := m.DatabaseNames(ctx, principal, id)
	if err != nil {
		t.Fatalf("DatabaseNames: %v", err)
	}
	return id, names
}

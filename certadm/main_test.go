package certadm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/backuptest"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/testserver"
)

// manualProfile is a tls-server profile whose requests wait for an officer.
const manualProfile = "manual"

// startServer starts a real certsrv server in-process, with the Backup
// service wired as the daemon wires it and, besides the default profiles,
// the profile "manual" that leaves requests pending.
func startServer(tb testing.TB) *testserver.Server {
	tb.Helper()
	profiles := ca.DefaultProfiles()
	manual := profiles[0]
	manual.Name = manualProfile
	manual.AutoIssue = false
	profileJSON, err := json.Marshal(append(profiles, manual))
	if err != nil {
		tb.Fatal(err)
	}
	return testserver.Start(tb,
		testserver.WithConfig(func(c *datadir.Config) { c.Profiles = profileJSON }),
		backuptest.Service(tb))
}

// TestMain starts one real server for the examples (which, unlike tests,
// get no *testing.T) and points CERTADM_SERVER and CERTADM_CREDS at it, so
// the examples pass an empty server address exactly as a program on the
// CA host would.
func TestMain(m *testing.M) {
	os.Exit(runWithServer(m))
}

var mainT = &mainTB{name: "certadm-examples"}

func runWithServer(m *testing.M) int {
	defer mainT.runCleanups()
	srv := startServer(mainT)
	mainT.Setenv(certadm.EnvServer, srv.Addr)
	mainT.Setenv(certadm.EnvCreds, srv.CredsDir)
	return m.Run()
}

// startScratchServer starts a further server for an example that stops it.
func startScratchServer() (addr, credsDir string) {
	srv := startServer(mainT)
	return srv.Addr, srv.CredsDir
}

// waitUnreachable waits up to 10 s for the server at addr to stop answering.
func waitUnreachable(ctx context.Context, addr, creds string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := certadm.IsServerOnline(ctx, addr, certadm.WithCredentials(creds), certadm.WithDialTimeout(time.Second)); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mainTB is the testing.TB that TestMain hands to the server helpers.
// Failures end the process: before m.Run there is no test to mark failed.
type mainTB struct {
	testing.TB // nil; every method is overridden below

	name     string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func (t *mainTB) runCleanups() {
	t.mu.Lock()
	cs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

func (t *mainTB) ArtifactDir() string { return t.TempDir() }
func (t *mainTB) Attr(key, value string) {
	fmt.Fprintf(os.Stderr, "=== ATTR %s %s %s\n", t.name, key, value)
}
func (t *mainTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}
func (t *mainTB) Error(args ...any) { t.Log(args...); t.Fail() }
func (t *mainTB) Errorf(format string, args ...any) {
	t.Logf(format, args...)
	t.Fail()
}
func (t *mainTB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}
func (t *mainTB) FailNow() {
	t.runCleanups()
	fmt.Fprintf(os.Stderr, "%s: setup failed\n", t.name)
	os.Exit(1)
}
func (t *mainTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *mainTB) Fatal(args ...any) { t.Log(args...); t.FailNow() }
func (t *mainTB) Fatalf(format string, args ...any) {
	t.Logf(format, args...)
	t.FailNow()
}
func (t *mainTB) Helper() {}
func (t *mainTB) Log(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{t.name + ":"}, args...)...)
}
func (t *mainTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, t.name+": "+format+"\n", args...)
}
func (t *mainTB) Name() string { return t.name }
func (t *mainTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	t.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}
func (t *mainTB) Chdir(dir string) {
	old, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(old) })
}
func (t *mainTB) Skip(args ...any)                 { t.Fatal(append([]any{"skip in setup:"}, args...)...) }
func (t *mainTB) SkipNow()                         { t.Fatal("skip in setup") }
func (t *mainTB) Skipf(format string, args ...any) { t.Fatalf("skip in setup: "+format, args...) }
func (t *mainTB) Skipped() bool                    { return false }
func (t *mainTB) TempDir() string {
	dir, err := os.MkdirTemp("", "certadm-examples")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
func (t *mainTB) Context() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
func (t *mainTB) Output() io.Writer { return os.Stderr }

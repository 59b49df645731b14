package certadm

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/certadm/internal/wiretest"
)

// clearEnv makes the discovery tests independent of the caller's
// environment.
func clearEnv(t *testing.T) {
	t.Setenv(EnvServer, "")
	t.Setenv(EnvCreds, "")
}

func TestCredentialDiscoveryOrder(t *testing.T) {
	clearEnv(t)
	p := wiretest.NewPKI(t, "anchor")
	work := t.TempDir()
	explicit := filepath.Join(work, "explicit")
	fromEnv := filepath.Join(work, "env")
	p.WriteCreds(t, explicit, "explicit", "")
	p.WriteCreds(t, fromEnv, "env", "")
	t.Chdir(work)

	// Nothing available: an error naming what was tried.
	_, err := resolve("", collect(nil))
	if !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("no credentials: %v", err)
	}
	for _, want := range []string{EnvCreds, DefaultCredsDir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}

	// ./certsrv-data/admin is found when it exists.
	p.WriteCreds(t, filepath.Join(work, "certsrv-data", "admin"), "default", "")
	tg, err := resolve("", collect(nil))
	if err != nil || tg.credsDir != DefaultCredsDir {
		t.Fatalf("default dir: %q, %v", tg.credsDir, err)
	}
	if leaf(t, tg.tls) != "default" {
		t.Errorf("loaded %q", leaf(t, tg.tls))
	}

	// The environment beats the default directory.
	t.Setenv(EnvCreds, fromEnv)
	tg, err = resolve("", collect(nil))
	if err != nil || tg.credsDir != fromEnv || leaf(t, tg.tls) != "env" {
		t.Fatalf("env: %q, %v", tg.credsDir, err)
	}

	// The option beats the environment.
	tg, err = resolve("", collect([]Option{WithCredentials(explicit)}))
	if err != nil || tg.credsDir != explicit || leaf(t, tg.tls) != "explicit" {
		t.Fatalf("explicit: %q, %v", tg.credsDir, err)
	}

	// An empty WithCredentials is no option.
	tg, err = resolve("", collect([]Option{WithCredentials("")}))
	if err != nil || tg.credsDir != fromEnv {
		t.Fatalf("empty option: %q, %v", tg.credsDir, err)
	}

	// WithTLSConfig needs no directory and keeps the caller's certificates.
	t.Setenv(EnvCreds, "")
	os.RemoveAll(filepath.Join(work, "certsrv-data"))
	own := &tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS12}
	tg, err = resolve("127.0.0.1:1", collect([]Option{WithTLSConfig(own)}))
	if err != nil {
		t.Fatal(err)
	}
	if tg.tls == own || tg.tls.MinVersion != tls.VersionTLS13 || tg.tls.ServerName != "localhost" || own.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLS config not cloned and raised: %+v", tg.tls)
	}
}

func leaf(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	if len(cfg.Certificates) != 1 {
		t.Fatalf("%d certificates", len(cfg.Certificates))
	}
	c := cfg.Certificates[0]
	if c.Leaf == nil {
		t.Fatal("no leaf")
	}
	return c.Leaf.Subject.CommonName
}

func TestServerDiscoveryOrder(t *testing.T) {
	clearEnv(t)
	p := wiretest.NewPKI(t, "anchor")
	dir := t.TempDir()
	p.WriteCreds(t, dir, "op", "localhost:9443")
	opts := collect([]Option{WithCredentials(dir)})

	tg, err := resolve("", opts)
	if err != nil || tg.addr != "localhost:9443" || tg.tls.ServerName != "localhost" {
		t.Fatalf("server file: %q %q %v", tg.addr, tg.tls.ServerName, err)
	}
	t.Setenv(EnvServer, "127.0.0.1:7443")
	tg, err = resolve("", opts)
	if err != nil || tg.addr != "127.0.0.1:7443" || tg.tls.ServerName != "127.0.0.1" {
		t.Fatalf("env: %q %q %v", tg.addr, tg.tls.ServerName, err)
	}
	tg, err = resolve("127.0.0.1:6443", opts)
	if err != nil || tg.addr != "127.0.0.1:6443" {
		t.Fatalf("argument: %q %v", tg.addr, err)
	}
	t.Setenv(EnvServer, "")
	if err := os.Remove(filepath.Join(dir, CredsServerFile)); err != nil {
		t.Fatal(err)
	}
	tg, err = resolve("", opts)
	if err != nil || tg.addr != DefaultServer {
		t.Fatalf("default: %q %v", tg.addr, err)
	}
	// A blank server file falls through to the default too.
	if err := os.WriteFile(filepath.Join(dir, CredsServerFile), []byte("\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tg, err = resolve("", opts)
	if err != nil || tg.addr != DefaultServer {
		t.Fatalf("blank file: %q %v", tg.addr, err)
	}
	_, err = resolve("no-port", opts)
	if !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("address without port: %v", err)
	}
}

func TestBrokenCredentialsDirectory(t *testing.T) {
	clearEnv(t)
	p := wiretest.NewPKI(t, "anchor")
	cases := map[string]func(dir string){
		"missing key":  func(dir string) { os.Remove(filepath.Join(dir, CredsKeyFile)) },
		"missing cert": func(dir string) { os.Remove(filepath.Join(dir, CredsCertFile)) },
		"missing trust": func(dir string) {
			os.Remove(filepath.Join(dir, CredsTrustFile))
		},
		"garbage trust": func(dir string) {
			os.WriteFile(filepath.Join(dir, CredsTrustFile), []byte("not pem"), 0o644)
		},
		"key of another credential": func(dir string) {
			other := t.TempDir()
			p.WriteCreds(t, other, "other", "")
			b, _ := os.ReadFile(filepath.Join(other, CredsKeyFile))
			os.WriteFile(filepath.Join(dir, CredsKeyFile), b, 0o600)
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p.WriteCreds(t, dir, "op", "")
			damage(dir)
			_, err := resolve("", collect([]Option{WithCredentials(dir)}))
			if !errors.Is(err, ErrNoCredentials) {
				t.Fatalf("got %v", err)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the directory", err)
			}
		})
	}
}

package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
)

// TestInit creates a CA with every flag, checks what it prints and
// writes, and that a second init on the same directory fails.
func TestInit(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte("a long passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCertsrv(t, "init", "--data", data, "--name", "Example Issuing CA", "--key", "ecdsa-p384",
		"--passphrase-file", passFile, "--listen", "127.0.0.1:9443", "--http", "127.0.0.1:9080")
	if code != 0 {
		t.Fatalf("init: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"Example Issuing CA", filepath.Join(data, "keys", "ca.crt"), filepath.Join(data, "admin"), "certsrv serve --data " + data,
		"AIA/CDP base URL: http://127.0.0.1:9080\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("init output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "note:") {
		t.Errorf("init with a fixed --http port adds a note:\n%s", stdout)
	}
	dir, _ := datadir.New(data)
	cfg, err := dir.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CAName != "Example Issuing CA" || cfg.KeyType != "ecdsa-p384" || cfg.Listen != "127.0.0.1:9443" ||
		cfg.HTTPListen != "127.0.0.1:9080" || cfg.BaseURL != "http://127.0.0.1:9080" {
		t.Fatalf("configuration: %+v", cfg)
	}
	keyPEM, err := os.ReadFile(dir.CAKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.ParsePrivateKey(keyPEM, nil); err == nil {
		t.Fatal("the CA key opened without the passphrase")
	}
	if _, err := ca.ParsePrivateKey(keyPEM, []byte("a long passphrase")); err != nil {
		t.Fatalf("the CA key does not open with the passphrase (trailing newline not stripped?): %v", err)
	}
	if code, _, stderr := runCertsrv(t, "init", "--data", data); code != 1 || !strings.Contains(stderr, "already initialized") {
		t.Fatalf("second init: exit %d, %q", code, stderr)
	}
}

// An --http address with port 0 cannot give the base URL of the AIA and
// CDP URLs: init keeps the default, names it, and says to give --base-url.
func TestInitHTTPPortZeroNamesTheBaseURL(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := runCertsrv(t, "init", "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if code != 0 {
		t.Fatalf("init: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "AIA/CDP base URL: http://127.0.0.1:8080\n") || !strings.Contains(stdout, "note: --http 127.0.0.1:0 has no fixed port") ||
		!strings.Contains(stdout, "--base-url") {
		t.Errorf("init output does not name the default base URL and --base-url:\n%s", stdout)
	}
	data2 := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr = runCertsrv(t, "init", "--data", data2, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--base-url", "http://pki.example.test")
	if code != 0 {
		t.Fatalf("init --base-url: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "AIA/CDP base URL: http://pki.example.test\n") || strings.Contains(stdout, "note:") {
		t.Errorf("init --base-url output:\n%s", stdout)
	}
}

// TestSubordinateInstallCertAndKeyRestore makes a subordinate CA, signs
// its request with openssl as the parent, installs the certificate,
// serves the CA, backs its key up over the API, and restores the key with
// certsrv key restore (refused while the server runs).
func TestSubordinateInstallCertAndKeyRestore(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is needed: %v", err)
	}
	tmp := t.TempDir()
	parent := filepath.Join(tmp, "parent")
	if code, _, stderr := runCertsrv(t, "init", "--data", parent, "--name", "Parent Root"); code != 0 {
		t.Fatalf("init parent: %s", stderr)
	}
	sub := filepath.Join(tmp, "sub")
	code, stdout, stderr := runCertsrv(t, "init", "--data", sub, "--name", "Sub CA", "--subordinate", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if code != 0 {
		t.Fatalf("init subordinate: %s", stderr)
	}
	csrPath := filepath.Join(sub, "keys", "ca.csr")
	if !strings.Contains(stdout, csrPath) || !strings.Contains(stdout, "certsrv install-cert") {
		t.Fatalf("subordinate init output:\n%s", stdout)
	}
	// The subordinate cannot serve before its certificate is installed.
	if code, _, stderr := runCertsrv(t, "serve", "--data", sub); code != 1 || !strings.Contains(stderr, "not installed") {
		t.Fatalf("serve before install-cert: exit %d, %q", code, stderr)
	}

	ext := filepath.Join(tmp, "ext.cnf")
	if err := os.WriteFile(ext, []byte("basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"+
		"nameConstraints=critical,permitted;DNS:example.test,permitted;dirName:org\n[org]\nO=Example Org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	signed := filepath.Join(tmp, "sub.crt")
	out, err := exec.Command("openssl", "x509", "-req", "-in", csrPath, "-CA", filepath.Join(parent, "keys", "ca.crt"),
		"-CAkey", filepath.Join(parent, "keys", "ca.key"), "-CAcreateserial", "-days", "365", "-sha256",
		"-extfile", ext, "-out", signed).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509 -req: %v\n%s", err, out)
	}
	code, stdout, stderr = runCertsrv(t, "install-cert", signed, "--chain", filepath.Join(parent, "keys", "ca.crt"), "--data", sub)
	if code != 0 {
		t.Fatalf("install-cert: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "Name constraints this CA will issue within") ||
		!strings.Contains(stdout, "Sub CA: permitted DNS example.test, directory name O=Example Org") || strings.Contains(stdout, "Warning") {
		t.Errorf("install-cert does not name the parent's name constraints:\n%s", stdout)
	}

	d := startServe(t, "--data", sub, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	creds := filepath.Join(sub, "admin")
	if resp := ping(t, d.Admin, creds); resp.CaName != "Sub CA" {
		t.Fatalf("Ping = %+v", resp)
	}
	conn := dialServer(t, d.Admin, creds)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cac, err := certsrvv1.NewAdminClient(conn).GetCACertificate(ctx, &certsrvv1.GetCACertificateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	parentPEM, _ := os.ReadFile(filepath.Join(parent, "keys", "ca.crt"))
	parentCert, _ := pem.Decode(parentPEM)
	if len(cac.Chain) != 1 || string(cac.Chain[0]) != string(parentCert.Bytes) {
		t.Fatalf("GetCACertificate chain has %d certificates, want the parent", len(cac.Chain))
	}
	kb, err := certsrvv1.NewAdminClient(conn).BackupKey(ctx, &certsrvv1.BackupKeyRequest{Password: "backup password"})
	if err != nil {
		t.Fatal(err)
	}
	p12 := filepath.Join(tmp, kb.FileName)
	pw := filepath.Join(tmp, "pw")
	if err := os.WriteFile(p12, kb.Pkcs12, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("backup password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCertsrv(t, "key", "restore", p12, "--password-file", pw, "--data", sub); code != 1 || !strings.Contains(stderr, "in use") {
		t.Fatalf("key restore while serving: exit %d, %q", code, stderr)
	}
	if code := d.Stop(t); code != 0 {
		t.Fatalf("SIGTERM exit %d", code)
	}
	before, _ := os.ReadFile(filepath.Join(sub, "keys", "ca.key"))
	if code, stdout, stderr := runCertsrv(t, "key", "restore", p12, "--password-file", pw, "--data", sub); code != 0 || !strings.Contains(stdout, "Restored") {
		t.Fatalf("key restore: exit %d\n%s%s", code, stdout, stderr)
	}
	bak, err := os.ReadFile(filepath.Join(sub, "keys", "ca.key.bak"))
	if err != nil || string(bak) != string(before) {
		t.Fatalf("the previous key was not kept as ca.key.bak: %v", err)
	}
	// The restored key still signs for the installed certificate: the CA
	// starts and issues a certificate that verifies against it.
	d2 := startServe(t, "--data", sub, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	conn2 := dialServer(t, d2.Admin, creds)
	csr := opensslCSR(t, tmp, "www.example.test")
	r, err := certsrvv1.NewAdminClient(conn2).Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr})
	if err != nil {
		t.Fatal(err)
	}
	// The parent permitted example.test only: a name outside is refused.
	_, err = certsrvv1.NewAdminClient(conn2).Submit(ctx, &certsrvv1.SubmitRequest{Csr: opensslCSR(t, tmp, "www.example.org")})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "name constraints") {
		t.Errorf("a name outside the parent's name constraints: %v", err)
	}
	issued, err := x509.ParseCertificate(r.Certificate.GetDer())
	if err != nil {
		t.Fatal(err)
	}
	subPEM, _ := os.ReadFile(filepath.Join(sub, "keys", "ca.crt"))
	subCert, _ := pem.Decode(subPEM)
	sc, _ := x509.ParseCertificate(subCert.Bytes)
	if err := issued.CheckSignatureFrom(sc); err != nil {
		t.Fatalf("certificate issued after the key restore: %v", err)
	}
	// The parent permitted the subtree O=Example Org: the subject lies in
	// it, and openssl accepts the chain.
	if got := issued.Subject.String(); got != "CN=www.example.test,O=Example Org" {
		t.Errorf("subject %q, want CN=www.example.test,O=Example Org", got)
	}
	leaf := filepath.Join(tmp, "leaf.pem")
	if err := os.WriteFile(leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issued.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(parent, "keys", "ca.crt"), "-untrusted", signed, leaf).CombinedOutput(); err != nil {
		t.Errorf("openssl verify of the certificate issued under the parent's constraints: %v\n%s", err, out)
	}
	if code := d2.Stop(t); code != 0 {
		t.Fatalf("SIGTERM exit %d", code)
	}
}

// opensslCSR makes a P-256 request for host with openssl.
func opensslCSR(t *testing.T, dir, host string) []byte {
	t.Helper()
	out, err := exec.Command("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN="+host, "-addext", "subjectAltName=DNS:"+host,
		"-keyout", filepath.Join(dir, host+".key"), "-out", filepath.Join(dir, host+".csr")).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, host+".csr"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServeAsksForThePassphraseBeforeRecovery: a CA whose key is
// encrypted, with a completed restore waiting for recovery, started
// without --passphrase-file, fails at once and leaves the restore
// waiting, instead of recovering first and failing afterwards.
func TestServeAsksForThePassphraseBeforeRecovery(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte("a long passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCertsrv(t, "init", "--data", data, "--name", "Encrypted CA", "--passphrase-file", passFile,
		"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"); code != 0 {
		t.Fatalf("init: exit %d\n%s", code, stderr)
	}
	dir, err := datadir.New(data)
	if err != nil {
		t.Fatal(err)
	}
	// A completed registration: the CA's own database and one backup log.
	backupLogs := filepath.Join(dir.RestoreDir(), "logs")
	if err := os.MkdirAll(backupLogs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(backupLogs, "ca00000001.log"), []byte("copied"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := certadm.RestorePrepare(data, certadm.RestoreFull)
	if err != nil {
		t.Fatal(err)
	}
	err = r.Register(dir.SysDir(), dir.LogDir(), []certadm.RestoreMapEntry{{DatabaseName: "/old/db/Encrypted CA.db",
		NewDatabaseName: dir.DBPath("Encrypted CA")}}, backupLogs, 1, 1)
	if err == nil {
		err = r.RegisterComplete(nil)
	}
	if eerr := r.End(); err == nil {
		err = eerr
	}
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCertsrv(t, "serve", "--data", data)
	if code != 1 || !strings.Contains(stderr, "--passphrase-file") || !strings.Contains(stderr, "nothing was recovered yet") {
		t.Fatalf("serve without the passphrase: exit %d\n%s", code, stderr)
	}
	if _, err := certadm.RestorePrepare(data, certadm.RestoreFull); !errors.Is(err, certadm.ErrRestoreInProgress) {
		t.Fatalf("the restore no longer waits for recovery: %v", err)
	}
}

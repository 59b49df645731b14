package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/certsrv/certsrv/certadm"
)

// writeCSR writes a PEM certificate request for name into dir.
func writeCSR(t *testing.T, dir, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".csr")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var requestLine = regexp.MustCompile(`(?m)^request (\d+): (\w+)$`)
var serialLine = regexp.MustCompile(`(?m)^serial: ([0-9A-F]+)$`)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDiscoveryOrder(t *testing.T) {
	srv := startServer(t)
	isolate(t)
	// Flags.
	out := mustCLI(t, "--server", srv.Addr, "--creds", srv.CredsDir, "ping")
	for _, want := range []string{"state: online", "principal: admin", "ca: " + "certsrv Test CA", "roles: Administrator"} {
		if !strings.Contains(out, want) {
			t.Errorf("ping output lacks %q:\n%s", want, out)
		}
	}
	// The environment.
	t.Setenv(certadm.EnvCreds, srv.CredsDir)
	t.Setenv(certadm.EnvServer, srv.Addr)
	mustCLI(t, "ping")
	// Flags beat the environment.
	t.Setenv(certadm.EnvCreds, filepath.Join(t.TempDir(), "nothing-here"))
	mustCLI(t, "--creds", srv.CredsDir, "ping")
	if code, _, _ := cli(t, "ping"); code != exitError {
		t.Fatalf("bad CERTADM_CREDS: exit %d", code)
	}
	// ./certsrv-data/admin with its server file, as after certsrv init.
	t.Setenv(certadm.EnvCreds, "")
	t.Setenv(certadm.EnvServer, "")
	t.Chdir(filepath.Dir(srv.DataDir))
	if out := mustCLI(t, "ping"); !strings.Contains(out, "server: "+srv.Addr) {
		t.Fatalf("default discovery:\n%s", out)
	}
}

func TestEnrollmentCommands(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}

	certPath := filepath.Join(work, "www.pem")
	out := mustCLI(t, append(g, "submit", writeCSR(t, work, "www.example.test"), "--out", certPath)...)
	m := requestLine.FindStringSubmatch(out)
	if m == nil || m[2] != "issued" {
		t.Fatalf("submit output:\n%s", out)
	}
	cert := readCert(t, certPath)
	if s := serialLine.FindStringSubmatch(out); s == nil || strings.TrimLeft(s[1], "0") != strings.ToUpper(cert.SerialNumber.Text(16)) {
		t.Fatalf("serial line does not match the written certificate:\n%s", out)
	}

	// Pending, then approved, then fetched.
	out = mustCLI(t, append(g, "submit", writeCSR(t, work, "wait.example.test"), "--profile", manualProfile)...)
	m = requestLine.FindStringSubmatch(out)
	if m == nil || m[2] != "pending" || !strings.Contains(out, "certadm approve "+m[1]) {
		t.Fatalf("pending submit:\n%s", out)
	}
	id := m[1]
	if out := mustCLI(t, append(g, "get", id)...); !strings.Contains(out, "request "+id+": pending") {
		t.Fatalf("get pending:\n%s", out)
	}
	code, _, errOut := cli(t, append(g, "get", id, "--out", filepath.Join(work, "none.pem"))...)
	if code != exitError || !strings.Contains(errOut, "HRESULT 0x80094003") {
		t.Fatalf("get --out of a pending request: exit %d %s", code, errOut)
	}
	if out := mustCLI(t, append(g, "approve", id)...); !strings.Contains(out, "request "+id+": issued") {
		t.Fatalf("approve:\n%s", out)
	}
	fetched := filepath.Join(work, "wait.pem")
	mustCLI(t, append(g, "get", id, "--out", fetched)...)
	if readCert(t, fetched).Subject.CommonName != "wait.example.test" {
		t.Fatal("get --out wrote another certificate")
	}
	code, _, errOut = cli(t, append(g, "approve", id)...)
	if code != exitError || !strings.HasSuffix(errOut, "(HRESULT 0x80094003)\n") {
		t.Fatalf("approve twice: exit %d %s", code, errOut)
	}

	// Denied with a reason that reaches the database.
	out = mustCLI(t, append(g, "submit", writeCSR(t, work, "no.example.test"), "--profile", manualProfile)...)
	denyID := requestLine.FindStringSubmatch(out)[1]
	out = mustCLI(t, append(g, "deny", denyID, "--reason", "unknown host name")...)
	if !strings.Contains(out, "request "+denyID+": denied") || !strings.Contains(out, "reason: unknown host name") {
		t.Fatalf("deny:\n%s", out)
	}
	c := client(t, srv.Addr, srv.CredsDir)
	if r, err := c.GetRequest(context.Background(), atoi(t, denyID)); err != nil || r.DenyReason != "unknown host name" {
		t.Fatalf("deny reason stored: %+v %v", r, err)
	}

	// Importing a certificate the CA holds already.
	code, _, errOut = cli(t, append(g, "import-cert", certPath)...)
	if code != exitError || !strings.HasSuffix(errOut, "(HRESULT 0x800700B7)\n") {
		t.Fatalf("import-cert: exit %d %s", code, errOut)
	}
}

func client(t *testing.T, addr, creds string) *certadm.Client {
	t.Helper()
	c, err := certadm.Dial(context.Background(), addr, certadm.WithCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	id, err := parseRequestID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRevocationCommands(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	var serials []string
	for _, name := range []string{"a.test", "b.test"} {
		out := mustCLI(t, append(g, "submit", writeCSR(t, work, name))...)
		serials = append(serials, serialLine.FindStringSubmatch(out)[1])
	}
	// The serial as openssl prints it, the reason by name.
	var colon []string
	for i := 0; i < len(serials[0]); i += 2 {
		colon = append(colon, strings.ToLower(serials[0][i:i+2]))
	}
	out := mustCLI(t, append(g, "revoke", strings.Join(colon, ":"), "--reason", "keyCompromise")...)
	if !strings.Contains(out, "revoked "+serials[0]) || !strings.Contains(out, "(reason 1, keyCompromise)") {
		t.Fatalf("revoke:\n%s", out)
	}
	// The reason by number.
	out = mustCLI(t, append(g, "revoke", serials[1], "--reason", "6")...)
	if !strings.Contains(out, "(reason 6, certificateHold)") {
		t.Fatalf("revoke on hold:\n%s", out)
	}
	code, _, errOut := cli(t, append(g, "revoke", serials[1], "--reason", "bored")...)
	if code != exitUsage || !strings.Contains(errOut, `--reason "bored"`) {
		t.Fatalf("bad reason: exit %d %s", code, errOut)
	}
	if out := mustCLI(t, append(g, "unrevoke", serials[1])...); !strings.Contains(out, "released "+serials[1]) {
		t.Fatalf("unrevoke:\n%s", out)
	}
	c := client(t, srv.Addr, srv.CredsDir)
	rows, err := c.View(context.Background(), certadm.ViewFilter{RevokedOnly: true})
	if err != nil || len(rows) != 1 || rows[0].Certificate.Serial != serials[0] || rows[0].Certificate.RevocationReason != 1 {
		t.Fatalf("revoked rows %v %v", rows, err)
	}

	if out := mustCLI(t, append(g, "crl")...); !regexp.MustCompile(`published full CRL number \d+ with 1 entry\n`).MatchString(out) {
		t.Fatalf("crl:\n%s", out)
	}
	if out := mustCLI(t, append(g, "crl", "--delta")...); !strings.Contains(out, "published delta CRL") {
		t.Fatalf("crl --delta:\n%s", out)
	}
}

func TestViewCommand(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	var serials []string
	for _, name := range []string{"alpha.test", "beta.test"} {
		out := mustCLI(t, append(g, "submit", writeCSR(t, work, name))...)
		serials = append(serials, serialLine.FindStringSubmatch(out)[1])
	}
	mustCLI(t, append(g, "submit", writeCSR(t, work, "gamma.test"), "--profile", manualProfile)...)
	mustCLI(t, append(g, "revoke", serials[1], "--reason", "superseded")...)

	var rows []viewRow
	if err := json.Unmarshal([]byte(mustCLI(t, append(g, "view", "--format", "json")...)), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Status != "issued" || rows[1].Serial != serials[1] || rows[1].Status != "revoked" || !rows[1].Revoked ||
		rows[1].RevocationReason == nil || *rows[1].RevocationReason != 4 || rows[2].Status != "pending" {
		t.Fatalf("json rows %+v", rows)
	}
	filtered := func(args ...string) []viewRow {
		t.Helper()
		var rs []viewRow
		if err := json.Unmarshal([]byte(mustCLI(t, append(append(g, "view", "--format", "json"), args...)...)), &rs); err != nil {
			t.Fatal(err)
		}
		return rs
	}
	if rs := filtered("--status", "pending"); len(rs) != 1 || rs[0].Subject != "CN=gamma.test" {
		t.Errorf("--status pending: %+v", rs)
	}
	if rs := filtered("--status", "revoked"); len(rs) != 1 || rs[0].Serial != serials[1] {
		t.Errorf("--status revoked: %+v", rs)
	}
	if rs := filtered("--serial", strings.ToLower(serials[0])); len(rs) != 1 || rs[0].Serial != serials[0] {
		t.Errorf("--serial: %+v", rs)
	}
	if rs := filtered("--subject-contains", "beta"); len(rs) != 1 || rs[0].Serial != serials[1] {
		t.Errorf("--subject-contains: %+v", rs)
	}
	if rs := filtered("--id", "1"); len(rs) != 1 || rs[0].RequestID != 1 {
		t.Errorf("--id: %+v", rs)
	}
	if rs := filtered("--limit", "2"); len(rs) != 2 {
		t.Errorf("--limit: %+v", rs)
	}
	if rs := filtered("--expires-before", time.Now().Format(time.DateOnly)); len(rs) != 0 {
		t.Errorf("--expires-before today: %+v", rs)
	}
	if rs := filtered("--status", "issued", "--expires-after", time.Now().Format(time.RFC3339)); len(rs) != 1 || rs[0].Serial != serials[0] {
		t.Errorf("--expires-after now: %+v", rs)
	}
	if out := mustCLI(t, append(g, "view", "--status", "pending")...); !strings.Contains(out, "gamma.test") || !strings.Contains(out, "pending") {
		t.Errorf("table:\n%s", out)
	}

	records, err := csv.NewReader(strings.NewReader(mustCLI(t, append(g, "view", "--format", "csv")...))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 4 || strings.Join(records[0], ",") != strings.Join(csvHeader, ",") || records[2][8] != serials[1] ||
		records[2][1] != "revoked" || records[2][11] != "true" || records[2][13] != "4" {
		t.Fatalf("csv %q", records)
	}
	table := mustCLI(t, append(g, "view")...)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "STATUS") ||
		strings.Index(lines[0], "SERIAL") != strings.Index(lines[1], serials[0]) {
		t.Fatalf("table not aligned:\n%s", table)
	}
	if out := mustCLI(t, append(g, "view", "--subject-contains", "nothing-like-this", "--format", "json")...); out != "[]\n" {
		t.Fatalf("empty json: %q", out)
	}
}

func TestCACertCommand(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	path := filepath.Join(work, "ca.pem")
	mustCLI(t, append(g, "ca-cert", "--out", path)...)
	c := readCert(t, path)
	if !c.IsCA || c.Subject.CommonName != "certsrv Test CA" {
		t.Fatalf("CA certificate %v", c.Subject)
	}
	if out := mustCLI(t, append(g, "ca-cert")...); !strings.HasPrefix(out, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("ca-cert to stdout: %q", out)
	}
}

func TestRoleCommands(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	dir := filepath.Join(work, "bot")
	out := mustCLI(t, append(g, "role", "grant", "bot", "Operator", "Reader", "--out", dir)...)
	if !strings.Contains(out, "granted Operator, Reader to bot") {
		t.Fatalf("grant:\n%s", out)
	}
	fi, err := os.Stat(filepath.Join(dir, certadm.CredsKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("client.key: %v %v", fi, err)
	}
	// The directory is a complete credential: no --server needed.
	out = mustCLI(t, "--creds", dir, "ping")
	if !strings.Contains(out, "principal: bot") || !strings.Contains(out, "roles: Operator, Reader") {
		t.Fatalf("ping as bot:\n%s", out)
	}
	code, _, errOut := cli(t, append(g, "role", "grant", "bot", "Officer", "--out", dir)...)
	if code != exitError || !strings.HasSuffix(errOut, "(HRESULT 0x800700B7)\n") {
		t.Fatalf("grant into an existing credential: exit %d %s", code, errOut)
	}
	code, _, errOut = cli(t, append(g, "role", "grant", "carol", "Janitor", "--out", filepath.Join(work, "carol"))...)
	if code != exitUsage || !strings.Contains(errOut, `ROLE "Janitor"`) {
		t.Fatalf("unknown role: exit %d %s", code, errOut)
	}
	mustCLI(t, append(g, "role", "revoke", "bot")...)
	code, _, errOut = cli(t, "--creds", dir, "ping")
	if code != exitError || !strings.HasSuffix(errOut, "(HRESULT 0x80070005)\n") {
		t.Fatalf("ping after revoke: exit %d %s", code, errOut)
	}
}

func TestKeyBackupCommand(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	pw := filepath.Join(work, "pw")
	if err := os.WriteFile(pw, []byte("tr0ub4dor&3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "keys")
	out := mustCLI(t, append(g, "key", "backup", dir, "--password-file", pw)...)
	path := filepath.Join(dir, "certsrv Test CA.p12")
	if !strings.Contains(out, path) {
		t.Fatalf("key backup:\n%s", out)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("p12: %v %v", fi, err)
	}
	b, _ := os.ReadFile(path)
	key, cert, _, err := pkcs12.DecodeChain(b, "tr0ub4dor&3")
	if err != nil {
		t.Fatalf("decode with the password minus its newline: %v", err)
	}
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.(crypto.Signer).Public()) {
		t.Fatal("key does not match certificate")
	}
	if err := os.WriteFile(pw, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := cli(t, append(g, "key", "backup", dir, "--password-file", pw)...); code != exitUsage {
		t.Fatalf("empty password: exit %d", code)
	}
}

func TestBackupSessionCommands(t *testing.T) {
	srv := startServer(t)
	isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	lines := strings.Split(strings.TrimSpace(mustCLI(t, append(g, "locations")...)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "D"+srv.DataDir) || !strings.HasPrefix(lines[1], `\x82`+srv.DataDir) || !strings.HasPrefix(lines[2], `\x83`+srv.DataDir) {
		t.Fatalf("locations %q", lines)
	}
	out := mustCLI(t, append(g, "dynamic-files")...)
	if !regexp.MustCompile(`(?m)^certsrv Test CA\.crt\thttp://127\.0\.0\.1:\d+/CertEnroll/`).MatchString(out) {
		t.Fatalf("dynamic-files:\n%s", out)
	}
	// Both commands aborted their sessions: a new one can start.
	b, err := certadm.BackupPrepare(context.Background(), srv.Addr, certadm.BackupFull, certadm.WithCredentials(srv.CredsDir))
	if err != nil {
		t.Fatalf("session left behind: %v", err)
	}
	// While it runs, locations reports the busy server.
	code, _, errOut := cli(t, append(g, "locations")...)
	if code != exitError || !strings.HasSuffix(errOut, "(HRESULT 0xC80001F9)\n") || !strings.Contains(errOut, "run it when the backup has ended") {
		t.Fatalf("locations during a backup: exit %d %s", code, errOut)
	}
	b.Abort(context.Background())
	// Without the Operator role the message says why a listing needs it.
	auditor, err := srv.Grant("list-auditor", "Auditor")
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = cli(t, "--server", srv.Addr, "--creds", auditor, "dynamic-files")
	if code != exitError || !strings.Contains(errOut, "dynamic-files opens a backup session, which needs the Operator role") ||
		!strings.HasSuffix(errOut, "(HRESULT 0x80070005)\n") {
		t.Fatalf("dynamic-files as an auditor: exit %d %s", code, errOut)
	}

	if out := mustCLI(t, append(g, "shutdown")...); out != "shutdown requested\n" {
		t.Fatalf("shutdown: %q", out)
	}
	if err := srv.Wait(10 * time.Second); err != nil {
		t.Fatalf("server after shutdown: %v", err)
	}
	code, _, errOut = cli(t, append(g, "ping")...)
	if code != exitError || !strings.HasSuffix(errOut, "(HRESULT 0xC7FF0007)\n") {
		t.Fatalf("ping a stopped server: exit %d %s", code, errOut)
	}
}

func TestTimeoutFlag(t *testing.T) {
	srv := startServer(t)
	isolate(t)
	code, _, errOut := cli(t, "--server", srv.Addr, "--creds", srv.CredsDir, "--timeout", "1ns", "ping")
	if code != exitError || !strings.HasSuffix(errOut, "(HRESULT 0x800705B4)\n") {
		t.Fatalf("exit %d %s", code, errOut)
	}
}

func TestBenchIssue(t *testing.T) {
	srv := startServer(t)
	isolate(t)
	out := mustCLI(t, "--server", srv.Addr, "--creds", srv.CredsDir, "bench", "issue", "-n", "24", "-c", "4", "--connections", "both")
	for _, want := range []string{
		"24 requests, 4 workers, one shared connection: 24 issued",
		"24 requests, 4 workers, 4 connections: 24 issued",
		"errors: 0  pending: 0",
		"faster: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`certificates/s: [1-9][0-9]*\.\d`).MatchString(out) || !regexp.MustCompile(`p50: \S+  p99: \S+`).MatchString(out) {
		t.Errorf("bench figures missing:\n%s", out)
	}
	c := client(t, srv.Addr, srv.CredsDir)
	rows, err := c.View(context.Background(), certadm.ViewFilter{Status: certadm.StatusIssued, Limit: 1000})
	if err != nil || len(rows) != 48 {
		t.Fatalf("%d certificates issued, want 48 (%v)", len(rows), err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if percentile(d, 0.5) != 50*time.Millisecond || percentile(d, 0.99) != 99*time.Millisecond || percentile(d, 1) != 100*time.Millisecond {
		t.Fatalf("p50 %v p99 %v p100 %v", percentile(d, 0.5), percentile(d, 0.99), percentile(d, 1))
	}
	if percentile(nil, 0.5) != 0 || percentile(d[:1], 0.99) != time.Millisecond {
		t.Fatal("edge cases")
	}
}

// TestRoleGrantPrintsCanonicalNames: role names typed in any case, or
// twice, are granted and reported as the server stores them, in its order.
func TestRoleGrantPrintsCanonicalNames(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	dir := filepath.Join(work, "op2")
	out := mustCLI(t, append(g, "role", "grant", "op2", "reader", "operator", "READER", "--out", dir)...)
	if !strings.HasPrefix(out, "granted Operator, Reader to op2\n") {
		t.Fatalf("grant: %q", out)
	}
	if out := mustCLI(t, "--creds", dir, "ping"); !strings.Contains(out, "roles: Operator, Reader\n") {
		t.Fatalf("ping as op2:\n%s", out)
	}
}

// TestKeyBackupKeepsAnExistingFile: key backup refuses to overwrite
// DIR/<CA>.p12 (exit 1, naming it, the file unchanged) unless --force.
func TestKeyBackupKeepsAnExistingFile(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	pw1, pw2 := filepath.Join(work, "pw1"), filepath.Join(work, "pw2")
	for p, v := range map[string]string{pw1: "first password\n", pw2: "second password\n"} {
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(work, "keys")
	path := filepath.Join(dir, "certsrv Test CA.p12")
	mustCLI(t, append(g, "key", "backup", dir, "--password-file", pw1)...)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, append(g, "key", "backup", dir, "--password-file", pw2)...)
	if code != exitError || out != "" || !strings.Contains(errOut, path) || !strings.Contains(errOut, "--force") || !strings.HasSuffix(errOut, "(HRESULT 0x800700B7)\n") {
		t.Fatalf("key backup over an existing file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatal("the refused key backup changed the existing file")
	}
	if _, _, _, err := pkcs12.DecodeChain(before, "first password"); err != nil {
		t.Fatalf("the first key backup: %v", err)
	}
	out = mustCLI(t, append(g, "key", "backup", dir, "--password-file", pw2, "--force")...)
	if !strings.Contains(out, path) {
		t.Fatalf("key backup --force: %q", out)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := pkcs12.DecodeChain(after, "second password"); err != nil {
		t.Fatalf("--force did not replace the file: %v", err)
	}
	if help := mustCLI(t, "key", "backup", "--help"); !strings.Contains(help, "--force") {
		t.Fatalf("key backup --help does not document --force:\n%s", help)
	}
}

// TestGetShowsRevokedStatus: get, like view, shows the request of a revoked
// certificate as revoked, with the reason, and a hold as certificateHold.
func TestGetShowsRevokedStatus(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	var ids, serials []string
	for _, name := range []string{"gone.test", "held.test", "fine.test"} {
		out := mustCLI(t, append(g, "submit", writeCSR(t, work, name))...)
		ids = append(ids, requestLine.FindStringSubmatch(out)[1])
		serials = append(serials, serialLine.FindStringSubmatch(out)[1])
	}
	mustCLI(t, append(g, "revoke", serials[0], "--reason", "keyCompromise")...)
	mustCLI(t, append(g, "revoke", serials[1], "--reason", "certificateHold")...)
	for i, want := range []string{"revoked (keyCompromise)", "revoked (certificateHold)", "issued"} {
		out := mustCLI(t, append(g, "get", ids[i])...)
		if !strings.HasPrefix(out, "request "+ids[i]+": "+want+"\n") {
			t.Errorf("get %s: %q, want the status %q", ids[i], out, want)
		}
	}
	var rows []viewRow
	if err := json.Unmarshal([]byte(mustCLI(t, append(g, "view", "--format", "json")...)), &rows); err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if want := []string{"revoked", "revoked", "issued"}[i]; r.Status != want {
			t.Errorf("view row %d: status %q, want %q", r.RequestID, r.Status, want)
		}
	}
}

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// TestServeChecksThePages: certsrv serve reads every page of the database
// after it starts. A healthy one is logged as checked; one with a damaged
// page is failed, the server log says so and how to restore, Ping reports
// it, and nothing more is issued from it.
func TestServeChecksThePages(t *testing.T) {
	data := filepath.Join(t.TempDir(), "ca")
	if code, _, stderr := runCertsrv(t, "init", "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	creds := filepath.Join(data, "admin")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr := func(host string) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: host}, DNSNames: []string{host}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	submit := func(addr, host string) error {
		conn := dialServer(t, addr, creds)
		_, err := certsrvv1.NewAdminClient(conn).Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr(host)})
		return err
	}

	d := startServe(t, "--data", data)
	conn := dialServer(t, d.Admin, creds)
	admin := certsrvv1.NewAdminClient(conn)
	for i := range 300 {
		if _, err := admin.Submit(ctx, &certsrvv1.SubmitRequest{Csr: csr(fmt.Sprintf("h%d.example.test", i))}); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	d.WaitLog(t, "database pages checked: ok", 30*time.Second)
	if code := d.Stop(t); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}

	db := filepath.Join(data, "db", "certsrv CA.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	page := len(b) / 4096 / 2
	for i := page * 4096; i < (page+1)*4096; i++ {
		b[i] = 0xA5
	}
	if err := os.WriteFile(db, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d = startServe(t, "--data", data)
	d.WaitLog(t, "database damaged", 30*time.Second)
	if !strings.Contains(d.Stderr(), "certsrv restore") {
		t.Errorf("the log does not say how to restore:\n%s", d.Stderr())
	}
	// Every call, Ping included, now fails saying what to do.
	err = submit(d.Admin, "after.example.test")
	if err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "certsrv restore") {
		t.Errorf("a request after the damage was found: %v", err)
	}
}

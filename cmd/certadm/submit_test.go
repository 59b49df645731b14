package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/certadm"
)

// onlyPEMCertificate fails unless out is exactly one PEM certificate.
func onlyPEMCertificate(t *testing.T, what, out string) *x509.Certificate {
	t.Helper()
	blk, rest := pem.Decode([]byte(out))
	if blk == nil || blk.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("%s: standard output is not one PEM certificate alone: %q", what, out)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return c
}

// TestOutDashIsStandardOutput: --out - writes the PEM certificate to
// standard output, which then holds nothing else (the request's lines go
// to standard error), for submit, get and ca-cert; no file named "-"
// appears.
func TestOutDashIsStandardOutput(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}

	code, out, errOut := cli(t, append(g, "submit", writeCSR(t, work, "dash.test"), "--out", "-")...)
	if code != exitOK {
		t.Fatalf("submit --out -: exit %d\n%s%s", code, out, errOut)
	}
	cert := onlyPEMCertificate(t, "submit --out -", out)
	if cert.Subject.CommonName != "dash.test" {
		t.Fatalf("submit --out - wrote the certificate of %q", cert.Subject.CommonName)
	}
	m := requestLine.FindStringSubmatch(errOut)
	if m == nil || m[2] != "issued" || strings.Contains(errOut, "written to") {
		t.Fatalf("submit --out -: standard error %q, want the request's lines", errOut)
	}

	code, out, errOut = cli(t, append(g, "get", m[1], "--out", "-")...)
	if code != exitOK || !strings.Contains(errOut, "request "+m[1]+": issued") {
		t.Fatalf("get --out -: exit %d\n%s%s", code, out, errOut)
	}
	if onlyPEMCertificate(t, "get --out -", out).SerialNumber.Cmp(cert.SerialNumber) != 0 {
		t.Fatal("get --out - wrote another certificate")
	}

	// A pending request writes nothing on standard output either.
	code, out, errOut = cli(t, append(g, "submit", writeCSR(t, work, "wait.test"), "--profile", manualProfile, "--out", "-")...)
	if code != exitOK || out != "" || !strings.Contains(errOut, ": pending") {
		t.Fatalf("pending submit --out -: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	if code, out, errOut = cli(t, append(g, "ca-cert", "--out", "-")...); code != exitOK || !strings.HasPrefix(out, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("ca-cert --out -: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Lstat(filepath.Join(work, "-")); err == nil {
		t.Fatal(`a file named "-" was written`)
	}
}

// TestSubmitNotACertificateRequest: a file that is not a certificate
// request is refused with a message that names it and says what is
// accepted, with the HRESULT the server gives the same request
// (NTE_BAD_DATA); a program that calls Submit gets the same words from the
// server, without the ASN.1 decoder's.
func TestSubmitNotACertificateRequest(t *testing.T) {
	const accepted = "is not a certificate request: expected PEM 'CERTIFICATE REQUEST' or DER PKCS#10"
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	bad := filepath.Join(work, "bad.csr")
	if err := os.WriteFile(bad, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, append(g, "submit", bad)...)
	if want := "certadm: " + bad + " " + accepted + " (HRESULT 0x80090005)\n"; code != exitError || out != "" || errOut != want {
		t.Fatalf("garbage CSR: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
	}
	// A cut-off request says so.
	good, err := os.ReadFile(writeCSR(t, work, "cut.test"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(good)
	cut := filepath.Join(work, "cut.der")
	if err := os.WriteFile(cut, blk.Bytes[:len(blk.Bytes)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = cli(t, append(g, "submit", cut)...)
	if code != exitError || !strings.Contains(errOut, cut+" "+accepted+" (the DER data is truncated: ") || !strings.HasSuffix(errOut, "(HRESULT 0x80090005)\n") {
		t.Fatalf("truncated DER: exit %d, %q", code, errOut)
	}

	// The API: the server's own check, with the same words.
	c := client(t, srv.Addr, srv.CredsDir)
	_, err = c.Submit(context.Background(), []byte("garbage\n"), "")
	if !errors.Is(err, certadm.ErrBadRequest) || !strings.Contains(err.Error(), "not a certificate request: expected PEM 'CERTIFICATE REQUEST' or DER PKCS#10") ||
		strings.Contains(err.Error(), "asn1") || certadm.HRESULT(err) != 0x80090005 {
		t.Fatalf("Submit of garbage: %v (HRESULT 0x%08X)", err, certadm.HRESULT(err))
	}

	// Standard input is named as such, and no server is needed to tell.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "submit", "-")
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	cmd.Stdin = strings.NewReader("garbage\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitError || stderr.String() != "certadm: standard input "+accepted+" (HRESULT 0x80090005)\n" {
		t.Fatalf("garbage on standard input: %v, %q", err, stderr.String())
	}
}

// TestSubmitChecksOutBeforeIssuing: an --out the certificate could not be
// written to is refused before the request is sent, so a retry does not
// issue a second certificate.
func TestSubmitChecksOutBeforeIssuing(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	before := srv.CA.Store().LastLSN()
	for _, out := range []string{filepath.Join(work, "missing", "x.crt"), work} {
		code, _, errOut := cli(t, append(g, "submit", writeCSR(t, work, "out.test"), "--out", out)...)
		if code != exitError || !strings.Contains(errOut, "--out "+out) {
			t.Fatalf("submit --out %s: exit %d %s", out, code, errOut)
		}
	}
	if after := srv.CA.Store().LastLSN(); after != before {
		t.Fatalf("refused submits wrote %d records", after-before)
	}
}

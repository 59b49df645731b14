package server_test

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/testserver"
)

// rawGet sends one HTTP/1.1 request line exactly as given (no client-side
// cleaning or escaping) and returns the response and its body.
func rawGet(t *testing.T, addr, method, target string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, target, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestPublicationServesCertificateAndCRLs fetches the CA certificate and
// both CRLs and checks status, content type, and that the bytes are what
// the CA published and verify against the CA certificate.
func TestPublicationServesCertificateAndCRLs(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	if _, err := dial(t, s, s.CredsDir).admin.PublishCRL(ctx, &certsrvv1.PublishCRLRequest{Delta: true}); err != nil {
		t.Fatal(err)
	}
	caCert := s.CA.Certificate()
	for _, tc := range []struct {
		file, ctype string
		check       func([]byte) error
	}{
		{testserver.CAName + ".crt", "application/pkix-cert", func(b []byte) error {
			if !bytes.Equal(b, caCert.Raw) {
				return fmt.Errorf("served certificate differs from the CA certificate")
			}
			return nil
		}},
		{testserver.CAName + ".crl", "application/pkix-crl", func(b []byte) error {
			crl, err := x509.ParseRevocationList(b)
			if err != nil {
				return err
			}
			return crl.CheckSignatureFrom(caCert)
		}},
		{testserver.CAName + "+.crl", "application/pkix-crl", func(b []byte) error {
			crl, err := x509.ParseRevocationList(b)
			if err != nil {
				return err
			}
			if err := crl.CheckSignatureFrom(caCert); err != nil {
				return err
			}
			for _, e := range crl.Extensions {
				if e.Id.Equal([]int{2, 5, 29, 27}) {
					return nil
				}
			}
			return fmt.Errorf("delta CRL without the Delta CRL Indicator")
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			u := s.BaseURL() + "/CertEnroll/" + url.PathEscape(tc.file)
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", u, resp.Status)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.ctype {
				t.Fatalf("GET %s: Content-Type %q, want %q", u, got, tc.ctype)
			}
			onDisk, err := os.ReadFile(filepath.Join(s.Dir.PublishDir(), tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, onDisk) {
				t.Fatalf("GET %s: %d bytes served, %d on disk, not equal", u, len(body), len(onDisk))
			}
			if err := tc.check(body); err != nil {
				t.Fatalf("GET %s: %v", u, err)
			}
			head, _ := rawGet(t, s.HTTPAddr, http.MethodHead, "/CertEnroll/"+url.PathEscape(tc.file))
			if head.StatusCode != http.StatusOK || head.Header.Get("Content-Type") != tc.ctype {
				t.Fatalf("HEAD %s: %s %q", u, head.Status, head.Header.Get("Content-Type"))
			}
		})
	}
}

// TestPublicationRefusesEscapes plants files, a subdirectory and symbolic
// links, and checks that every path that is not a plain .crt or .crl file
// of publish/ gets 404 — including percent-encoded and absolute-form
// targets, sent raw so no client cleans them first.
func TestPublicationRefusesEscapes(t *testing.T) {
	s := testserver.Start(t)
	pub := s.Dir.PublishDir()
	secret := []byte("SECRET-MATERIAL")
	outside := filepath.Join(t.TempDir(), "outside.crt")
	if err := os.WriteFile(outside, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(pub, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sub/inner.crt", "notes.txt", ".hidden.crt"} {
		if err := os.WriteFile(filepath.Join(pub, name), secret, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(pub, "link.crt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(s.Dir.CAKeyPath(), filepath.Join(pub, "key.crl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(pub, "sub"), filepath.Join(pub, "dirlink.crt")); err != nil {
		t.Fatal(err)
	}

	for _, target := range []string{
		"/CertEnroll/../certsrv.json",
		"/CertEnroll/../keys/ca.key",
		"/CertEnroll/%2e%2e/certsrv.json",
		"/CertEnroll/%2E%2E%2Fkeys%2Fca.crt",
		"/CertEnroll/..%2fkeys%2fca.crt",
		"/CertEnroll/..",
		"/CertEnroll/%2e%2e",
		"/CertEnroll//etc/passwd",
		"/CertEnroll/%2Fetc%2Fpasswd",
		"/CertEnroll/" + url.PathEscape(filepath.Join(s.Dir.KeysDir(), "ca.crt")),
		"/CertEnroll/sub/inner.crt",
		"/CertEnroll/sub%2Finner.crt",
		"/CertEnroll/sub",
		"/CertEnroll/link.crt",
		"/CertEnroll/key.crl",
		"/CertEnroll/dirlink.crt",
		"/CertEnroll/notes.txt",
		"/CertEnroll/.hidden.crt",
		"/CertEnroll/missing.crt",
		"/CertEnroll/",
		"/CertEnroll",
		"/certsrv.json",
		"/keys/ca.crt",
		"/CertEnroll/..\\keys\\ca.crt",
		"/CertEnroll/%00.crt",
		"http://" + s.HTTPAddr + "/CertEnroll/../certsrv.json",
	} {
		resp, body := rawGet(t, s.HTTPAddr, http.MethodGet, target)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", target, resp.Status)
		}
		if bytes.Contains(body, secret) || bytes.Contains(body, []byte("PRIVATE KEY")) || bytes.Contains(body, []byte("ca_name")) {
			t.Errorf("GET %s leaked file content", target)
		}
	}
	if resp, _ := rawGet(t, s.HTTPAddr, http.MethodPost, "/CertEnroll/"+url.PathEscape(testserver.CAName+".crt")); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", resp.Status)
	}
	// The real file is still served: the refusals above are about the
	// names, not a broken endpoint.
	if resp, _ := rawGet(t, s.HTTPAddr, http.MethodGet, "/CertEnroll/"+url.PathEscape(testserver.CAName+".crt")); resp.StatusCode != http.StatusOK {
		t.Errorf("GET the CA certificate: %s", resp.Status)
	}
}

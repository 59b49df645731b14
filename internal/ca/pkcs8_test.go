package ca

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrivateKeyRoundTripEveryType(t *testing.T) {
	for _, kt := range KeyTypes() {
		key := testKey(t, kt, 0)
		data, err := MarshalPrivateKey(key, nil)
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----")) {
			t.Fatalf("%s: unencrypted key PEM starts %q", kt, data[:30])
		}
		back, err := ParsePrivateKey(data, nil)
		if err != nil {
			t.Fatalf("%s: parse: %v", kt, err)
		}
		if !publicKeysEqual(back.Public(), key.Public()) {
			t.Fatalf("%s: round trip changed the key", kt)
		}
		// A passphrase given for an unencrypted key is ignored.
		if _, err := ParsePrivateKey(data, []byte("unused")); err != nil {
			t.Fatalf("%s: parse with unused passphrase: %v", kt, err)
		}
	}
}

func TestEncryptedKeyRoundTripAndOpenSSL(t *testing.T) {
	dir := t.TempDir()
	pass := []byte("correct horse battery staple")
	for _, kt := range []KeyType{KeyECDSAP256, KeyRSA2048, KeyEd25519} {
		key := testKey(t, kt, 0)
		data, err := MarshalPrivateKey(key, pass)
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "ENCRYPTED PRIVATE KEY" {
			t.Fatalf("%s: PEM type %v", kt, block)
		}
		if bytes.Contains(data, []byte("PRIVATE KEY-----\nMI")) && bytes.Contains(block.Bytes, mustPKCS8(t, key)) {
			t.Fatalf("%s: plaintext key inside encrypted file", kt)
		}
		back, err := ParsePrivateKey(data, pass)
		if err != nil {
			t.Fatalf("%s: parse: %v", kt, err)
		}
		if !publicKeysEqual(back.Public(), key.Public()) {
			t.Fatalf("%s: round trip changed the key", kt)
		}
		if _, err := ParsePrivateKey(data, []byte("wrong passphrase")); !errors.Is(err, ErrPassphrase) {
			t.Fatalf("%s: wrong passphrase err = %v", kt, err)
		}
		if _, err := ParsePrivateKey(data, nil); !errors.Is(err, ErrPassphraseRequired) {
			t.Fatalf("%s: no passphrase err = %v", kt, err)
		}

		// openssl reads the file with the passphrase, reports our KDF and
		// cipher, and derives the same public key.
		path := writeTemp(t, dir, string(kt)+".key", data)
		out := mustOpenSSL(t, "pkey", "-in", path, "-passin", "pass:"+string(pass), "-pubout")
		wantPub, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		gotPub, _ := pem.Decode([]byte(out))
		if gotPub == nil || !bytes.Equal(gotPub.Bytes, wantPub) {
			t.Fatalf("%s: openssl public key differs:\n%s", kt, out)
		}
		if out, err := runOpenSSL(t, "pkey", "-in", path, "-passin", "pass:nope", "-noout"); err == nil {
			t.Fatalf("%s: openssl accepted a wrong passphrase:\n%s", kt, out)
		}
		params := mustOpenSSL(t, "asn1parse", "-in", path)
		for _, want := range []string{"PBES2", "PBKDF2", "hmacWithSHA256", "aes-256-cbc", ":0927C0"} { // 0x0927C0 = 600000
			if !strings.Contains(params, want) {
				t.Fatalf("%s: asn1parse lacks %q:\n%s", kt, want, params)
			}
		}
	}
}

func mustPKCS8(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestParseOpenSSLEncryptedKeys reads keys encrypted by openssl with
// several PBES2 parameter sets.
func TestParseOpenSSLEncryptedKeys(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.key")
	mustOpenSSL(t, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", plain)
	ref := mustOpenSSL(t, "pkey", "-in", plain, "-pubout")
	cases := [][]string{
		{"-v2", "aes-256-cbc"},
		{"-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"},
		{"-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA512", "-iter", "1000"},
	}
	for _, c := range cases {
		out := filepath.Join(dir, "enc.key")
		args := append([]string{"pkcs8", "-topk8", "-in", plain, "-out", out, "-passout", "pass:s3cret"}, c...)
		mustOpenSSL(t, args...)
		data := readFile(t, out)
		key, err := ParsePrivateKey(data, []byte("s3cret"))
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		pub, _ := x509.MarshalPKIXPublicKey(key.Public())
		refBlock, _ := pem.Decode([]byte(ref))
		if refBlock == nil || !bytes.Equal(pub, refBlock.Bytes) {
			t.Fatalf("%v: public key differs from openssl's", c)
		}
		if _, err := ParsePrivateKey(data, []byte("s3cre")); !errors.Is(err, ErrPassphrase) {
			t.Fatalf("%v: wrong passphrase err = %v", c, err)
		}
	}
	// Traditional unencrypted "EC PRIVATE KEY" from openssl.
	trad := filepath.Join(dir, "trad.key")
	mustOpenSSL(t, "ec", "-in", plain, "-out", trad)
	if _, err := ParsePrivateKey(readFile(t, trad), nil); err != nil {
		t.Fatalf("traditional EC key: %v", err)
	}
}

func TestParsePrivateKeyMalformed(t *testing.T) {
	good, err := MarshalPrivateKey(testKey(t, KeyECDSAP256, 0), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(good)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xder := mustPKCS8(t, x25519)

	flipped := bytes.Clone(block.Bytes)
	flipped[len(flipped)-1] ^= 0x01 // last ciphertext byte: padding breaks
	truncated := block.Bytes[:len(block.Bytes)-16]
	reenc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }

	cases := []struct {
		name string
		data []byte
		pass string
		want error
	}{
		{"empty", nil, "", ErrMalformedKey},
		{"not PEM", []byte("hello"), "", ErrMalformedKey},
		{"certificate only", reenc("CERTIFICATE", []byte{1, 2, 3}), "", ErrMalformedKey},
		{"garbage PKCS#8", reenc("PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x00}), "", ErrMalformedKey},
		{"truncated encrypted", reenc("ENCRYPTED PRIVATE KEY", truncated), "pw", ErrMalformedKey},
		{"flipped ciphertext", reenc("ENCRYPTED PRIVATE KEY", flipped), "pw", ErrPassphrase},
		{"garbage encrypted", reenc("ENCRYPTED PRIVATE KEY", []byte{0x30, 0x00}), "pw", ErrMalformedKey},
		{"X25519 key", reenc("PRIVATE KEY", xder), "", ErrKeyNotAllowed},
		{"legacy encrypted", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1}}), "pw", ErrMalformedKey},
	}
	for _, c := range cases {
		if _, err := ParsePrivateKey(c.data, []byte(c.pass)); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

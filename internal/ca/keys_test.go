package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"
	"time"
)

func TestParseKeyType(t *testing.T) {
	for _, in := range []string{"ecdsa-p256", "ECDSA-P384", " rsa-2048 ", "rsa-3072", "rsa-4096", "Ed25519"} {
		k, err := ParseKeyType(in)
		if err != nil || !k.Valid() {
			t.Errorf("ParseKeyType(%q) = %q, %v", in, k, err)
		}
	}
	for _, in := range []string{"", "rsa", "rsa-1024", "ecdsa-p521", "dsa", "ed448"} {
		if _, err := ParseKeyType(in); !errors.Is(err, ErrBadKeyType) {
			t.Errorf("ParseKeyType(%q) err = %v, want ErrBadKeyType", in, err)
		}
	}
	if DefaultKeyType != KeyECDSAP256 || KeyTypes()[0] != DefaultKeyType {
		t.Errorf("default key type %q", DefaultKeyType)
	}
}

func TestGenerateKeyEveryType(t *testing.T) {
	for _, kt := range KeyTypes() {
		key := testKey(t, kt, 0)
		got, _, err := KeyTypeOf(key.Public())
		if err != nil || got != kt {
			t.Errorf("KeyTypeOf(GenerateKey(%s)) = %s, %v", kt, got, err)
		}
	}
	if _, err := GenerateKey("rsa-1024"); !errors.Is(err, ErrBadKeyType) {
		t.Errorf("GenerateKey(rsa-1024) err = %v", err)
	}
}

func TestKeyTypeOfRefuses(t *testing.T) {
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	n2048 := testKey(t, KeyRSA2048, 0).Public().(*rsa.PublicKey).N
	cases := []struct {
		name string
		pub  any
		key  string
	}{
		{"p521", &p521.PublicKey, "ecdsa P-521"},
		{"rsa1024", &rsa1024.PublicKey, "rsa-1024"},
		{"rsa-e3", &rsa.PublicKey{N: n2048, E: 3}, "rsa-2048"},
		{"rsa-2047", &rsa.PublicKey{N: new(big.Int).Rsh(n2048, 1), E: 65537}, "rsa-2047"},
		{"unknown", "not a key", "string"},
	}
	for _, c := range cases {
		_, desc, err := KeyTypeOf(c.pub)
		var kpe *KeyPolicyError
		if !errors.Is(err, ErrKeyNotAllowed) || !errors.As(err, &kpe) || kpe.Key != c.key || desc != c.key {
			t.Errorf("%s: desc %q err %v, want ErrKeyNotAllowed for %q", c.name, desc, err, c.key)
		}
	}
}

func TestKeyMatchesCert(t *testing.T) {
	a := newTestRoot(t, "Match CA", KeyECDSAP256, "", time.Now())
	if err := KeyMatchesCert(a.Key, a.Cert); err != nil {
		t.Fatalf("own key: %v", err)
	}
	for _, other := range []any{testKey(t, KeyECDSAP256, 1), testKey(t, KeyEd25519, 0), "not a key", nil} {
		if err := KeyMatchesCert(other, a.Cert); !errors.Is(err, ErrKeyMismatch) {
			t.Errorf("KeyMatchesCert(%T) = %v, want ErrKeyMismatch", other, err)
		}
	}
	if err := KeyMatchesCert(a.Key, nil); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("nil cert: %v", err)
	}
}
